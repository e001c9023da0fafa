//! Failover: when a worker is lost its sessions move to other workers, and
//! sends that were PENDING or in flight on it are dispatched again once the
//! session is CONNECTED on its new worker (at-least-once; workers
//! de-duplicate by message id).

use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tracing::Instrument;
use wagate_proto::v1;

use crate::audit::{self, AuditEntry};
use crate::error::CpResult;
use crate::fleet::mover::{MoveMode, MoveOutcome, move_session};
use crate::persistence::enums::LogLevel;
use crate::persistence::message_dispatch::Unacked;
use crate::persistence::{message_dispatch, sessions};
use crate::send::dispatch::{self, SendOutcome, Unreached};
use crate::state::SharedState;
use crate::telemetry::metrics;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FailoverReport {
    pub total: usize,
    pub moved: usize,
    pub resumed: usize,
    pub waiting: usize,
    pub skipped: usize,
    pub failed: usize,
}

/// Moves every session of `worker_id` elsewhere (bounded concurrency).
pub async fn on_worker_lost(state: &SharedState, worker_id: &str) -> CpResult<FailoverReport> {
    let started = Instant::now();
    let ids = sessions::on_worker(&state.db, worker_id).await?;
    let mut report = FailoverReport { total: ids.len(), ..Default::default() };
    if ids.is_empty() {
        return Ok(report);
    }
    metrics::FAILOVERS.inc();
    let outcomes: Vec<_> = futures::stream::iter(ids)
        .map(|id| {
            let state = state.clone();
            let from = worker_id.to_owned();
            async move { move_session(&state, &id, Some(&from), MoveMode::Failover).await }
        })
        .buffer_unordered(state.config.failover_concurrency)
        .collect()
        .await;
    for outcome in outcomes {
        match outcome {
            Ok(MoveOutcome::Moved { resumed, .. }) => {
                report.moved += 1;
                report.resumed += usize::from(resumed);
            }
            Ok(MoveOutcome::Waiting) => report.waiting += 1,
            Ok(MoveOutcome::Skipped(_)) => report.skipped += 1,
            Err(err) => {
                report.failed += 1;
                tracing::error!(error = %err, "session failover failed");
            }
        }
    }
    let elapsed_ms = started.elapsed().as_millis() as u64;
    tracing::info!(?report, elapsed_ms, "failover done");
    audit::record(
        &state.db,
        "fleet",
        AuditEntry::new("failover")
            .level(if report.waiting + report.failed > 0 { LogLevel::Warn } else { LogLevel::Info })
            .worker(worker_id)
            .details(serde_json::json!({
                "total": report.total, "moved": report.moved, "resumed": report.resumed,
                "waiting": report.waiting, "failed": report.failed, "elapsedMs": elapsed_ms,
            })),
    );
    Ok(report)
}

/// Starts failover in the background (tracked for shutdown).
pub fn spawn_on_worker_lost(state: &SharedState, worker_id: &str) {
    let st = state.clone();
    let id = worker_id.to_owned();
    let span = tracing::info_span!("failover", worker_id = %worker_id);
    state.tasks.spawn(
        async move {
            if let Err(err) = on_worker_lost(&st, &id).await {
                tracing::error!(error = %err, "failover aborted");
            }
        }
        .instrument(span),
    );
}

/// Dispatches again the unacknowledged sends of a session that just became
/// CONNECTED (accepted while it moved, or in flight on a lost worker).
pub fn spawn_redispatch(state: &SharedState, session_id: &str) {
    spawn_redispatch_before(state, session_id, Utc::now() + chrono::Duration::days(1));
}

/// This replica's re-dispatch rounds: which sessions have one running, and
/// how many rounds ran and how many of them found rows but sent nothing
/// (every row claimed by another replica meanwhile; anything else would be
/// a row hidden from the sweep, which must not happen).
#[derive(Debug, Default)]
pub struct Redispatches {
    busy: std::sync::Mutex<std::collections::HashSet<String>>,
    rounds: std::sync::atomic::AtomicU64,
    empty_rounds: std::sync::atomic::AtomicU64,
}

