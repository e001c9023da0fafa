//! The `sessions` table: every hand-written statement about a session's
//! placement, status and QR clock.
//!
//! The fence it enforces: a write made on behalf of a placement (a worker's
//! event, the revert of a start, a QR expiry) applies only
//! `WHERE id = $session AND worker_id = $worker AND generation = $gen`,
//! rendered by [`Fence`] and nowhere else. Whatever a worker says about a
//! session it no longer runs (moved, restarted, deleted) changes nothing.
//! Placement changes (start, move, detach) bump or clear the generation here
//! too, inside the caller's transaction.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, Value,
};

use super::Db;
use super::entities::session;
use super::enums::SessionStatus;
use super::measured::measured;
use super::messages::InboundMessage;

const FENCE: &str = "id = $A AND worker_id = $B AND generation = $C";

/// The session generation fence: the placement a write belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Fence<'a> {
    pub session_id: &'a str,
    pub worker_id: &'a str,
    pub generation: i64,
}

impl<'a> Fence<'a> {
    /// The placement `worker_id` holds at `generation`.
    pub fn new(session_id: &'a str, worker_id: &'a str, generation: i64) -> Self {
        Self { session_id, worker_id, generation }
    }

    /// The placement a worker's event claims (its generation as sent).
    pub fn of_event(session_id: &'a str, worker_id: &'a str, generation: u64) -> Self {
        Self::new(session_id, worker_id, i64::try_from(generation).unwrap_or(i64::MAX))
    }

    /// The fence condition with positional parameters from `$first`.
    pub(super) fn sql(&self, first: usize) -> String {
        FENCE
            .replace("$A", &format!("${first}"))
            .replace("$B", &format!("${}", first + 1))
            .replace("$C", &format!("${}", first + 2))
    }

    /// The fence's bind values, in the order of [`Fence::sql`].
    pub(super) fn values(&self) -> [Value; 3] {
        [self.session_id.into(), self.worker_id.into(), self.generation.into()]
    }
}

/// A worker's event, written only inside its [`Fence`].
#[derive(Debug, Clone)]
pub enum FencedWrite {
    /// A QR code to scan: QR_REQUIRED, and the QR timeout's clock starts
    /// unless it already runs.
    Qr { code: String, at: DateTime<Utc> },
    /// A session status (with the phone number once paired).
    Status { status: SessionStatus, phone: Option<String>, at: DateTime<Utc> },
    /// An inbound message, stored only while the fence holds.
    Inbound(InboundMessage),
}

impl FencedWrite {
    fn op(&self) -> &'static str {
        match self {
            Self::Qr { .. } => "sessions.event_qr",
            Self::Status { .. } => "sessions.event_status",
            Self::Inbound(_) => "messages.insert_inbound",
        }
    }

    fn stmt(&self, db: &Db, fence: &Fence<'_>) -> Statement {
        match self {
            Self::Qr { code, at } => {
                let sql = format!(
                    "UPDATE sessions SET qr_code = $1, status = 'QR_REQUIRED', qr_since = COALESCE(qr_since, $2), updated_at = $3 \
                     WHERE {}",
                    fence.sql(4)
                );
                let mut values: Vec<Value> = vec![code.clone().into(), (*at).into(), (*at).into()];
                values.extend(fence.values());
                db.stmt(&sql, values)
            }
            Self::Status { status, phone, at } => {
                let clear_qr = if *status == SessionStatus::Connected { ", qr_code = NULL" } else { "" };
                // The QR timeout's clock runs while the session waits for a scan.
                let waits_for_scan = matches!(status, SessionStatus::Init | SessionStatus::QrRequired);
                let qr_clock =
                    if waits_for_scan { ", qr_since = COALESCE(qr_since, $5)" } else { ", qr_since = NULL" };
                let sql = format!(
                    "UPDATE sessions SET status = $1, phone_number = COALESCE($2, phone_number), last_seen_at = $3, updated_at = $4{clear_qr}{qr_clock} WHERE {}",
                    fence.sql(if waits_for_scan { 6 } else { 5 })
                );
                let mut values: Vec<Value> = vec![
                    sea_orm::ActiveEnum::to_value(status).into(),
                    phone.clone().into(),
                    (*at).into(),
                    (*at).into(),
                ];
                if waits_for_scan {
                    values.push((*at).into());
                }
                values.extend(fence.values());
                db.stmt(&sql, values)
            }
            Self::Inbound(m) => m.fenced_stmt(db, fence),
        }
    }
}

