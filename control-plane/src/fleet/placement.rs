//! Least-loaded placement of sessions on workers.
//!
//! A slot is reserved with one atomic `UPDATE … RETURNING` inside the
//! caller's transaction: the candidate is the ONLINE worker with free
//! capacity and the fewest sessions (then lowest cpu, then memory), and the
//! update re-checks capacity under the row lock. On PostgreSQL the candidate
//! is picked `FOR UPDATE SKIP LOCKED`, so concurrent creates spread over
//! workers instead of queueing on one row; a create that found every free
//! worker locked retries. Safe across any number of control-plane replicas.
//!
//! A user's own create/start goes through [`reserve_slot_for`], which also
//! applies the share of the fleet held back for paid tiers.

use std::time::Duration;

use crate::persistence::{Conn, DbErr};

use crate::persistence::enums::UserTier;
use crate::persistence::{Db, workers};

/// Reserves one session slot on any worker but `exclude`; `None` when no
/// worker has capacity.
pub async fn reserve_slot<C: Conn>(
    db: &Db,
    conn: &C,
    exclude: Option<&str>,
) -> Result<Option<String>, DbErr> {
    let exclude = exclude.unwrap_or_default();
    for attempt in 0..50u32 {
        if let Some(id) = workers::pick_slot(conn, db, exclude).await? {
            return Ok(Some(id));
        }
        // Nothing reserved: either no capacity, or every free worker was
        // locked by a concurrent create (PostgreSQL SKIP LOCKED).
        let free = workers::free_slots(conn, db, exclude).await?;
        if free == 0 || !db.is_postgres() {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(2 + u64::from(attempt))).await;
    }
    Ok(None)
}

/// Gives a slot back (session deleted, or its start failed).
pub async fn release_slot<C: Conn>(db: &Db, conn: &C, worker_id: &str) -> Result<(), DbErr> {
    workers::release_slot(conn, db, worker_id).await
}

/// What [`reserve_slot_for`] got for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A slot on this worker, counted in its `session_count`.
    Reserved(String),
    /// Every ONLINE worker is full (or there is none).
    NoCapacity,
    /// Free slots remain, but they are held back for paid tiers.
    HeldForPaidTiers,
}

/// Serialises BASIC admissions on PostgreSQL while a reserve is set, so the
/// used-slots check and the reservation cannot interleave across replicas.
const BASIC_ADMISSION_LOCK: i64 = 0x7761_6761_7465_0012;

/// Whether a BASIC user may take a slot: used slots stay below
/// `total × (1 − reserve%)` (10 slots, 20 % → the 8th is the last).
pub fn basic_may_place(used: i64, total: i64, paid_reserve_percent: u8) -> bool {
    used.saturating_mul(100) < total.saturating_mul(100 - i64::from(paid_reserve_percent.min(100)))
}

/// Reserves a slot for a user's own create/start: the one place of the
/// paid-tier reserve (`WAGATE_PAID_RESERVE_PERCENT`). BASIC users only get a
/// slot while the fleet's used slots stay below its capacity minus the
/// reserve; PRO and MAX place on any free slot. Failover, drain and the
/// waiting queue keep placing with [`reserve_slot`]: a session that already
/// held a slot is never refused by the reserve.
pub async fn reserve_slot_for<C: Conn>(
    db: &Db,
    conn: &C,
    tier: UserTier,
    paid_reserve_percent: u8,
) -> Result<Admission, DbErr> {
    if tier == UserTier::Basic && paid_reserve_percent > 0 {
        workers::advisory_lock(conn, db, BASIC_ADMISSION_LOCK).await?;
        let (total, used) = workers::online_slots(conn, db).await?;
        if used >= total {
            return Ok(Admission::NoCapacity);
        }
        if !basic_may_place(used, total, paid_reserve_percent) {
            tracing::info!(
                used,
                total,
                paid_reserve_percent,
                "basic placement refused: capacity held for paid tiers"
            );
            return Ok(Admission::HeldForPaidTiers);
        }
    }
    Ok(match reserve_slot(db, conn, None).await? {
        Some(worker_id) => Admission::Reserved(worker_id),
        None => Admission::NoCapacity,
    })
}

#[cfg(test)]
mod tests {
    use super::basic_may_place;

    #[test]
    fn the_reserve_holds_back_a_share_from_basic() {
        // 10 slots, 20 %: BASIC fills 8.
        assert!(basic_may_place(7, 10, 20));
        assert!(!basic_may_place(8, 10, 20));
        // No reserve: everything.
        assert!(basic_may_place(9, 10, 0));
        assert!(!basic_may_place(10, 10, 0));
        // Rounds in favour of the reserve: 3 slots, 50 % → 1.
        assert!(basic_may_place(1, 3, 50));
        assert!(!basic_may_place(2, 3, 50));
        assert!(!basic_may_place(0, 0, 20));
    }
}
