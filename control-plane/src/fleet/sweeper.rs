//! The periodic fleet sweep. With several control-plane replicas only the
//! holder of the `sweep` lease (Redis, or in-process) runs it:
//! - expire sessions never paired within the QR timeout (their slots first);
//! - place sessions that wait for capacity;
//! - catch workers whose replica died with them (ONLINE, silent, held by no
//!   replica) → OFFLINE + failover;
//! - find sessions stranded by an interrupted move and place them again;
//! - apply `worker_metrics` retention;
//! - refresh the fleet gauges; rebalance when periodic rebalancing is on.

use std::time::{Duration, Instant};

use chrono::Utc;
use tracing::Instrument;

use crate::error::CpResult;
use crate::fleet::mover::{MoveMode, MoveOutcome, move_session};
use crate::fleet::{capacity, failover, qr_timeout, rebalance};
use crate::persistence::{message_dispatch, sessions, workers};
use crate::state::SharedState;

pub fn spawn(state: &SharedState) {
    let st = state.clone();
    let span = tracing::info_span!("fleet_sweeper", replica_id = %state.config.replica_id);
    state.tasks.spawn(
        async move {
            let interval = st.config.sweep_interval;
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_retention = Instant::now() - Duration::from_secs(3600);
            let mut last_rebalance = Instant::now();
            loop {
                tokio::select! {
                    () = st.shutdown.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                match st.cache.try_lease("sweep", &st.config.replica_id, interval * 3).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(err) => {
                        tracing::warn!(error = %err, "sweep lease unavailable");
                        continue;
                    }
                }
                if let Err(err) = sweep_once(&st).await {
                    tracing::warn!(error = %err, "sweep failed");
                }
                if last_retention.elapsed() >= Duration::from_secs(60) {
                    last_retention = Instant::now();
                    if let Err(err) = retention(&st).await {
                        tracing::warn!(error = %err, "metrics retention failed");
                    }
                }
                if let Some(every) = st.config.rebalance_interval
                    && last_rebalance.elapsed() >= every
                {
                    last_rebalance = Instant::now();
                    if let Err(err) = rebalance::rebalance(&st, st.config.rebalance_max_moves).await {
                        tracing::warn!(error = %err, "periodic rebalance failed");
                    }
                }
            }
        }
        .instrument(span),
    );
}

pub async fn sweep_once(state: &SharedState) -> CpResult<()> {
    qr_timeout::expire_unpaired(state).await?;
    place_waiting(state).await?;
    redispatch_stale_pending(state).await?;
    message_dispatch::drop_orphans(&state.db).await?;
    orphaned_workers(state).await?;
    stranded_sessions(state).await?;
    capacity::status(state).await?;
    Ok(())
}

/// Places sessions that wait for a worker, oldest first, while capacity lasts.
pub async fn place_waiting(state: &SharedState) -> CpResult<usize> {
    let mut placed = 0;
    for id in sessions::waiting(&state.db).await? {
        match move_session(state, &id, None, MoveMode::Place).await? {
            crate::fleet::MoveOutcome::Moved { .. } => placed += 1,
            crate::fleet::MoveOutcome::Waiting => break,
            crate::fleet::MoveOutcome::Skipped(_) => {}
        }
    }
    Ok(placed)
}

/// Sends no worker has acknowledged, on CONNECTED sessions: accepted while
/// the session moved but written after its re-dispatch ran (never
/// dispatched, after a few seconds), or last dispatched longer ago than
/// `redispatch_after` (stream lost, timeout with no later event, replica
/// died). The ledger holds only unacknowledged sends, so this scans a small
/// table; messages this replica has in flight or acked-but-unwritten are
/// skipped by the re-dispatch.
pub async fn redispatch_stale_pending(state: &SharedState) -> CpResult<usize> {
    let now = Utc::now();
    let never_after = now - chrono::Duration::seconds(3);
    let stale = now - chrono::Duration::from_std(state.config.redispatch_after).unwrap_or_default();
    let ids = message_dispatch::stale_sessions(&state.db, never_after, stale).await?;
    for id in &ids {
        failover::spawn_redispatch_before(state, id, stale);
    }
    Ok(ids.len())
}

/// ONLINE workers that have not been sampled for a while and whose stream
/// no replica holds (no live route record): their replica died with them.
/// Marked OFFLINE fenced by the epoch read, so a worker that reconnected
/// meanwhile is left alone.
async fn orphaned_workers(state: &SharedState) -> CpResult<()> {
    let cutoff = Utc::now()
        - chrono::Duration::from_std(
            state.config.liveness_timeout() * 3 + state.config.metrics_sample_interval,
        )
        .unwrap_or_default();
    for (id, epoch) in workers::silent_since(&state.db, cutoff).await? {
        if state.registry.get(&id).is_some() || state.cache.get_worker_replica(&id).await?.is_some() {
            continue;
        }
        if workers::mark_orphan_offline(&state.db, &id, epoch, cutoff).await? {
            tracing::warn!(worker_id = id, "worker silent and held by no replica: offline");
            failover::spawn_on_worker_lost(state, &id);
        }
    }
    Ok(())
}

/// Sessions stranded by a multi-step move that did not finish (a process or
/// Redis failure between its steps):
/// - sessions still placed on a worker OFFLINE for longer than the reconnect
///   grace (its failover never ran or stopped half-way) are failed over;
/// - sessions INIT / RECONNECTING for a while on a worker that does not know
///   them (StartSession never reached it) are placed again.
pub async fn stranded_sessions(state: &SharedState) -> CpResult<usize> {
    let grace =
        chrono::Duration::from_std(state.config.reconnect_grace * 3 + state.config.liveness_timeout())
            .unwrap_or_default();
    let mut moved = 0;
    for worker_id in workers::offline_with_sessions(&state.db, Utc::now() - grace).await? {
        if state.registry.get(&worker_id).is_some() {
            continue;
        }
        tracing::warn!(worker_id, "sessions left on an offline worker: failing them over");
        let report = failover::on_worker_lost(state, &worker_id).await?;
        moved += report.moved + report.waiting;
    }
    let stale = Utc::now() - chrono::Duration::from_std(state.config.command_timeout * 2).unwrap_or_default();
    for (id, worker_id) in sessions::starting_since(&state.db, stale).await? {
        let ask = wagate_proto::v1::GetStatus { session_id: id.clone() };
        match state.dispatcher.run(&worker_id, ask).await {
            // The worker runs it (e.g. waiting for its first QR): leave it.
            Ok(r) if r.ok => continue,
            Ok(_) => {}
            // Not reachable now: the worker liveness path decides.
            Err(_) => continue,
        }
        tracing::warn!(session_id = id, worker_id, "session never started on its worker: placing it again");
        if let MoveOutcome::Moved { .. } | MoveOutcome::Waiting =
            move_session(state, &id, Some(&worker_id), MoveMode::Failover).await?
        {
            moved += 1;
        }
    }
    Ok(moved)
}

async fn retention(state: &SharedState) -> CpResult<()> {
    let cutoff = Utc::now() - chrono::Duration::from_std(state.config.metrics_retention).unwrap_or_default();
    let deleted = workers::delete_samples_before(&state.db, cutoff).await?;
    if deleted > 0 {
        tracing::info!(deleted, "worker metrics retention");
    }
    crate::media::retention::sweep(state).await?;
    Ok(())
}
