//! `WorkerService.Connect`: the bidirectional stream each worker keeps open.
//!
//! Handshake: bearer token in metadata, then `Hello` within the hello
//! timeout, else the stream is refused. The worker is upserted ONLINE, its
//! `Welcome` (with the held sessions it must stop: fencing) is queued, and
//! only then is it registered (preempting a stale stream of the same
//! worker) with its negotiated protocol version, so `Welcome` is always the
//! first message it reads. One reader
//! task then handles heartbeats, command results and events; a stream that
//! ends, errors or stays silent past the liveness timeout unregisters the
//! worker and marks it OFFLINE.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::{Stream, StreamExt};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;
use wagate_proto::v1::{
    self, ControlMessage, WorkerMessage, control_message, worker_message,
    worker_service_server::WorkerService,
};

use crate::audit::{self, AuditEntry};
use crate::auth::identity;
use crate::persistence::enums::LogLevel;
use crate::persistence::sessions::{self as session_rows, Session};
use crate::persistence::workers;
use crate::services::admin_workers;
use crate::state::SharedState;
use crate::stream::applier::{Applier, Item};
use crate::stream::heartbeat;
use crate::stream::registry::{Registration, WorkerConn};
use crate::telemetry::metrics;

pub struct WorkerApi {
    state: SharedState,
}

impl WorkerApi {
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }
}

type ControlStream = Pin<Box<dyn Stream<Item = Result<ControlMessage, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl WorkerService for WorkerApi {
    type ConnectStream = ControlStream;

    async fn connect(
        &self,
        request: Request<Streaming<WorkerMessage>>,
    ) -> Result<Response<ControlStream>, Status> {
        let state = self.state.clone();
        if state.shutdown.is_cancelled() {
            return Err(crate::error::CpError::ShuttingDown.into());
        }
        // The shared WORKER_AUTH_TOKEN admits any worker id; a per-worker
        // token (issued by POST /admin/workers) only the id it was issued for,
        // checked once the Hello names it.
        let token = identity::bearer(request.metadata()).map(str::to_owned);
        // The shared token is opt-in (WAGATE_ALLOW_SHARED_WORKER_TOKEN): anyone
        // holding it could claim any worker id.
        let shared = state.config.allow_shared_worker_token
            && token.as_deref().is_some_and(|t| identity::secret_matches(t, &state.config.worker_auth_token));
        let per_worker = token.filter(|t| !shared && t.starts_with(admin_workers::WORKER_TOKEN_PREFIX));
        if !shared && per_worker.is_none() {
            metrics::WORKER_STREAMS_REJECTED.inc();
            return Err(Status::unauthenticated("invalid worker token"));
        }
        let peer = request.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let mut inbound = request.into_inner();

        let hello = match tokio::time::timeout(state.config.hello_timeout, inbound.next()).await {
            Ok(Some(Ok(WorkerMessage { kind: Some(worker_message::Kind::Hello(h)) }))) => h,
            Ok(Some(Ok(_))) => {
                metrics::WORKER_STREAMS_REJECTED.inc();
                return Err(Status::invalid_argument("the first message must be Hello"));
            }
            Ok(Some(Err(status))) => return Err(status),
            Ok(None) => return Err(Status::cancelled("stream closed before Hello")),
            Err(_) => {
                metrics::WORKER_STREAMS_REJECTED.inc();
                return Err(Status::deadline_exceeded("no Hello within the hello timeout"));
            }
        };
        validate_hello(&hello)?;
        let ours = (wagate_proto::PROTOCOL_VERSION_MIN, wagate_proto::PROTOCOL_VERSION_MAX);
        let theirs = (hello.min_protocol_version, hello.max_protocol_version);
        let Some(protocol_version) = wagate_proto::negotiate_protocol(theirs, ours) else {
            metrics::WORKER_STREAMS_REJECTED.inc();
            return Err(Status::failed_precondition(format!(
                "incompatible stream protocol: the worker speaks versions {}..={}, this control plane {}..={}",
                theirs.0.max(1),
                theirs.1.max(theirs.0.max(1)),
                ours.0,
                ours.1
            )));
        };
        if let Some(t) = &per_worker
            && !admin_workers::token_matches(&state, &hello.worker_id, t).await.map_err(Status::from)?
        {
            metrics::WORKER_STREAMS_REJECTED.inc();
            return Err(Status::unauthenticated("invalid worker token"));
        }
        let worker_id = hello.worker_id.clone();
        let span = tracing::info_span!("worker_stream", worker_id = %worker_id);
        let commands = wagate_proto::CommandSet::from_names(&hello.commands);

        let epoch = heartbeat::on_hello(&state, &hello, &peer).await.map_err(Status::from)?;
        let stop_sessions = fenced_sessions(&state, &hello).await.map_err(Status::from)?;
        let welcome = ControlMessage {
            kind: Some(control_message::Kind::Welcome(v1::Welcome {
                connection_generation: epoch,
                heartbeat_interval_ms: u32::try_from(state.config.heartbeat_interval.as_millis())
                    .unwrap_or(u32::MAX),
                stop_sessions,
                replica_id: state.config.replica_id.clone(),
                protocol_version,
            })),
        };
        // Welcome is queued first, then the stream becomes reachable: no
        // command can reach the worker before it (restate's handshake order).
        let (conn, rx, registration) = state.registry.register(
            &worker_id,
            epoch,
            protocol_version,
            commands,
            state.config.worker_channel_capacity,
            welcome,
        );
        record_route(&state, &worker_id, epoch, &span).await;
        metrics::WORKER_STREAMS_OPENED.inc();
        audit::record(
            &state.db,
            "workers",
            AuditEntry::new("worker connected")
                .worker(&worker_id)
                .details(serde_json::json!({ "peer": peer, "epoch": epoch, "version": hello.version })),
        );
        tracing::info!(parent: &span, epoch, peer, %commands, "worker connected");

        // New capacity: sessions waiting for a worker may fit now.
        let st = state.clone();
        state.tasks.spawn(
            async move {
                if let Err(err) = crate::fleet::sweeper::place_waiting(&st).await {
                    tracing::warn!(error = %err, "placing waiting sessions failed");
                }
            }
            .instrument(span.clone()),
        );
        let cancel = conn.cancel.clone();
        let reader = read_loop(state.clone(), conn, registration, inbound);
        state.tasks.spawn(reader.instrument(span));

        let outbound = ReceiverStream::new(rx).take_until(cancel.cancelled_owned());
        Ok(Response::new(Box::pin(outbound)))
    }
}