impl Redispatches {
    /// Rounds that dispatched at least one send.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Rounds that had candidates and dispatched none of them.
    pub fn empty_rounds(&self) -> u64 {
        self.empty_rounds.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn claim(&self, session_id: &str) -> bool {
        self.lock().insert(session_id.to_owned())
    }

    fn done(&self, session_id: &str) {
        self.lock().remove(session_id);
    }

    fn record(&self, candidates: usize, dispatched: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        if dispatched > 0 {
            self.rounds.fetch_add(1, Relaxed);
            metrics::redispatch_round("dispatched");
        } else if candidates > 0 {
            self.empty_rounds.fetch_add(1, Relaxed);
            metrics::redispatch_round("empty");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Dispatches again the unacknowledged sends of a session last dispatched
/// before `cutoff` (the sweep: stream lost, timeout with no later event,
/// replica died). Messages this replica has in flight, or acked and not yet
/// written, are skipped; each dispatch claims its attempt in the ledger
/// first, so two re-dispatchers never send the same attempt.
pub fn spawn_redispatch_before(state: &SharedState, session_id: &str, cutoff: DateTime<Utc>) {
    if !state.redispatches.claim(session_id) {
        return;
    }
    let st = state.clone();
    let id = session_id.to_owned();
    let span = tracing::info_span!("redispatch", session_id = %session_id);
    state.tasks.spawn(
        async move {
            if let Err(err) = redispatch(&st, &id, cutoff).await {
                tracing::warn!(error = %err, "re-dispatch of pending sends stopped");
            }
            st.redispatches.done(&id);
        }
        .instrument(span),
    );
}

async fn redispatch(state: &SharedState, session_id: &str, cutoff: DateTime<Utc>) -> CpResult<()> {
    let db = &state.db;
    let Some((worker_id, generation)) = sessions::connected_placement(db, session_id).await? else {
        return Ok(());
    };
    // Rows this replica has in flight, or acked and waiting for their
    // write, are not candidates: they are settled by their own dispatch.
    let rows: Vec<_> = message_dispatch::unacked(db, session_id, cutoff)
        .await?
        .into_iter()
        .filter(|row| !state.send_tracker.contains(&row.id))
        .collect();
    let candidates = rows.len();
    let mut dispatched = 0;
    let result = redispatch_rows(state, session_id, &worker_id, generation, rows, &mut dispatched).await;
    state.redispatches.record(candidates, dispatched);
    if dispatched > 0 {
        tracing::info!(dispatched, candidates, worker_id, "re-dispatched unacknowledged sends");
    } else if candidates > 0 {
        tracing::debug!(candidates, worker_id, "unacknowledged sends claimed elsewhere: none re-dispatched");
    }
    result
}

async fn redispatch_rows(
    state: &SharedState,
    session_id: &str,
    worker_id: &str,
    generation: i64,
    rows: Vec<Unacked>,
    dispatched: &mut usize,
) -> CpResult<()> {
    let db = &state.db;
    for row in rows {
        let message_id = row.id.clone();
        let attempts = row.attempts;
        // The guard ends the entry on every path out of this iteration.
        let Some(guard) = state.send_tracker.begin(&message_id) else {
            // Began here since the query (a send or another round).
            continue;
        };
        if !message_dispatch::claim_attempt(db, &message_id, attempts).await? {
            continue;
        }
        let send = v1::SendMessage {
            session_id: session_id.to_owned(),
            generation: u64::try_from(generation).unwrap_or_default(),
            message_id: message_id.clone(),
            to: row.to_number.clone(),
            content: Some(content_of(&row)?),
            attempt: u32::try_from(attempts + 1).unwrap_or(u32::MAX),
        };
        *dispatched += 1;
        match dispatch::dispatch_tracked(state, worker_id, send, Unreached::Keep, guard).await {
            SendOutcome::Sent => metrics::MESSAGES_REDISPATCHED.inc(),
            SendOutcome::Failed { .. } => {}
            // The session's worker is gone or stuck: stop; the next
            // CONNECTED (or sweep) picks the rest up.
            SendOutcome::Lost(e) | SendOutcome::TimedOut(e) | SendOutcome::NotReached(e) => {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// Rebuilds the message payload from its row.
fn content_of(row: &Unacked) -> CpResult<v1::MessageContent> {
    let kind = row.message_type;
    let text = row.content.clone();
    let metadata = row.metadata.clone();
    let meta: serde_json::Value = metadata.and_then(|m| serde_json::from_str(&m).ok()).unwrap_or_default();
    let proto_kind = match kind {
        crate::persistence::enums::MessageType::Text => v1::MessageType::Text,
        crate::persistence::enums::MessageType::Image => v1::MessageType::Image,
        crate::persistence::enums::MessageType::Document => v1::MessageType::Document,
        crate::persistence::enums::MessageType::Audio => v1::MessageType::Audio,
        crate::persistence::enums::MessageType::Video => v1::MessageType::Video,
        crate::persistence::enums::MessageType::Sticker => v1::MessageType::Sticker,
        crate::persistence::enums::MessageType::Location => v1::MessageType::Location,
        crate::persistence::enums::MessageType::Contact => v1::MessageType::Contact,
    };
    let s = |k: &str| meta.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let media = meta.get("media");
    let media_s = |k: &str| media.and_then(|v| v.get(k)).and_then(|v| v.as_str()).map(str::to_owned);
    Ok(v1::MessageContent {
        r#type: proto_kind as i32,
        text,
        media_url: row.media_url.clone(),
        caption: row.caption.clone(),
        filename: row.filename.clone(),
        latitude: meta.get("latitude").and_then(serde_json::Value::as_f64),
        longitude: meta.get("longitude").and_then(serde_json::Value::as_f64),
        name: s("name"),
        phone: s("phone"),
        vcard: s("vcard"),
        media_id: media_s("id"),
        mime_type: media_s("mimeType"),
        media_size: media.and_then(|v| v.get("size")).and_then(serde_json::Value::as_u64),
        media_sha256: media_s("sha256"),
    })
}