/// Applies a worker's event through `conn` if its fence holds; the rows
/// it changed (0: stale generation, unknown session or no change).
pub async fn apply_fenced<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    fence: &Fence<'_>,
    write: &FencedWrite,
) -> Result<u64, DbErr> {
    let stmt = write.stmt(db, fence);
    measured(write.op(), async { Ok(conn.execute_raw(stmt).await?.rows_affected()) }).await
}

/// True while the fence holds (the session is still that placement).
pub async fn fence_holds(db: &Db, fence: &Fence<'_>) -> Result<bool, DbErr> {
    measured("sessions.fence_holds", async {
        Ok(db
            .conn
            .query_one_raw(db.stmt(
                &format!("SELECT 1 AS ok FROM sessions WHERE {}", fence.sql(1)),
                fence.values().to_vec(),
            ))
            .await?
            .is_some())
    })
    .await
}

/// Locks the session's row for the transaction (PostgreSQL; SQLite's
/// `BEGIN IMMEDIATE` already serialises writers).
pub async fn lock_row<C: ConnectionTrait>(conn: &C, db: &Db, session_id: &str) -> Result<(), DbErr> {
    if !db.is_postgres() {
        return Ok(());
    }
    measured("sessions.lock_row", async {
        conn.execute_raw(
            db.stmt("SELECT id FROM sessions WHERE id = $1 FOR UPDATE", vec![session_id.into()]),
        )
        .await?;
        Ok(())
    })
    .await
}

/// A start by its owner: placed on `worker_id` at `generation`, INIT, the
/// QR timeout's clock starting now.
pub async fn place_for_start<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    session_id: &str,
    worker_id: &str,
    generation: i64,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    measured("sessions.place_for_start", async {
        conn.execute_raw(db.stmt(
            "UPDATE sessions SET worker_id = $1, generation = $2, status = 'INIT', status_reason = NULL, \
             qr_code = NULL, qr_since = $3, updated_at = $4 WHERE id = $5",
            vec![worker_id.into(), generation.into(), now.into(), now.into(), session_id.into()],
        ))
        .await?;
        Ok(())
    })
    .await
}

/// A placement that did not start, undone (fenced on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undo {
    /// A start by the owner: DISCONNECTED (the owner starts it again).
    Start,
    /// A move: back to waiting for a worker (INIT, no worker).
    Move,
}

/// Takes a session off a placement that did not start, with `reason`,
/// fenced on that placement. The rows changed.
pub async fn undo_placement<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    fence: &Fence<'_>,
    undo: Undo,
    reason: String,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let (op, set) = match undo {
        Undo::Start => (
            "sessions.unplace_started",
            "worker_id = NULL, status = 'DISCONNECTED', status_reason = $1, qr_code = NULL, \
             qr_since = NULL, updated_at = $2",
        ),
        Undo::Move => (
            "sessions.unplace_moved",
            "worker_id = NULL, status = 'INIT', status_reason = $1, qr_since = NULL, updated_at = $2",
        ),
    };
    measured(op, fenced_update(conn, db, set, fence, "", vec![reason.into(), now.into()], vec![])).await
}

/// Deletes the session (cascading to its key and messages); the worker
/// the deleted row was placed on, if any.
pub async fn delete<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    session_id: &str,
) -> Result<Option<String>, DbErr> {
    measured("sessions.delete", async {
        let deleted = conn
            .query_one_raw(
                db.stmt("DELETE FROM sessions WHERE id = $1 RETURNING worker_id", vec![session_id.into()]),
            )
            .await?;
        match deleted {
            Some(row) => row.try_get::<Option<String>>("", "worker_id"),
            None => Ok(None),
        }
    })
    .await
}

