//! wagate's edge gateway: the public REST/JSON API.
//!
//! Every REST call becomes one gRPC call on the control plane; the edge
//! holds no business state. It parses and checks input (clear 4xx
//! envelopes), forwards the caller's credential, request id, client address
//! and idempotency key as gRPC metadata, and maps gRPC statuses back to HTTP
//! with the `{"success":…}` envelope.
//!
//! ```no_run
//! # async fn run() -> Result<(), wagate_edge_gateway::EdgeError> {
//! use wagate_edge_gateway::{EdgeConfig, EdgeServer};
//! let edge = EdgeServer::bind(EdgeConfig { listen: "127.0.0.1:0".parse().unwrap(), ..EdgeConfig::default() }).await?;
//! println!("REST on http://{}", edge.local_addr());
//! edge.shutdown().await;
//! # Ok(()) }
//! ```

mod app;
mod config;
mod cors;
mod envelope;
mod grpc;
mod json;
mod middleware;
mod model;
mod openapi;
mod params;
mod qr;
mod routes;
mod schema;
mod server;
mod state;

pub use config::{EdgeArgs, EdgeConfig, EdgeConfigError, TlsArgs};
pub use middleware::HTTP_REQUEST_DURATION;
pub use server::{EdgeError, EdgeServer, RunningEdge};
pub use tokio_util::sync::CancellationToken;
