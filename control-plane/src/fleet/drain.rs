//! Drain: take a worker out of placement (MAINTENANCE) and move its sessions
//! one by one — StartSession on the new worker with the snapshot, then
//! StopSession on the old one (also when no worker had room and the session
//! waits for capacity). Removing a worker (`admin_workers::delete`) drains
//! it first.

use crate::error::{CpResult, api};
use crate::fleet::mover::{MoveMode, MoveOutcome, move_session};
use crate::persistence::{sessions, workers};
use crate::state::SharedState;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DrainReport {
    pub worker_id: String,
    pub total: usize,
    pub moved: usize,
    pub waiting: usize,
    pub skipped: usize,
    pub failed: usize,
    /// Sessions still on the worker afterwards.
    pub remaining: usize,
}

pub async fn drain(state: &SharedState, worker_id: &str) -> CpResult<DrainReport> {
    if !workers::enter_maintenance(&state.db, worker_id).await? {
        return Err(api(wagate_proto::error::ErrorCode::NotFound, "worker not found"));
    }
    let ids = session_ids(state, worker_id).await?;
    let mut report = DrainReport { worker_id: worker_id.to_owned(), total: ids.len(), ..Default::default() };
    for (i, id) in ids.iter().enumerate() {
        match move_session(state, id, Some(worker_id), MoveMode::Drain).await {
            Ok(MoveOutcome::Moved { .. }) => report.moved += 1,
            Ok(MoveOutcome::Waiting) => report.waiting += 1,
            Ok(MoveOutcome::Skipped(_)) => report.skipped += 1,
            Err(err) => {
                report.failed += 1;
                tracing::warn!(session_id = id, error = %err, "drain move failed");
            }
        }
        tracing::info!(worker_id, progress = i + 1, total = ids.len(), "draining");
    }
    report.remaining = session_ids(state, worker_id).await?.len();
    crate::audit::record(
        &state.db,
        "fleet",
        crate::audit::AuditEntry::new("worker drained").worker(worker_id).details(serde_json::json!({
            "total": report.total, "moved": report.moved, "waiting": report.waiting, "remaining": report.remaining,
        })),
    );
    Ok(report)
}

pub(crate) async fn session_ids(state: &SharedState, worker_id: &str) -> CpResult<Vec<String>> {
    Ok(sessions::on_worker_oldest_first(&state.db, worker_id).await?)
}