fn validate_hello(hello: &v1::Hello) -> Result<(), Status> {
    let id = &hello.worker_id;
    if id.is_empty()
        || id.len() > 64
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(Status::invalid_argument(
            "worker_id must be 1-64 characters of letters, digits, '-', '_' or '.'",
        ));
    }
    if hello.max_sessions == 0 || hello.max_sessions > 100_000 {
        return Err(Status::invalid_argument("max_sessions must be between 1 and 100000"));
    }
    crate::stream::input::hello(hello).map_err(|e| {
        metrics::WORKER_STREAMS_REJECTED.inc();
        Status::from(e)
    })
}

/// Sessions the worker still runs but must not: deleted, placed elsewhere,
/// or placed again with a newer generation.
async fn fenced_sessions(
    state: &SharedState,
    hello: &v1::Hello,
) -> Result<Vec<String>, crate::error::CpError> {
    if hello.sessions.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = hello.sessions.iter().map(|s| s.session_id.clone()).collect();
    let rows = session_rows::by_ids(&state.db, ids).await?;
    let owned: std::collections::HashMap<&str, &Session> = rows.iter().map(|s| (s.id.as_str(), s)).collect();
    Ok(hello
        .sessions
        .iter()
        .filter(|held| match owned.get(held.session_id.as_str()) {
            Some(row) => {
                row.worker_id.as_deref() != Some(hello.worker_id.as_str())
                    || u64::try_from(row.generation).unwrap_or_default() != held.generation
            }
            None => true,
        })
        .map(|held| held.session_id.clone())
        .collect())
}