/// Clears the worker of a logged-out session (its worker is gone).
pub async fn clear_worker<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    session_id: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    measured("sessions.clear_worker", async {
        conn.execute_raw(db.stmt(
            "UPDATE sessions SET worker_id = NULL, updated_at = $1 WHERE id = $2",
            vec![now.into(), session_id.into()],
        ))
        .await?;
        Ok(())
    })
    .await
}

/// No worker had capacity: INIT with no worker and `reason`, at a new
/// `generation` (whatever the old placement says is stale).
pub async fn wait_for_capacity<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    session_id: &str,
    reason: &str,
    generation: i64,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    measured("sessions.wait_for_capacity", async {
        conn.execute_raw(db.stmt(
            "UPDATE sessions SET worker_id = NULL, status = 'INIT', status_reason = $1, qr_code = NULL, \
             qr_since = NULL, generation = $2, updated_at = $3 WHERE id = $4",
            vec![reason.into(), generation.into(), now.into(), session_id.into()],
        ))
        .await?;
        Ok(())
    })
    .await
}

/// A move: placed on `worker_id` at `generation`, RECONNECTING when it
/// resumes from a snapshot (no QR clock), INIT otherwise (the QR timeout's
/// clock kept, or started now).
pub async fn place_moved<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    session_id: &str,
    worker_id: &str,
    generation: i64,
    resumed: bool,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    measured("sessions.place_moved", async {
        let placed = if resumed {
            db.stmt(
                "UPDATE sessions SET worker_id = $1, generation = $2, status = 'RECONNECTING', status_reason = NULL, \
                 qr_code = NULL, qr_since = NULL, updated_at = $3 WHERE id = $4",
                vec![worker_id.into(), generation.into(), now.into(), session_id.into()],
            )
        } else {
            db.stmt(
                "UPDATE sessions SET worker_id = $1, generation = $2, status = 'INIT', status_reason = NULL, \
                 qr_code = NULL, qr_since = COALESCE(qr_since, $3), updated_at = $4 WHERE id = $5",
                vec![worker_id.into(), generation.into(), now.into(), now.into(), session_id.into()],
            )
        };
        conn.execute_raw(placed).await?;
        Ok(())
    })
    .await
}

/// `UPDATE sessions SET {set} WHERE <fence>{also}`: `head` binds the
/// parameters before the fence, which takes the next three, then `tail`.
/// The rows changed.
async fn fenced_update<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    set: &str,
    fence: &Fence<'_>,
    also: &str,
    head: Vec<Value>,
    tail: Vec<Value>,
) -> Result<u64, DbErr> {
    let sql = format!("UPDATE sessions SET {set} WHERE {}{also}", fence.sql(head.len() + 1));
    let mut values = head;
    values.extend(fence.values());
    values.extend(tail);
    Ok(conn.execute_raw(db.stmt(&sql, values)).await?.rows_affected())
}

/// A session waiting for a QR scan past its clock.
#[derive(Debug, Clone)]
pub struct QrWaiting {
    pub id: String,
    pub user_id: String,
    pub worker_id: String,
    pub generation: i64,
}

/// Unpaired sessions (INIT / QR_REQUIRED on a worker) whose QR clock
/// started before `cutoff`, oldest first, at most `limit`.
pub async fn qr_waiting_since(db: &Db, cutoff: DateTime<Utc>, limit: u64) -> Result<Vec<QrWaiting>, DbErr> {
    measured("sessions.qr_waiting_since", async {
        let rows = db
            .conn
            .query_all_raw(db.stmt(
                &format!(
                    "SELECT id, user_id, worker_id, generation FROM sessions \
                     WHERE status IN ('INIT', 'QR_REQUIRED') AND worker_id IS NOT NULL AND qr_since < $1 \
                     ORDER BY qr_since, id LIMIT {limit}"
                ),
                vec![cutoff.into()],
            ))
            .await?;
        rows.iter()
            .map(|row| {
                Ok(QrWaiting {
                    id: row.try_get("", "id")?,
                    user_id: row.try_get("", "user_id")?,
                    worker_id: row.try_get("", "worker_id")?,
                    generation: row.try_get("", "generation")?,
                })
            })
            .collect()
    })
    .await
}

