//! The contract between all parts of wagate.
//!
//! - [`v1`]: the generated messages, clients and servers of `proto/wagate/v1`;
//! - [`error`]: the one error code type shared by the control plane (gRPC
//!   status) and the edge gateway (HTTP status + JSON envelope);
//! - [`connect`]: a client channel with keepalive set, for workers and the edge;
//! - [`text`] / [`codec`]: no request a server decodes carries a NUL in any
//!   string (checked once, in the codec of every service);
//! - [`tls`]: the `WAGATE_TLS_*` files turned into server and client TLS (rustls on ring);
//! - [`secret`]: the strength rule of configured secrets, shared by every binary;
//! - [`commands`]: the one table of worker commands (kinds, names, payloads,
//!   what a worker declares it runs);
//! - [`contract`]: webhook events, send limits and the classified list of gRPC services.

pub mod codec;
pub mod commands;
pub mod contract;
pub mod error;
pub mod forwarded;
pub mod ratelimit;
pub mod secret;
#[cfg(feature = "telemetry")]
pub mod telemetry;
pub mod text;
pub mod time;
pub mod tls;

use std::time::Duration;

pub use commands::{CommandKind, CommandSet, WorkerCommand};
pub use tonic;

/// Generated code of package `wagate.v1`.
#[allow(clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("wagate.v1");
}

/// Worker stream protocol versions this build speaks (`Hello.min/max_protocol_version`,
/// `Welcome.protocol_version`). Raise the maximum when a change needs both
/// sides to know about it; raise the minimum when an old version is dropped.
pub const PROTOCOL_VERSION_MIN: u32 = 1;
pub const PROTOCOL_VERSION_MAX: u32 = 1;

/// The version two ranges share (the highest), if any; 0 bounds read as 1.
pub fn negotiate_protocol(theirs: (u32, u32), ours: (u32, u32)) -> Option<u32> {
    let norm = |(min, max): (u32, u32)| {
        let min = min.max(1);
        (min, max.max(min))
    };
    let (a_min, a_max) = norm(theirs);
    let (b_min, b_max) = norm(ours);
    let (lo, hi) = (a_min.max(b_min), a_max.min(b_max));
    (lo <= hi).then_some(hi)
}

/// Encoded `FileDescriptorSet` of all wagate protos, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/wagate_descriptor.bin"));

/// Metadata keys that carry identity and correlation across the gRPC hop.
pub mod metadata {
    /// `Bearer <jwt>` or `Bearer <session api key>`.
    pub const AUTHORIZATION: &str = "authorization";
    /// A session API key (alternative to `authorization`).
    pub const API_KEY: &str = "x-api-key";
    /// Caller's client address as seen by the edge.
    pub const FORWARDED_FOR: &str = "x-forwarded-for";
    /// Request id for log correlation.
    pub const REQUEST_ID: &str = "x-request-id";
    /// Makes a send safe to retry.
    pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
    /// Machine-readable error code on an error status (see [`crate::error::ErrorCode`]).
    pub const ERROR_CODE: &str = "x-wagate-code";
    /// The request field an INVALID_ARGUMENT is about.
    pub const ERROR_FIELD: &str = "x-wagate-field";
    /// Seconds to wait before retrying, on RESOURCE_EXHAUSTED / UNAVAILABLE.
    pub const RETRY_AFTER: &str = "retry-after";
    /// Shared secret of replica-to-replica calls (`InternalService`).
    pub const INTERNAL_TOKEN: &str = "x-wagate-internal-token";
    /// The worker a `MediaService.Upload` comes from (with its worker token as bearer).
    pub const WORKER_ID: &str = "x-wagate-worker-id";
}

/// Keepalive and timeouts used by every wagate gRPC client.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub connect_timeout: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(5),
        }
    }
}

/// Builds an endpoint with HTTP/2 keepalive (so half-open connections are
/// noticed), TCP nodelay and a connect timeout.
pub fn endpoint(
    uri: impl Into<String>,
    options: &ConnectOptions,
) -> Result<tonic::transport::Endpoint, tonic::transport::Error> {
    Ok(tonic::transport::Endpoint::from_shared(uri.into())?
        .connect_timeout(options.connect_timeout)
        .http2_keep_alive_interval(options.keepalive_interval)
        .keep_alive_timeout(options.keepalive_timeout)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true))
}

/// [`endpoint`] with TLS when `uri` is `https://` (`tls`, or the public web
/// PKI roots when `None`); TLS settings with an `http://` URL are refused
/// rather than silently ignored.
pub fn endpoint_with_tls(
    uri: impl Into<String>,
    options: &ConnectOptions,
    tls: Option<&tls::ClientTls>,
) -> Result<tonic::transport::Endpoint, ConnectError> {
    let uri = uri.into();
    tls::check_client_url(&uri, tls)?;
    let https = tls::is_https(&uri);
    let endpoint = endpoint(uri, options)?;
    if !https {
        return Ok(endpoint);
    }
    let default = tls::ClientTls::default();
    Ok(tls.unwrap_or(&default).apply(endpoint)?)
}

/// Why a client endpoint could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid control-plane URL: {0}")]
    Uri(#[from] tonic::transport::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Connects to a wagate gRPC server (control plane) with keepalive set.
pub async fn connect(uri: impl Into<String>) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    endpoint(uri, &ConnectOptions::default())?.connect().await
}

/// A lazily connecting channel (connects on first use, reconnects after loss).
pub fn connect_lazy(uri: impl Into<String>) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    Ok(endpoint(uri, &ConnectOptions::default())?.connect_lazy())
}
