//! Cluster-aware dispatch: the one way to run a command on a worker.
//!
//! Every caller that talks to a worker (send, session start / stop / logout /
//! status, drain, rebalance, failover, re-dispatch) goes through the
//! [`Dispatcher`]:
//!
//! 1. the worker's stream is on this replica → run it on the local stream;
//! 2. otherwise look up the replica holding the stream (the worker → replica
//!    record in the cache, valued with the replica's advertised internal
//!    address) and forward the command over `wagate.v1.InternalService`
//!    ([`peer_client`]), which runs it on its local stream only (one hop at
//!    most, never forwarded again), with what is left of the deadline;
//! 3. a replica that cannot be reached, or no longer holds the stream → the
//!    record is dropped and the caller gets `WORKER_UNAVAILABLE` (503 with
//!    Retry-After).
//!
//! The API is one generic [`Dispatcher::run`] over the command table
//! (`wagate_proto::commands`).

pub mod internal_api;
pub mod peer_client;

use std::sync::Arc;
use std::time::{Duration, Instant};

use wagate_proto::commands::CommandOutput;
use wagate_proto::error::{ApiError, ErrorCode};
use wagate_proto::v1::{CommandResult, command};
use wagate_proto::{CommandKind, WorkerCommand};

use crate::cache::Cache;
pub use crate::stream::registry::DispatchError;
use crate::stream::registry::Registry;
use peer_client::{PeerClient, PeerError};

pub struct Dispatcher {
    registry: Arc<Registry>,
    cache: Cache,
    /// This replica's advertised internal address (`http://ip:port`).
    self_addr: String,
    peers: PeerClient,
    default_deadline: Duration,
}

impl Dispatcher {
    pub fn new(
        registry: Arc<Registry>,
        cache: Cache,
        self_addr: String,
        internal_token: &str,
        peer_tls: Option<wagate_proto::tls::ClientTls>,
        default_deadline: Duration,
    ) -> Self {
        Self {
            registry,
            cache,
            self_addr,
            peers: PeerClient::new(internal_token, peer_tls),
            default_deadline,
        }
    }

    pub fn self_addr(&self) -> &str {
        &self.self_addr
    }

    pub fn peers(&self) -> &PeerClient {
        &self.peers
    }

    /// Runs one worker command (any row of `wagate_proto::commands`) with
    /// the default deadline.
    pub async fn run<C: WorkerCommand>(
        &self,
        worker_id: &str,
        cmd: C,
    ) -> Result<CommandResult, DispatchError> {
        self.call(worker_id, cmd.into(), self.default_deadline).await
    }

    /// Runs a command whose answer the caller needs (the table's `Output`):
    /// a refusal by the worker becomes the caller's error (see [`refusal`]).
    pub async fn run_for<C: WorkerCommand>(&self, worker_id: &str, cmd: C) -> Result<C::Output, ApiError> {
        let result = self.run(worker_id, cmd).await?;
        if !result.ok {
            return Err(refusal(C::KIND, &result));
        }
        C::Output::from_payload(result.payload).ok_or_else(|| {
            tracing::warn!(worker_id, kind = %C::KIND, "worker answered without the expected payload");
            ApiError::new(ErrorCode::WorkerError, format!("the worker gave no answer to {}", C::KIND))
        })
    }

    /// Local stream first, else one forward to the replica holding it.
    async fn call(
        &self,
        worker_id: &str,
        kind: command::Kind,
        deadline: Duration,
    ) -> Result<CommandResult, DispatchError> {
        if let Some(conn) = self.registry.get(worker_id) {
            return conn.call(kind, deadline).await;
        }
        let started = Instant::now();
        let addr = match self.cache.get_worker_replica(worker_id).await {
            Ok(Some(addr)) if addr != self.self_addr => addr,
            Ok(Some(_)) => {
                // The record names us but the stream is gone: stale.
                let _ = self.cache.clear_worker_replica(worker_id, &self.self_addr).await;
                return Err(DispatchError::NotConnected(worker_id.to_owned()));
            }
            Ok(None) => return Err(DispatchError::NotConnected(worker_id.to_owned())),
            Err(err) => {
                tracing::warn!(worker_id, error = %err, "worker route lookup failed");
                return Err(DispatchError::RouteUnavailable(worker_id.to_owned()));
            }
        };
        let left = deadline.saturating_sub(started.elapsed());
        let outcome = self.peers.dispatch(&addr, worker_id, kind, left).await;
        let result = match outcome {
            Ok(r) => Ok(r),
            Err(PeerError::Unreachable { .. }) | Err(PeerError::NotHeld) => {
                // The replica is gone or no longer holds the stream: drop the
                // record (only if it still names that replica).
                tracing::info!(worker_id, peer = addr, "stale worker route dropped");
                let _ = self.cache.clear_worker_replica(worker_id, &addr).await;
                Err(DispatchError::NotConnected(worker_id.to_owned()))
            }
            Err(PeerError::Timeout) => Err(DispatchError::Timeout(worker_id.to_owned())),
            Err(PeerError::Busy) => Err(DispatchError::Busy(worker_id.to_owned())),
            Err(PeerError::Lost(_)) => Err(DispatchError::StreamClosed(worker_id.to_owned())),
            Err(PeerError::Unsupported(m)) => Err(DispatchError::Unsupported(m)),
        };
        let outcome_label = if result.is_ok() { "ok" } else { "error" };
        ::metrics::histogram!("wagate_dispatch_forward_seconds", "outcome" => outcome_label)
            .record(started.elapsed().as_secs_f64());
        result
    }
}

/// A worker's refusal (`CommandResult.ok == false`) as the caller's error,
/// by the SDK's error codes (`wagate_worker_sdk::driver::codes`, spelled
/// here: the control plane does not depend on the SDK).
pub fn refusal(kind: CommandKind, result: &CommandResult) -> ApiError {
    let detail = if result.error_message.is_empty() { &result.error_code } else { &result.error_message };
    match result.error_code.as_str() {
        "unsupported_command" => ApiError::new(ErrorCode::NotSupportedByWorker, detail.clone()),
        "not_connected" => ApiError::new(ErrorCode::SessionNotConnected, detail.clone()),
        "not_found" => ApiError::new(ErrorCode::NotFound, detail.clone()),
        "unknown_session" | "stale_generation" | "shutting_down" => ApiError::new(
            ErrorCode::WorkerUnavailable,
            format!("the session is moving between workers: {detail}"),
        )
        .with_retry_after(2),
        "deadline_exceeded" => ApiError::new(ErrorCode::DeadlineExceeded, detail.clone()),
        _ => ApiError::new(ErrorCode::WorkerError, format!("the worker could not run {kind}: {detail}")),
    }
}
