//! `GET /metrics` in the Prometheus text format on its own small listener
//! (see [`wagate_proto::telemetry::serve_metrics`]).

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

/// Binds the listener and serves until `stop` is cancelled.
pub async fn serve(addr: SocketAddr, stop: CancellationToken) -> std::io::Result<SocketAddr> {
    crate::metrics::describe();
    wagate_proto::telemetry::serve_metrics(addr, stop).await
}