/// The QR timeout: DISCONNECTED with `reason`, fenced on the placement and
/// on the session still waiting past `cutoff`. The rows changed.
pub async fn expire_qr<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    fence: &Fence<'_>,
    reason: &str,
    cutoff: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let set = "status = 'DISCONNECTED', status_reason = $1, worker_id = NULL, qr_code = NULL, \
               qr_since = NULL, updated_at = $2";
    let also = " AND status IN ('INIT', 'QR_REQUIRED') AND qr_since < $6";
    let head = vec![reason.into(), Utc::now().into()];
    measured("sessions.expire_qr", fenced_update(conn, db, set, fence, also, head, vec![cutoff.into()])).await
}

/// Detaches every session of a deleted worker: DISCONNECTED, no worker.
pub async fn detach_worker<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    worker_id: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    measured("sessions.detach_worker", async {
        conn.execute_raw(db.stmt(
            "UPDATE sessions SET worker_id = NULL, status = 'DISCONNECTED', qr_code = NULL, updated_at = $1 WHERE worker_id = $2",
            vec![now.into(), worker_id.into()],
        ))
        .await?;
        Ok(())
    })
    .await
}

async fn ids(db: &Db, sql: &str, values: Vec<Value>) -> Result<Vec<String>, DbErr> {
    let rows = db.conn.query_all_raw(db.stmt(sql, values)).await?;
    Ok(rows.iter().filter_map(|r| r.try_get::<String>("", "id").ok()).collect())
}

/// The sessions placed on `worker_id`, oldest first (a drain's order).
pub async fn on_worker_oldest_first(db: &Db, worker_id: &str) -> Result<Vec<String>, DbErr> {
    measured(
        "sessions.on_worker_oldest_first",
        ids(
            db,
            "SELECT id FROM sessions WHERE worker_id = $1 ORDER BY created_at, id",
            vec![worker_id.into()],
        ),
    )
    .await
}

/// The sessions placed on `worker_id` (a failover's set).
pub async fn on_worker(db: &Db, worker_id: &str) -> Result<Vec<String>, DbErr> {
    measured(
        "sessions.on_worker",
        ids(db, "SELECT id FROM sessions WHERE worker_id = $1", vec![worker_id.into()]),
    )
    .await
}

/// Sessions waiting for a worker (no worker, not DISCONNECTED), longest
/// waiting first, at most 100.
pub async fn waiting(db: &Db) -> Result<Vec<String>, DbErr> {
    measured("sessions.waiting", async {
        let rows = db
            .conn
            .query_all_raw(db.stmt(
                "SELECT id FROM sessions WHERE worker_id IS NULL AND status <> 'DISCONNECTED' ORDER BY updated_at, id LIMIT 100",
                vec![],
            ))
            .await?;
        rows.iter().map(|r| r.try_get::<String>("", "id")).collect()
    })
    .await
}

/// How many sessions wait for a worker.
pub async fn waiting_count(db: &Db) -> Result<i64, DbErr> {
    measured("sessions.waiting_count", async {
        Ok(db
            .conn
            .query_one_raw(db.stmt(
                "SELECT COUNT(*) AS n FROM sessions WHERE worker_id IS NULL AND status <> 'DISCONNECTED'",
                vec![],
            ))
            .await?
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0))
    })
    .await
}

/// Sessions INIT / RECONNECTING on a worker since before `stale`, as
/// (session, worker): starts that may never have reached their worker.
pub async fn starting_since(db: &Db, stale: DateTime<Utc>) -> Result<Vec<(String, String)>, DbErr> {
    measured("sessions.starting_since", async {
        let rows = db
            .conn
            .query_all_raw(db.stmt(
                "SELECT id, worker_id, generation FROM sessions WHERE status IN ('INIT', 'RECONNECTING') \
                 AND worker_id IS NOT NULL AND updated_at < $1 ORDER BY updated_at LIMIT 50",
                vec![stale.into()],
            ))
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get::<String>("", "id")?, row.try_get::<String>("", "worker_id")?)))
            .collect()
    })
    .await
}

