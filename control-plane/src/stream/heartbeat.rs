//! Worker liveness on the replica that holds the stream.
//!
//! `Hello` registers the worker and bumps its durable stream epoch
//! ([`crate::persistence::workers::hello`]). Heartbeats are kept in memory:
//! the stream's reader counts silence, and only transitions are written
//! (OFFLINE at the end of the current stream, fenced by its epoch). A
//! heartbeat reaches storage only at low rates: a `worker_metrics` sample at
//! the metrics interval (fenced too) and a refresh of the worker → replica
//! route record (with a TTL) about once per liveness timeout.

use std::time::{Duration, Instant};

use wagate_proto::error::ErrorCode;
use wagate_proto::v1;

use crate::error::{CpError, api, is_unique_violation};
use crate::persistence::workers::{self, HelloRow, Sample};
use crate::state::SharedState;

/// Registers the worker of `hello`; returns its new stream epoch.
pub async fn on_hello(state: &SharedState, hello: &v1::Hello, peer: &str) -> Result<u64, CpError> {
    let endpoint = if hello.endpoint.trim().is_empty() {
        format!("stream://{}", hello.worker_id)
    } else {
        hello.endpoint.clone()
    };
    let row = HelloRow {
        worker_id: &hello.worker_id,
        endpoint: &endpoint,
        max_sessions: i32::try_from(hello.max_sessions).unwrap_or(i32::MAX),
        version: (!hello.version.is_empty()).then_some(hello.version.as_str()),
    };
    let epoch = match workers::hello(&state.db, &row).await {
        Ok(e) => e,
        Err(e) if is_unique_violation(&e) => {
            return Err(api(ErrorCode::AlreadyExists, "worker registration conflicts with another worker"));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::debug!(peer, epoch, max_sessions = hello.max_sessions, "worker registered");
    Ok(epoch)
}

/// Per-stream liveness bookkeeping (in memory).
pub struct Liveness {
    epoch: u64,
    sample_every: Duration,
    last_sample: Option<Instant>,
    refresh_every: Duration,
    last_refresh: Instant,
}

impl Liveness {
    pub fn new(state: &SharedState, epoch: u64) -> Self {
        Self {
            epoch,
            sample_every: state.config.metrics_sample_interval,
            last_sample: None,
            refresh_every: state.config.liveness_timeout(),
            last_refresh: Instant::now(),
        }
    }

    /// Handles one heartbeat. False when this stream turned out to be stale
    /// (the worker opened a newer stream, here or on another replica).
    pub async fn heartbeat(&mut self, state: &SharedState, worker_id: &str, hb: &v1::Heartbeat) -> bool {
        let now = Instant::now();
        if self.last_refresh.elapsed() >= self.refresh_every {
            self.last_refresh = now;
            match state
                .cache
                .refresh_worker_replica(worker_id, state.dispatcher.self_addr(), state.config.route_ttl())
                .await
            {
                Ok(true) => {}
                Ok(false) => return false,
                Err(err) => tracing::debug!(error = %err, "route record refresh failed"),
            }
        }
        if self.last_sample.is_none_or(|l| now.duration_since(l) >= self.sample_every) {
            self.last_sample = Some(now);
            let sample = Sample {
                cpu: if hb.cpu_usage.is_finite() { hb.cpu_usage.max(0.0) } else { 0.0 },
                memory: if hb.memory_usage.is_finite() { hb.memory_usage.clamp(0.0, 100.0) } else { 0.0 },
                session_count: i32::try_from(hb.session_count).unwrap_or(i32::MAX),
                message_count: i64::try_from(hb.message_count).unwrap_or(i64::MAX),
                uptime_seconds: i64::try_from(hb.uptime_seconds).unwrap_or(i64::MAX),
            };
            match workers::record_sample(&state.db, worker_id, self.epoch, &sample).await {
                Ok(true) => {}
                Ok(false) => return false,
                Err(err) => tracing::warn!(error = %err, "worker sample not written"),
            }
        }
        true
    }
}
