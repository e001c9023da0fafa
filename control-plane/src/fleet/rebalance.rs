//! Rebalance: move a bounded number of sessions from the busiest ONLINE
//! workers to the idlest, until their counts differ by at most one. A
//! session with a PENDING send (mid-send) is never moved.

use sea_orm::ConnectionTrait;

use crate::error::CpResult;
use crate::fleet::mover::{MoveMode, MoveOutcome, move_session};
use crate::state::SharedState;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RebalanceReport {
    /// (session id, from, to)
    pub moves: Vec<(String, String, String)>,
}

struct Load {
    id: String,
    count: i64,
    max: i64,
}

const MOVABLE: &str = "SELECT s.id FROM sessions s WHERE s.worker_id = $1 AND s.status = 'CONNECTED' \
    AND NOT EXISTS (SELECT 1 FROM message_dispatch d WHERE d.session_id = s.id) \
    ORDER BY s.created_at DESC, s.id LIMIT 1";

pub async fn rebalance(state: &SharedState, max_moves: u32) -> CpResult<RebalanceReport> {
    let db = &state.db;
    let mut report = RebalanceReport::default();
    for _ in 0..max_moves {
        let rows = db
            .conn
            .query_all_raw(db.stmt(
                "SELECT id, session_count, max_sessions FROM workers WHERE status = 'ONLINE' AND max_sessions > 0",
                vec![],
            ))
            .await?;
        let loads: Vec<Load> = rows
            .iter()
            .filter_map(|r| {
                Some(Load {
                    id: r.try_get("", "id").ok()?,
                    count: i64::from(r.try_get::<i32>("", "session_count").ok()?),
                    max: i64::from(r.try_get::<i32>("", "max_sessions").ok()?),
                })
            })
            .collect();
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
        let Some(candidate) =
            db.conn.query_one_raw(db.stmt(MOVABLE, vec![busiest.id.clone().into()])).await?
        else {
            break;
        };
        let session_id: String = candidate.try_get("", "id")?;
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
