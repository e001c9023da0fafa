//! Moving one session to another worker.
//!
//! In one transaction: the session row is re-read (and locked on
//! PostgreSQL), a slot is reserved on the least-loaded other worker, the
//! generation is bumped, the old slot is released. Then StartSession goes to
//! the new worker with the last auth-state snapshot, so a paired session
//! resumes (RECONNECTING → CONNECTED) without a QR scan. Everything the old
//! worker still says about the session carries the old generation and is
//! ignored (events are fenced; a returning worker is told to stop it).

use chrono::Utc;
use wagate_proto::v1;

use crate::error::CpResult;
use crate::fleet::placement;
use crate::persistence::enums::SessionStatus;
use crate::persistence::sessions::{self, Fence, Undo};
use crate::state::SharedState;
use crate::stream::custody;
use crate::telemetry::metrics;
use crate::webhooks::outbox;

pub const WAITING_REASON: &str = "waiting for a worker with free capacity";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveMode {
    /// The old worker is gone: just start elsewhere.
    Failover,
    /// The old worker is alive: start elsewhere, then stop it there.
    Drain,
    /// The session has no worker yet (waited for capacity).
    Place,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveOutcome {
    Moved {
        to: String,
        generation: u64,
        resumed: bool,
    },
    /// No worker had capacity; the session waits with a reason.
    Waiting,
    /// Nothing to do (deleted, already moved, logged out).
    Skipped(&'static str),
}

pub async fn move_session(
    state: &SharedState,
    session_id: &str,
    from: Option<&str>,
    mode: MoveMode,
) -> CpResult<MoveOutcome> {
    let db = &state.db;
    let snapshot = match custody::load(db, &state.vault, session_id).await {
        Ok(s) => s,
        Err(err) => {
            tracing::warn!(session_id, error = %err, "auth-state snapshot unreadable, session will need a QR scan");
            None
        }
    };
    let now = Utc::now();
    let txn = db.begin().await?;
    sessions::lock_row(&txn, db, session_id).await?;
    let Some(row) = sessions::by_id(&txn, session_id).await? else {
        return Ok(MoveOutcome::Skipped("deleted"));
    };
    if row.worker_id.as_deref() != from {
        return Ok(MoveOutcome::Skipped("already moved"));
    }
    if row.status == SessionStatus::Disconnected {
        // Logged out: nothing to resume; just free the dead worker's slot.
        if let Some(f) = from {
            sessions::clear_worker(&txn, db, session_id, now).await?;
            placement::release_slot(db, &txn, f).await?;
        }
        txn.commit().await?;
        crate::auth::invalidation::session(state, session_id).await;
        return Ok(MoveOutcome::Skipped("disconnected"));
    }
    let generation = row.generation + 1;
    let target = placement::reserve_slot(db, &txn, from).await?;
    let Some(target) = target else {
        sessions::wait_for_capacity(&txn, db, session_id, WAITING_REASON, generation, now).await?;
        if let Some(f) = from {
            placement::release_slot(db, &txn, f).await?;
        }
        let event =
            outbox::session_status(&txn, state, session_id, "INIT", Some(WAITING_REASON.into())).await?;
        txn.commit().await?;
        if event {
            state.webhooks.committed();
        }
        crate::auth::invalidation::session(state, session_id).await;
        tracing::warn!(session_id, "no worker with free capacity, session waits");
        stop_on_drained(state, mode, from, session_id, row.generation).await;
        return Ok(MoveOutcome::Waiting);
    };
    let resumed = snapshot.is_some();
    let status = if resumed { "RECONNECTING" } else { "INIT" };
    // The QR timeout's clock: kept across a move of an unpaired session,
    // started when a session lands on a worker to wait for a scan.
    sessions::place_moved(&txn, db, session_id, &target, generation, resumed, now).await?;
    if let Some(f) = from {
        placement::release_slot(db, &txn, f).await?;
    }
    let reason = format!("moved to worker {target} ({mode:?})");
    let event = outbox::session_status(&txn, state, session_id, status, Some(reason)).await?;
    txn.commit().await?;
    if event {
        state.webhooks.committed();
    }
    crate::auth::invalidation::session(state, session_id).await;

    let generation_u = u64::try_from(generation).unwrap_or_default();
    let start = v1::StartSession {
        session_id: session_id.to_owned(),
        generation: generation_u,
        name: row.name.clone(),
        auth_state: snapshot,
    };
    let started = state.dispatcher.run(&target, start).await;
    let failure = match started {
        Ok(r) if r.ok => None,
        Ok(r) => Some(format!("{}: {}", r.error_code, r.error_message)),
        Err(e) => Some(e.to_string()),
    };
    if let Some(reason) = failure {
        tracing::warn!(session_id, worker_id = target, reason, "start on new worker failed, session waits");
        let txn = db.begin().await?;
        let fence = Fence::new(session_id, &target, generation);
        let why = format!("{WAITING_REASON} (start on {target} failed: {reason})");
        let reverted = sessions::undo_placement(&txn, db, &fence, Undo::Move, why, Utc::now()).await?;
        let mut event = false;
        if reverted > 0 {
            placement::release_slot(db, &txn, &target).await?;
            let why = format!("{WAITING_REASON} (start on {target} failed: {reason})");
            event = outbox::session_status(&txn, state, session_id, "INIT", Some(why)).await?;
        }
        txn.commit().await?;
        if event {
            state.webhooks.committed();
        }
        crate::auth::invalidation::session(state, session_id).await;
        stop_on_drained(state, mode, from, session_id, row.generation).await;
        return Ok(MoveOutcome::Waiting);
    }
    stop_on_drained(state, mode, from, session_id, row.generation).await;
    metrics::SESSIONS_MOVED.inc();
    tracing::info!(session_id, from = ?from, to = target, generation, resumed, ?mode, "session moved");
    Ok(MoveOutcome::Moved { to: target, generation: generation_u, resumed })
}

/// A drain stops the session on the worker it leaves (with the generation
/// that worker runs), whether it moved or now waits for capacity: a drained
/// or removed worker keeps no session running that it no longer owns.
async fn stop_on_drained(
    state: &SharedState,
    mode: MoveMode,
    from: Option<&str>,
    session_id: &str,
    generation: i64,
) {
    let (MoveMode::Drain, Some(old)) = (mode, from) else {
        return;
    };
    let stop = v1::StopSession {
        session_id: session_id.to_owned(),
        generation: u64::try_from(generation).unwrap_or_default(),
    };
    if let Err(err) = state.dispatcher.run(old, stop).await {
        tracing::warn!(session_id, worker_id = old, error = %err, "stop on the old worker not delivered");
    }
}
