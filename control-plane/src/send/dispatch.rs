//! Dispatching a send to the worker that runs its session, and settling
//! the outcome. Both the hot path (`services::messages`) and the
//! re-dispatch (`fleet::failover`) go through [`dispatch_tracked`]; the
//! worker is called in exactly one place, [`call_worker`], through the
//! cluster-aware [`crate::dispatch::Dispatcher`] (local stream, or the
//! replica that holds it).

use crate::persistence::DbErr;
use chrono::Utc;
use wagate_proto::v1;

use crate::persistence::status_writer::StatusUpdate;
use crate::persistence::{message_dispatch, messages};
use crate::send::tracker::InFlight;
use crate::state::SharedState;
use crate::stream::registry::DispatchError;
use crate::telemetry::metrics;

/// How a dispatch ended.
#[derive(Debug)]
pub enum SendOutcome {
    /// Acked: SENT (with the WhatsApp message id) is queued with the status writer.
    Sent,
    /// The worker refused it, or it could not be handed to any worker:
    /// FAILED with the reason (safe for the caller to retry).
    Failed { reason: String, error: Option<DispatchError> },
    /// The stream went away with the command in flight: stays PENDING and is
    /// dispatched again on the session's next worker.
    Lost(DispatchError),
    /// No answer in time: outcome unknown, stays PENDING (its events settle
    /// it; the sweep dispatches it again if nothing comes).
    TimedOut(DispatchError),
    /// A re-dispatch could not reach the worker (not connected, busy): stays
    /// PENDING for the next re-dispatch.
    NotReached(DispatchError),
}

/// What a dispatch that reaches no worker does with the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreached {
    /// FAILED (the hot path: the caller gets the error and may retry).
    Fail,
    /// Left PENDING (a re-dispatch: it was accepted long ago).
    Keep,
}

/// Sends one `SendMessage` to `worker_id` and waits for its result. The
/// single place where a send meets the worker registry.
pub async fn call_worker(
    state: &SharedState,
    worker_id: &str,
    send: v1::SendMessage,
) -> Result<v1::CommandResult, DispatchError> {
    state.dispatcher.run(worker_id, send).await
}

/// Dispatches `send` under its tracker entry `guard` and settles the row by
/// the outcome. The entry ends with the guard (kept as acked after an ack),
/// also if this future is dropped half-way.
pub async fn dispatch_tracked(
    state: &SharedState,
    worker_id: &str,
    send: v1::SendMessage,
    unreached: Unreached,
    guard: InFlight,
) -> SendOutcome {
    debug_assert_eq!(guard.id(), send.message_id);
    let id = send.message_id.clone();
    if send.attempt > 1 {
        metrics::SEND_REDISPATCHES.inc();
        tracing::info!(message_id = %id, attempt = send.attempt, worker_id, "re-dispatching send");
    }
    let outcome = call_worker(state, worker_id, send).await;
    match outcome {
        Ok(result) if result.ok => {
            let wa_message_id = match result.payload {
                Some(v1::command_result::Payload::SendReceipt(r)) => Some(r.wa_message_id),
                _ => None,
            };
            guard.acked();
            // Batched off the hot path (the row is durable as PENDING and the
            // tracker keeps it from being dispatched again until written).
            let update = StatusUpdate::Sent { id: id.clone(), at: Utc::now(), wa_message_id };
            if let Err(err) = state.status_writer.submit(update).await {
                tracing::error!(message_id = %id, error = %err, "SENT not written; the message stays tracked as acked");
            }
            metrics::MESSAGES_SENT.inc();
            SendOutcome::Sent
        }
        Ok(result) => {
            let reason = if result.error_message.is_empty() {
                result.error_code.clone()
            } else {
                result.error_message.clone()
            };
            settle_failed(state, guard, &reason).await;
            SendOutcome::Failed { reason, error: None }
        }
        Err(e @ DispatchError::StreamClosed(_)) => {
            tracing::warn!(message_id = %id, worker_id, "worker lost mid-send, queued for failover");
            SendOutcome::Lost(e)
        }
        Err(e @ DispatchError::Timeout(_)) => SendOutcome::TimedOut(e),
        Err(e) if unreached == Unreached::Keep => SendOutcome::NotReached(e),
        Err(e) => {
            // Never reached a worker: FAILED, safe to retry.
            settle_failed(state, guard, &e.to_string()).await;
            SendOutcome::Failed { reason: e.to_string(), error: Some(e) }
        }
    }
}

/// FAILED, then the entry ends (the guard is dropped after the write, so no
/// re-dispatch sees the row PENDING and untracked in between).
async fn settle_failed(state: &SharedState, guard: InFlight, reason: &str) {
    if let Err(err) = mark_failed(state, guard.id(), reason).await {
        tracing::warn!(message_id = %guard.id(), error = %err, "could not mark send FAILED; it stays PENDING");
    }
}

/// PENDING → FAILED with `reason`, and out of the dispatch ledger.
pub async fn mark_failed(state: &SharedState, id: &str, reason: &str) -> Result<(), DbErr> {
    metrics::MESSAGES_FAILED.inc();
    let db = &state.db;
    messages::fail_pending(db, id, reason.chars().take(1000).collect()).await?;
    message_dispatch::remove(db, id).await
}
