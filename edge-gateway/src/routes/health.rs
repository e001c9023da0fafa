//! `GET /health` (the edge itself, no gRPC call) and `GET /health/ready`
//! (the control plane answers a `grpc.health.v1` Check with SERVING).

use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use wagate_proto::error::{ApiError, ErrorCode};

use crate::dto::HealthDto;
use crate::envelope::Reply;
use crate::grpc::status_to_error;
use crate::router::Ctx;

const SERVICE: &str = "edge-gateway";
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Readiness must answer quickly even with a long request timeout.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn live() -> Reply {
    Reply::ok(&HealthDto { status: "ok", service: SERVICE, version: VERSION, control_plane: None })
}

pub(crate) async fn ready(ctx: &Ctx) -> Result<Reply, ApiError> {
    let mut request = ctx.call.request(HealthCheckRequest { service: String::new() });
    request.set_timeout(ctx.call.remaining().min(READY_TIMEOUT));
    let not_ready = |why: &str| {
        tracing::debug!(why, "control plane not ready");
        ApiError::new(ErrorCode::Unavailable, "control plane is not ready").with_retry_after(5)
    };
    match tokio::time::timeout(READY_TIMEOUT, ctx.control_plane().health().check(request)).await {
        Ok(Ok(reply)) if reply.get_ref().status() == ServingStatus::Serving => Ok(Reply::ok(&HealthDto {
            status: "ready",
            service: SERVICE,
            version: VERSION,
            control_plane: Some("SERVING"),
        })),
        Ok(Ok(reply)) => Err(not_ready(reply.get_ref().status().as_str_name())),
        Ok(Err(status)) => Err(not_ready(status_to_error(&status).code.as_str())),
        Err(_elapsed) => Err(not_ready("timeout")),
    }
}