/// A CONNECTED session's placement (worker, generation); `None` when it is
/// not CONNECTED or has no worker.
pub async fn connected_placement(db: &Db, session_id: &str) -> Result<Option<(String, i64)>, DbErr> {
    measured("sessions.connected_placement", async {
        let placed = db
            .conn
            .query_one_raw(db.stmt(
                "SELECT worker_id, generation FROM sessions WHERE id = $1 AND status = 'CONNECTED'",
                vec![session_id.into()],
            ))
            .await?;
        let Some(placed) = placed else { return Ok(None) };
        let Some(worker_id) = placed.try_get::<Option<String>>("", "worker_id")? else { return Ok(None) };
        Ok(Some((worker_id, placed.try_get("", "generation")?)))
    })
    .await
}

/// The newest CONNECTED session on `worker_id` with no unacknowledged
/// send (one a rebalance may move).
pub async fn movable_on(db: &Db, worker_id: &str) -> Result<Option<String>, DbErr> {
    measured("sessions.movable_on", async {
        let row = db
            .conn
            .query_one_raw(db.stmt(
                "SELECT s.id FROM sessions s WHERE s.worker_id = $1 AND s.status = 'CONNECTED' \
                 AND NOT EXISTS (SELECT 1 FROM message_dispatch d WHERE d.session_id = s.id) \
                 ORDER BY s.created_at DESC, s.id LIMIT 1",
                vec![worker_id.into()],
            ))
            .await?;
        row.map(|r| r.try_get::<String>("", "id")).transpose()
    })
    .await
}

/// True when `session_id` belongs to `user_id`.
pub async fn owned_by(db: &Db, session_id: &str, user_id: &str) -> Result<bool, DbErr> {
    measured("sessions.owned_by", async {
        Ok(db
            .conn
            .query_one_raw(db.stmt(
                "SELECT id FROM sessions WHERE id = $1 AND user_id = $2",
                vec![session_id.into(), user_id.into()],
            ))
            .await?
            .is_some())
    })
    .await
}

/// How many sessions have each status.
pub async fn count_by_status(db: &Db) -> Result<Vec<(String, i64)>, DbErr> {
    measured("sessions.count_by_status", async {
        let rows = db
            .conn
            .query_all_raw(db.stmt("SELECT status, COUNT(*) AS n FROM sessions GROUP BY status", vec![]))
            .await?;
        rows.iter().map(|r| Ok((r.try_get("", "status")?, r.try_get("", "n")?))).collect()
    })
    .await
}

/// A session RECONNECTING since before `cutoff` (the notification sweep).
#[derive(Debug, Clone)]
pub struct Reconnecting {
    pub id: String,
    pub name: String,
    pub user_id: String,
    pub since: DateTime<Utc>,
}

/// Sessions RECONNECTING since before `cutoff` (their last status change), oldest first.
pub async fn reconnecting_since(
    db: &Db,
    cutoff: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Reconnecting>, DbErr> {
    measured("sessions.reconnecting_since", async {
        let rows = db
            .conn
            .query_all_raw(db.stmt(
                "SELECT id, name, user_id, updated_at FROM sessions WHERE status = 'RECONNECTING' AND updated_at < $1 \
                 ORDER BY updated_at LIMIT $2",
                vec![cutoff.into(), i64::try_from(limit).unwrap_or(100).into()],
            ))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Reconnecting {
                    id: r.try_get("", "id")?,
                    name: r.try_get("", "name")?,
                    user_id: r.try_get("", "user_id")?,
                    since: r.try_get("", "updated_at")?,
                })
            })
            .collect()
    })
    .await
}

/// A `sessions` row.
pub type Session = session::Model;

/// One session by id (inside `conn`'s transaction, or not).
pub async fn by_id<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<Session>, DbErr> {
    measured("sessions.by_id", session::Entity::find_by_id(id.to_owned()).one(conn)).await
}

