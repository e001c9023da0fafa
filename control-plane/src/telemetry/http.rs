//! `GET /metrics` in the Prometheus text format on its own small listener
//! (see [`wagate_proto::telemetry::serve_metrics`]).

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

/// Binds the listener and serves until `stop` is cancelled; with `token`
/// (`WAGATE_METRICS_TOKEN`) a request without `Authorization: Bearer <token>` gets 401.
pub async fn serve(
    addr: SocketAddr,
    token: Option<String>,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    crate::telemetry::metrics::describe();
    wagate_proto::telemetry::serve_metrics_with_token(addr, token, stop).await
}
