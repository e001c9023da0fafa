//! Fleet capacity and the scaling signal (for an HPA/KEDA autoscaler).

use crate::error::CpResult;
use crate::persistence;
use crate::state::SharedState;
use crate::telemetry::metrics;

#[derive(Debug, Clone, PartialEq)]
pub struct FleetStatus {
    pub online_workers: i64,
    pub total_slots: i64,
    pub used_slots: i64,
    pub free_slots: i64,
    /// used / total (0 when there is no capacity).
    pub utilization: f64,
    /// Sessions with no worker, waiting for capacity.
    pub waiting_sessions: i64,
    pub target_utilization: f64,
    /// Workers needed to hold used + waiting sessions at the target utilisation.
    pub recommended_workers: i64,
}

pub async fn status(state: &SharedState) -> CpResult<FleetStatus> {
    let db = &state.db;
    let (workers, total, used) = persistence::workers::fleet_slots(db).await?;
    let waiting = persistence::sessions::waiting_count(db).await?;
    let target = state.config.fleet_target_utilization;
    let per_worker = if workers > 0 { total as f64 / workers as f64 } else { 50.0 };
    let demand = (used + waiting) as f64;
    let recommended =
        if demand <= 0.0 { workers.min(1) } else { (demand / (target * per_worker.max(1.0))).ceil() as i64 };
    let status = FleetStatus {
        online_workers: workers,
        total_slots: total,
        used_slots: used,
        free_slots: (total - used).max(0),
        utilization: if total > 0 { used as f64 / total as f64 } else { 0.0 },
        waiting_sessions: waiting,
        target_utilization: target,
        recommended_workers: recommended.max(1),
    };
    metrics::FLEET_TOTAL_SLOTS.set(status.total_slots);
    metrics::FLEET_USED_SLOTS.set(status.used_slots);
    metrics::FLEET_WAITING_SESSIONS.set(status.waiting_sessions);
    metrics::FLEET_RECOMMENDED_WORKERS.set(status.recommended_workers);
    Ok(status)
}
