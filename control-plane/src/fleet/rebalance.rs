//! Rebalance: move a bounded number of sessions from the busiest ONLINE
//! workers to the idlest, until their counts differ by at most one. A
//! session with a PENDING send (mid-send) is never moved.

use crate::error::CpResult;
use crate::fleet::mover::{MoveMode, MoveOutcome, move_session};
use crate::persistence::sessions;
use crate::persistence::workers::{self, Load};
use crate::state::SharedState;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RebalanceReport {
    /// (session id, from, to)
    pub moves: Vec<(String, String, String)>,
}

pub async fn rebalance(state: &SharedState, max_moves: u32) -> CpResult<RebalanceReport> {
    let db = &state.db;
    let mut report = RebalanceReport::default();
    for _ in 0..max_moves {
        let loads = workers::online_loads(db).await?;
        let util = |l: &Load| l.count as f64 / l.max as f64;
        let (Some(busiest), Some(idlest)) = (
            loads.iter().max_by(|a, b| util(a).total_cmp(&util(b))),
            loads.iter().filter(|l| l.count < l.max).min_by(|a, b| util(a).total_cmp(&util(b))),
        ) else {
            break;
        };
        // Stop when a move would not improve the spread.
        if busiest.id == idlest.id || busiest.count - idlest.count <= 1 {
            break;
        }
        let Some(session_id) = sessions::movable_on(db, &busiest.id).await? else {
            break;
        };
        match move_session(state, &session_id, Some(&busiest.id), MoveMode::Drain).await? {
            MoveOutcome::Moved { to, .. } => report.moves.push((session_id, busiest.id.clone(), to)),
            MoveOutcome::Waiting | MoveOutcome::Skipped(_) => break,
        }
    }
    if !report.moves.is_empty() {
        tracing::info!(moves = report.moves.len(), "rebalanced");
    }
    Ok(report)
}