/// One session by id if `user_id` owns it.
pub async fn by_id_of_user<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    user_id: &str,
) -> Result<Option<Session>, DbErr> {
    measured(
        "sessions.by_id_of_user",
        session::Entity::find_by_id(id.to_owned()).filter(session::Column::UserId.eq(user_id)).one(conn),
    )
    .await
}

/// Every session of a user.
pub async fn of_user(db: &Db, user_id: &str) -> Result<Vec<Session>, DbErr> {
    measured(
        "sessions.of_user",
        session::Entity::find().filter(session::Column::UserId.eq(user_id)).all(&db.conn),
    )
    .await
}

/// How many of a user's sessions are not DISCONNECTED (`except` left out).
pub async fn count_active_of_user<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    except: Option<&str>,
) -> Result<u64, DbErr> {
    measured("sessions.count_active_of_user", async {
        let mut query = session::Entity::find()
            .filter(session::Column::UserId.eq(user_id))
            .filter(session::Column::Status.ne(SessionStatus::Disconnected));
        if let Some(id) = except {
            query = query.filter(session::Column::Id.ne(id));
        }
        query.count(conn).await
    })
    .await
}

/// Inserts a session (a taken id fails with a unique violation).
pub async fn insert<C: ConnectionTrait>(conn: &C, row: Session) -> Result<(), DbErr> {
    measured("sessions.insert", async {
        let active: session::ActiveModel = row.into();
        active.reset_all().insert(conn).await?;
        Ok(())
    })
    .await
}

/// A page of a user's sessions, newest first, with the total.
pub async fn page_of_user(
    db: &Db,
    user_id: &str,
    offset: u64,
    limit: u64,
) -> Result<(u64, Vec<Session>), DbErr> {
    measured("sessions.page_of_user", async {
        let query = session::Entity::find().filter(session::Column::UserId.eq(user_id));
        let order = |q: sea_orm::Select<session::Entity>| {
            q.order_by_desc(session::Column::CreatedAt).order_by_asc(session::Column::Id)
        };
        super::page(db, query, order, offset, limit).await
    })
    .await
}

/// The sessions with these ids (those that exist).
pub async fn by_ids(db: &Db, ids: Vec<String>) -> Result<Vec<Session>, DbErr> {
    measured("sessions.by_ids", session::Entity::find().filter(session::Column::Id.is_in(ids)).all(&db.conn))
        .await
}

/// The first `limit` sessions placed on a worker, oldest first.
pub async fn first_on_worker(db: &Db, worker_id: &str, limit: u64) -> Result<Vec<Session>, DbErr> {
    measured(
        "sessions.first_on_worker",
        session::Entity::find()
            .filter(session::Column::WorkerId.eq(worker_id))
            .order_by_asc(session::Column::CreatedAt)
            .limit(limit)
            .all(&db.conn),
    )
    .await
}

/// Keeps the session's live event log on until `until` (a live client
/// connected); a later time already set is kept.
pub async fn extend_live(db: &Db, session_id: &str, until: DateTime<Utc>) -> Result<(), DbErr> {
    measured("sessions.extend_live", async {
        db.conn
            .execute_raw(db.stmt(
                "UPDATE sessions SET live_until = $1 WHERE id = $2 AND (live_until IS NULL OR live_until < $1)",
                vec![until.into(), session_id.into()],
            ))
            .await?;
        Ok(())
    })
    .await
}

/// Whether any session's live event log is on.
pub async fn any_live(db: &Db, now: DateTime<Utc>) -> Result<bool, DbErr> {
    measured("sessions.any_live", async {
        Ok(db
            .conn
            .query_one_raw(db.stmt("SELECT id FROM sessions WHERE live_until > $1 LIMIT 1", vec![now.into()]))
            .await?
            .is_some())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_renders_after_the_given_parameter() {
        let f = Fence::of_event("s", "w", u64::MAX);
        assert_eq!(f.sql(3), "id = $3 AND worker_id = $4 AND generation = $5");
        assert_eq!(f.generation, i64::MAX);
        assert_eq!(f.values()[2], Value::from(i64::MAX));
    }
}
