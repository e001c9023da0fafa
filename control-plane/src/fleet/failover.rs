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
use crate::metrics;
use crate::persistence::enums::LogLevel;
use crate::persistence::{message_dispatch, sessions};
use crate::send_dispatch::{self, SendOutcome, Unreached};
use crate::state::SharedState;

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

/// Dispatches again the unacknowledged sends of a session last dispatched
/// before `cutoff` (the sweep: stream lost, timeout with no later event,
/// replica died). Messages this replica has in flight, or acked and not yet
/// written, are skipped; each dispatch claims its attempt in the ledger
/// first, so two re-dispatchers never send the same attempt.
pub fn spawn_redispatch_before(state: &SharedState, session_id: &str, cutoff: DateTime<Utc>) {
    {
        let mut busy = state.redispatching.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !busy.insert(session_id.to_owned()) {
            return;
        }
    }
    let st = state.clone();
    let id = session_id.to_owned();
    let span = tracing::info_span!("redispatch", session_id = %session_id);
    state.tasks.spawn(
        async move {
            if let Err(err) = redispatch(&st, &id, cutoff).await {
                tracing::warn!(error = %err, "re-dispatch of pending sends stopped");
            }
            st.redispatching.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
        }
        .instrument(span),
    );
}

async fn redispatch(state: &SharedState, session_id: &str, cutoff: DateTime<Utc>) -> CpResult<()> {
    let db = &state.db;
    let Some((worker_id, generation)) = sessions::connected_placement(db, session_id).await? else {
        return Ok(());
    };
    let rows = message_dispatch::unacked(db, session_id, cutoff).await?;
    if rows.is_empty() {
        return Ok(());
    }
    tracing::info!(count = rows.len(), worker_id, "re-dispatching unacknowledged sends");
    for row in rows {
        let message_id: String = row.try_get("", "id")?;
        let attempts: i32 = row.try_get("", "attempts")?;
        if !state.send_tracker.begin(&message_id) {
            // In flight here, or acked and waiting for its write.
            continue;
        }
        match message_dispatch::claim_attempt(db, &message_id, attempts).await {
            Ok(true) => {}
            Ok(false) => {
                state.send_tracker.release(&message_id);
                continue;
            }
            Err(e) => {
                state.send_tracker.release(&message_id);
                return Err(e.into());
            }
        }
        let content = match content_of(&row) {
            Ok(c) => c,
            Err(e) => {
                state.send_tracker.release(&message_id);
                return Err(e);
            }
        };
        let send = v1::SendMessage {
            session_id: session_id.to_owned(),
            generation: u64::try_from(generation).unwrap_or_default(),
            message_id: message_id.clone(),
            to: row.try_get("", "to_number").unwrap_or_default(),
            content: Some(content),
            attempt: u32::try_from(attempts + 1).unwrap_or(u32::MAX),
        };
        match send_dispatch::dispatch_tracked(state, &worker_id, send, Unreached::Keep).await {
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
fn content_of(row: &sea_orm::QueryResult) -> CpResult<v1::MessageContent> {
    let kind: crate::persistence::enums::MessageType = row.try_get("", "message_type")?;
    let text: String = row.try_get("", "content")?;
    let metadata: Option<String> = row.try_get("", "metadata")?;
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
    Ok(v1::MessageContent {
        r#type: proto_kind as i32,
        text,
        media_url: row.try_get("", "media_url")?,
        caption: row.try_get("", "caption")?,
        filename: row.try_get("", "filename")?,
        latitude: meta.get("latitude").and_then(serde_json::Value::as_f64),
        longitude: meta.get("longitude").and_then(serde_json::Value::as_f64),
        name: s("name"),
        phone: s("phone"),
        vcard: s("vcard"),
    })
}
