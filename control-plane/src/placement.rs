//! Least-loaded placement of sessions on workers.
//!
//! A slot is reserved with one atomic `UPDATE … RETURNING` inside the
//! caller's transaction: the candidate is the ONLINE worker with free
//! capacity and the fewest sessions (then lowest cpu, then memory), and the
//! update re-checks capacity under the row lock. On PostgreSQL the candidate
//! is picked `FOR UPDATE SKIP LOCKED`, so concurrent creates spread over
//! workers instead of queueing on one row; a create that found every free
//! worker locked retries. Safe across any number of control-plane replicas.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbErr};

use crate::persistence::Db;

const PICK_PG: &str = "UPDATE workers SET session_count = session_count + 1, updated_at = $1 \
    WHERE id = (SELECT id FROM workers WHERE status = 'ONLINE' AND session_count < max_sessions AND id <> $2 \
                ORDER BY session_count, cpu_usage, memory_usage, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
      AND status = 'ONLINE' AND session_count < max_sessions \
    RETURNING id";

const PICK_SQLITE: &str = "UPDATE workers SET session_count = session_count + 1, updated_at = $1 \
    WHERE id = (SELECT id FROM workers WHERE status = 'ONLINE' AND session_count < max_sessions AND id <> $2 \
                ORDER BY session_count, cpu_usage, memory_usage, id LIMIT 1) \
      AND status = 'ONLINE' AND session_count < max_sessions \
    RETURNING id";

/// Free slots on workers other than the excluded one (the same filter as
/// the pick, or a create that excludes the only free worker would spin).
const FREE_SLOTS: &str =
    "SELECT COUNT(*) AS n FROM workers WHERE status = 'ONLINE' AND session_count < max_sessions AND id <> $1";

/// Reserves one session slot on any worker but `exclude`; `None` when no
/// worker has capacity.
pub async fn reserve_slot<C: ConnectionTrait>(
    db: &Db,
    conn: &C,
    exclude: Option<&str>,
) -> Result<Option<String>, DbErr> {
    let exclude = exclude.unwrap_or_default().to_owned();
    let pick = if db.is_postgres() { PICK_PG } else { PICK_SQLITE };
    for attempt in 0..50u32 {
        let row = conn.query_one_raw(db.stmt(pick, vec![Utc::now().into(), exclude.clone().into()])).await?;
        if let Some(row) = row {
            return Ok(Some(row.try_get::<String>("", "id")?));
        }
        // Nothing reserved: either no capacity, or every free worker was
        // locked by a concurrent create (PostgreSQL SKIP LOCKED).
        let free = conn.query_one_raw(db.stmt(FREE_SLOTS, vec![exclude.clone().into()])).await?;
        let free: i64 = match free {
            Some(r) => r.try_get("", "n")?,
            None => 0,
        };
        if free == 0 || !db.is_postgres() {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(2 + u64::from(attempt))).await;
    }
    Ok(None)
}

/// Gives a slot back (session deleted, or its start failed).
pub async fn release_slot<C: ConnectionTrait>(db: &Db, conn: &C, worker_id: &str) -> Result<(), DbErr> {
    conn.execute_raw(db.stmt(
        "UPDATE workers SET session_count = session_count - 1, updated_at = $1 WHERE id = $2 AND session_count > 0",
        vec![Utc::now().into(), worker_id.into()],
    ))
    .await?;
    Ok(())
}
