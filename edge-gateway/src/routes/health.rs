//! `GET /health` (the edge itself, no gRPC call) and `GET /health/ready`
//! (the control plane answers a `grpc.health.v1` Check with SERVING).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use serde::Serialize;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::error::{ApiError, ErrorCode};

use super::{Answer, AppState, CallContext, Reply};
use crate::grpc::status_to_error;

const SERVICE: &str = "edge-gateway";
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Readiness must answer quickly even with a long request timeout.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /health` and `GET /health/ready`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthDto {
    /// `ok` (liveness) or `ready`.
    pub status: &'static str,
    pub service: &'static str,
    pub version: &'static str,
    /// The control plane's grpc.health.v1 status (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<&'static str>,
}

/// Also mounted at the root (`/health`, `/health/ready`).
pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(live)).routes(routes!(ready))
}

#[utoipa::path(get, path = "/health", tag = "health", summary = "Edge liveness (no control plane call)",
    responses((status = 200, body = crate::openapi::Envelope<HealthDto>)))]
pub(crate) async fn live() -> Reply {
    Reply::ok(&HealthDto { status: "ok", service: SERVICE, version: VERSION, control_plane: None })
}

#[utoipa::path(get, path = "/health/ready", tag = "health", summary = "Readiness: the control plane answers SERVING",
    responses((status = 200, body = crate::openapi::Envelope<HealthDto>)))]
pub(crate) async fn ready(State(state): State<Arc<AppState>>, call: CallContext) -> Answer {
    let mut request = call.request(HealthCheckRequest { service: String::new() });
    request.set_timeout(call.remaining().min(READY_TIMEOUT));
    let not_ready = |why: &str| {
        tracing::debug!(why, "control plane not ready");
        ApiError::new(ErrorCode::Unavailable, "control plane is not ready").with_retry_after(5)
    };
    match tokio::time::timeout(READY_TIMEOUT, state.control_plane.health().check(request)).await {
        Ok(Ok(reply)) if reply.get_ref().status() == ServingStatus::Serving => Ok(Reply::ok(&HealthDto {
            status: "ready",
            service: SERVICE,
            version: VERSION,
            control_plane: Some("SERVING"),
        })),
        Ok(Ok(reply)) => Err(not_ready(reply.get_ref().status().as_str_name()).into()),
        Ok(Err(status)) => Err(not_ready(status_to_error(&status).code.as_str()).into()),
        Err(_elapsed) => Err(not_ready("timeout").into()),
    }
}
