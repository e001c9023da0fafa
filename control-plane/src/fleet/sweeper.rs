//! The periodic fleet sweep. With several control-plane replicas only the
//! holder of the `sweep` lease (Redis, or in-process) runs it:
//! - place sessions that wait for capacity;
//! - catch workers whose replica died with them (ONLINE, silent, held by no
//!   replica) → OFFLINE + failover;
//! - apply `worker_metrics` retention;
//! - refresh the fleet gauges; rebalance when periodic rebalancing is on.

use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::ConnectionTrait;
use tracing::Instrument;

use crate::error::CpResult;
use crate::fleet::mover::{MoveMode, move_session};
use crate::fleet::{capacity, failover, rebalance};
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
    place_waiting(state).await?;
    redispatch_stale_pending(state).await?;
    orphaned_workers(state).await?;
    capacity::status(state).await?;
    Ok(())
}

/// Places sessions that wait for a worker, oldest first, while capacity lasts.
pub async fn place_waiting(state: &SharedState) -> CpResult<usize> {
    let db = &state.db;
    let rows = db
        .conn
        .query_all_raw(db.stmt(
            "SELECT id FROM sessions WHERE worker_id IS NULL AND status <> 'DISCONNECTED' ORDER BY updated_at, id LIMIT 100",
            vec![],
        ))
        .await?;
    let mut placed = 0;
    for row in rows {
        let id: String = row.try_get("", "id")?;
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
    let db = &state.db;
    let now = Utc::now();
    let never_after = now - chrono::Duration::seconds(3);
    let stale = now - chrono::Duration::from_std(state.config.redispatch_after).unwrap_or_default();
    let rows = db
        .conn
        .query_all_raw(db.stmt(
            "SELECT DISTINCT d.session_id FROM message_dispatch d JOIN sessions s ON s.id = d.session_id \
             WHERE s.status = 'CONNECTED' AND ((d.dispatched_at IS NULL AND d.created_at < $1) OR d.dispatched_at < $2) \
             LIMIT 500",
            vec![never_after.into(), stale.into()],
        ))
        .await?;
    for row in &rows {
        let id: String = row.try_get("", "session_id")?;
        failover::spawn_redispatch_before(state, &id, stale);
    }
    Ok(rows.len())
}

/// ONLINE workers that stopped heartbeating and are held by no replica.
async fn orphaned_workers(state: &SharedState) -> CpResult<()> {
    let db = &state.db;
    let cutoff =
        Utc::now() - chrono::Duration::from_std(state.config.liveness_timeout() * 3).unwrap_or_default();
    let rows = db
        .conn
        .query_all_raw(db.stmt(
            "SELECT id FROM workers WHERE status IN ('ONLINE', 'MAINTENANCE') AND last_heartbeat < $1",
            vec![cutoff.into()],
        ))
        .await?;
    for row in rows {
        let id: String = row.try_get("", "id")?;
        if state.registry.get(&id).is_some() || state.cache.get_worker_replica(&id).await?.is_some() {
            continue;
        }
        let res = db
            .conn
            .execute_raw(db.stmt(
                "UPDATE workers SET status = 'OFFLINE', updated_at = $1 WHERE id = $2 AND status <> 'OFFLINE' AND last_heartbeat < $3",
                vec![Utc::now().into(), id.clone().into(), cutoff.into()],
            ))
            .await?;
        if res.rows_affected() > 0 {
            tracing::warn!(worker_id = id, "worker silent and held by no replica: offline");
            failover::spawn_on_worker_lost(state, &id);
        }
    }
    Ok(())
}

async fn retention(state: &SharedState) -> CpResult<()> {
    let db = &state.db;
    let cutoff = Utc::now() - chrono::Duration::from_std(state.config.metrics_retention).unwrap_or_default();
    let res = db
        .conn
        .execute_raw(db.stmt("DELETE FROM worker_metrics WHERE timestamp < $1", vec![cutoff.into()]))
        .await?;
    if res.rows_affected() > 0 {
        tracing::info!(deleted = res.rows_affected(), "worker metrics retention");
    }
    Ok(())
}