async fn read_loop(
    state: SharedState,
    conn: Arc<WorkerConn>,
    registration: Registration,
    mut inbound: Streaming<WorkerMessage>,
) {
    let liveness = state.config.liveness_timeout();
    let started = Instant::now();
    // Everything that writes goes to the applier, in order; results are
    // handed to their callers here, never behind a write.
    let applier = Applier::spawn(&state, conn.clone(), tracing::Span::current());
    // After Goodbye the worker finishes in-flight work, stops its sessions and
    // closes the stream; its sessions move when it is gone.
    let mut leaving = false;
    let reason = loop {
        let wait = if leaving { liveness * 4 + state.config.shutdown_grace } else { liveness };
        let next = tokio::select! {
            () = conn.cancel.cancelled() => break if applier.superseded() {
                "superseded by a newer stream"
            } else {
                "stream preempted or shutting down"
            },
            next = tokio::time::timeout(wait, inbound.next()) => next,
        };
        let msg = match next {
            Err(_) => break MISSED_HEARTBEATS,
            Ok(None) if leaving => break "worker left",
            Ok(None) => break "stream closed by worker",
            Ok(Some(Err(status))) => {
                tracing::debug!(error = %status, "worker stream error");
                break "stream error";
            }
            Ok(Some(Ok(msg))) => msg,
        };
        // Checked like client input: a message with a NUL in a string is dropped.
        let Some(msg) = crate::stream::input::stream_message(&conn.worker_id, msg) else { continue };
        match msg.kind {
            Some(worker_message::Kind::Result(mut result)) => {
                crate::stream::input::command_result(&conn.worker_id, &mut result);
                let request_id = result.request_id;
                if !conn.complete(result) {
                    tracing::debug!(request_id, "result for a caller that gave up");
                }
            }
            Some(worker_message::Kind::Heartbeat(hb)) => applier.push(Item::Heartbeat(hb)).await,
            Some(worker_message::Kind::Event(event)) => applier.push(Item::Event(Box::new(event))).await,
            Some(worker_message::Kind::Goodbye(bye)) => {
                tracing::info!(reason = bye.reason, "worker is leaving");
                leaving = true;
                applier.push(Item::Leaving).await;
            }
            Some(worker_message::Kind::Hello(_)) | None => {
                tracing::warn!("unexpected message on an open stream");
            }
        }
    };
    let generation = registration.generation;
    let worker_id = conn.worker_id.clone();
    // Unreachable at once (waiting callers get StreamClosed); the events it
    // sent before it went are applied before its sessions can move.
    drop(registration);
    conn.cancel.cancel();
    applier.finish().await;
    metrics::WORKERS_LOST.inc();
    // Our own shutdown leaves the worker to reconnect to another replica; a
    // newer stream (here or elsewhere) keeps it ONLINE: the OFFLINE mark is
    // fenced by this stream's epoch.
    let newer_here = state.registry.get(&worker_id).is_some_and(|c| c.generation > generation);
    if !state.shutdown.is_cancelled() && !newer_here {
        let _ = state.cache.clear_worker_replica(&worker_id, state.dispatcher.self_addr()).await;
        match workers::mark_offline(&state.db, &worker_id, generation).await {
            // A worker that left, or went silent on an open stream, fails
            // over at once; a dropped connection gets the reconnect grace.
            Ok(true) => spawn_failover_after_grace(
                &state,
                &worker_id,
                generation,
                leaving || reason == MISSED_HEARTBEATS,
            ),
            Ok(false) => tracing::info!("worker already on a newer stream: not marked offline"),
            Err(err) => tracing::error!(error = %err, "could not mark worker offline"),
        }
    }
    tracing::info!(
        reason,
        generation,
        uptime_ms = started.elapsed().as_millis() as u64,
        "worker disconnected"
    );
    audit::record(
        &state.db,
        "workers",
        AuditEntry::new("worker disconnected")
            .level(LogLevel::Warn)
            .worker(&worker_id)
            .details(serde_json::json!({ "reason": reason, "generation": generation })),
    );
}

const MISSED_HEARTBEATS: &str = "missed heartbeats";

/// Records this replica as the holder of the worker's stream; a replica
/// that held an older stream of it is told to end that one.
async fn record_route(state: &SharedState, worker_id: &str, epoch: u64, span: &tracing::Span) {
    let me = state.dispatcher.self_addr();
    match state.cache.set_worker_replica(worker_id, me, state.config.route_ttl()).await {
        Ok(Some(old)) if old != me => {
            let st = state.clone();
            let id = worker_id.to_owned();
            state.tasks.spawn(async move {
                if let Err(err) = st.dispatcher.peers().preempt(&old, &id, epoch).await {
                    tracing::debug!(peer = old, error = %err, "old replica not told (it ends its stream by itself)");
                }
            }.instrument(span.clone()));
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(parent: span, error = %err, "could not record worker replica"),
    }
}

/// A worker that left (Goodbye) or went silent fails over at once
/// (`immediate`); a dropped stream gets the reconnect grace first, and fails
/// over only if no newer stream (on any replica) appeared meanwhile.
fn spawn_failover_after_grace(state: &SharedState, worker_id: &str, epoch: u64, immediate: bool) {
    let st = state.clone();
    let id = worker_id.to_owned();
    if immediate || state.config.reconnect_grace.is_zero() {
        crate::fleet::failover::spawn_on_worker_lost(state, worker_id);
        return;
    }
    let grace = state.config.reconnect_grace;
    state.tasks.spawn(async move {
        tokio::select! {
            () = st.shutdown.cancelled() => return,
            () = tokio::time::sleep(grace) => {}
        }
        match workers::epoch_is_current(&st.db, &id, epoch).await {
            Ok(true) => crate::fleet::failover::spawn_on_worker_lost(&st, &id),
            Ok(false) => tracing::info!(worker_id = id, "worker reconnected within the grace: no failover"),
            Err(err) => {
                tracing::warn!(worker_id = id, error = %err, "failover check failed; the sweep retries")
            }
        }
    });
}
