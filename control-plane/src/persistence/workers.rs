//! The `workers` table: registration on Hello, fenced liveness, samples,
//! orphan detection. Every statement about a worker's liveness is here, and
//! every liveness write is fenced by the worker's `stream_epoch`:
//!
//! - `Hello` bumps the epoch (durably, in the row) and sets the worker
//!   ONLINE (MAINTENANCE stays MAINTENANCE);
//! - marking OFFLINE, samples (cpu, memory, last heartbeat) apply only while
//!   the epoch they carry is still the row's: the end of a stale stream on one
//!   replica cannot touch a worker that reconnected to another;
//! - heartbeats are not written one by one: liveness lives in memory on the
//!   replica that holds the stream, and only transitions (and a sample at the
//!   metrics interval) reach the database.
//!
//! Placement's slot accounting is here too: a slot is reserved with one
//! atomic `UPDATE … RETURNING` that re-checks capacity under the row lock
//! (inside the caller's transaction) and given back never below zero.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
};

use super::Db;
use super::entities::{worker, worker_metric};
use super::enums::WorkerStatus;
use super::measured::measured;

/// What a `Hello` writes.
#[derive(Debug, Clone)]
pub struct HelloRow<'a> {
    pub worker_id: &'a str,
    /// Informational; may be shared by several workers.
    pub endpoint: &'a str,
    pub max_sessions: i32,
    pub version: Option<&'a str>,
}

const UPSERT: &str = "INSERT INTO workers (id, endpoint, status, session_count, max_sessions, cpu_usage, memory_usage, \
        last_heartbeat, version, created_at, updated_at, stream_epoch) \
    VALUES ($1, $2, 'ONLINE', 0, $3, 0, 0, $4, $5, $6, $7, 1) \
    ON CONFLICT (id) DO UPDATE SET endpoint = excluded.endpoint, \
        max_sessions = CASE WHEN workers.max_sessions_cap IS NOT NULL AND workers.max_sessions_cap < excluded.max_sessions \
            THEN workers.max_sessions_cap ELSE excluded.max_sessions END, \
        version = excluded.version, last_heartbeat = excluded.last_heartbeat, updated_at = excluded.updated_at, \
        stream_epoch = workers.stream_epoch + 1, \
        status = CASE WHEN workers.status = 'MAINTENANCE' THEN 'MAINTENANCE' ELSE 'ONLINE' END \
    RETURNING stream_epoch";

/// An administrator's capacity for a worker: its `Hello` may advertise less,
/// never more.
pub async fn set_capacity_cap<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    worker_id: &str,
    cap: i32,
) -> Result<(), DbErr> {
    measured("workers.set_capacity_cap", async {
        conn.execute_raw(db.stmt(
            "UPDATE workers SET max_sessions_cap = $1 WHERE id = $2",
            vec![cap.into(), worker_id.into()],
        ))
        .await?;
        Ok(())
    })
    .await
}

/// Self-heals the placement counter from the sessions actually assigned.
const RECOUNT: &str = "UPDATE workers SET session_count = (SELECT COUNT(*) FROM sessions WHERE sessions.worker_id = workers.id) WHERE id = $1";

/// Registers (or re-registers) a worker on `Hello`; returns its new stream
/// epoch, strictly greater than any before it.
pub async fn hello(db: &Db, row: &HelloRow<'_>) -> Result<u64, DbErr> {
    measured("workers.hello", async {
        let now = Utc::now();
        let epoch = db
            .conn
            .query_one_raw(db.stmt(
                UPSERT,
                vec![
                    row.worker_id.into(),
                    row.endpoint.into(),
                    row.max_sessions.into(),
                    now.into(),
                    row.version.map(str::to_owned).into(),
                    now.into(),
                    now.into(),
                ],
            ))
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("worker upsert returned no row".into()))?
            .try_get::<i64>("", "stream_epoch")?;
        db.conn.execute_raw(db.stmt(RECOUNT, vec![row.worker_id.into()])).await?;
        Ok(u64::try_from(epoch).unwrap_or_default())
    })
    .await
}

fn epoch_value(epoch: u64) -> sea_orm::Value {
    i64::try_from(epoch).unwrap_or(i64::MAX).into()
}

/// Marks the worker OFFLINE if `epoch` is still its current stream epoch.
/// True when it was (the caller's stream was the worker's latest).
pub async fn mark_offline(db: &Db, worker_id: &str, epoch: u64) -> Result<bool, DbErr> {
    measured("workers.mark_offline", async {
        let res = db
            .conn
            .execute_raw(db.stmt(
                "UPDATE workers SET status = 'OFFLINE', updated_at = $1 WHERE id = $2 AND stream_epoch = $3",
                vec![Utc::now().into(), worker_id.into(), epoch_value(epoch)],
            ))
            .await?;
        Ok(res.rows_affected() > 0)
    })
    .await
}

/// True when `epoch` is still the worker's current stream epoch.
pub async fn epoch_is_current(db: &Db, worker_id: &str, epoch: u64) -> Result<bool, DbErr> {
    measured("workers.epoch_is_current", async {
        Ok(db
            .conn
            .query_one_raw(db.stmt(
                "SELECT 1 AS ok FROM workers WHERE id = $1 AND stream_epoch = $2",
                vec![worker_id.into(), epoch_value(epoch)],
            ))
            .await?
            .is_some())
    })
    .await
}

/// A heartbeat kept as a sample (at the metrics interval, not per heartbeat).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub cpu: f64,
    pub memory: f64,
    pub session_count: i32,
    pub message_count: i64,
    pub uptime_seconds: i64,
}

/// Writes the worker's load figures and a `worker_metrics` row, if `epoch`
/// is current. False when the stream is stale (a newer one exists).
pub async fn record_sample(db: &Db, worker_id: &str, epoch: u64, s: &Sample) -> Result<bool, DbErr> {
    measured("workers.record_sample", async {
        let now = Utc::now();
        let res = db
            .conn
            .execute_raw(db.stmt(
                "UPDATE workers SET cpu_usage = $1, memory_usage = $2, last_heartbeat = $3, updated_at = $4 \
                 WHERE id = $5 AND stream_epoch = $6",
                vec![s.cpu.into(), s.memory.into(), now.into(), now.into(), worker_id.into(), epoch_value(epoch)],
            ))
            .await?;
        if res.rows_affected() == 0 {
            return Ok(false);
        }
        db.conn
            .execute_raw(db.stmt(
                "INSERT INTO worker_metrics (id, worker_id, cpu_usage, memory_usage, session_count, message_count, uptime, timestamp) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                vec![
                    uuid::Uuid::now_v7().to_string().into(),
                    worker_id.into(),
                    s.cpu.into(),
                    s.memory.into(),
                    s.session_count.into(),
                    s.message_count.into(),
                    s.uptime_seconds.into(),
                    now.into(),
                ],
            ))
            .await?;
        Ok(true)
    })
    .await
}

/// ONLINE or MAINTENANCE workers with no sample since `cutoff`: candidates
/// for the orphan check (their replica may have died). With their epoch.
pub async fn silent_since(db: &Db, cutoff: DateTime<Utc>) -> Result<Vec<(String, u64)>, DbErr> {
    measured("workers.silent_since", async {
        let rows = db
            .conn
            .query_all_raw(db.stmt(
                "SELECT id, stream_epoch FROM workers WHERE status IN ('ONLINE', 'MAINTENANCE') AND last_heartbeat < $1",
                vec![cutoff.into()],
            ))
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let id = r.try_get::<String>("", "id").ok()?;
                let epoch = r.try_get::<i64>("", "stream_epoch").ok()?;
                Some((id, u64::try_from(epoch).unwrap_or_default()))
            })
            .collect())
    })
    .await
}

/// Marks an orphan OFFLINE, if nothing happened since it was found (same
/// epoch, still no sample since `cutoff`). True when marked.
pub async fn mark_orphan_offline(
    db: &Db,
    worker_id: &str,
    epoch: u64,
    cutoff: DateTime<Utc>,
) -> Result<bool, DbErr> {
    measured("workers.mark_orphan_offline", async {
        let res = db
            .conn
            .execute_raw(db.stmt(
                "UPDATE workers SET status = 'OFFLINE', updated_at = $1 \
                 WHERE id = $2 AND stream_epoch = $3 AND status <> 'OFFLINE' AND last_heartbeat < $4",
                vec![Utc::now().into(), worker_id.into(), epoch_value(epoch), cutoff.into()],
            ))
            .await?;
        Ok(res.rows_affected() > 0)
    })
    .await
}

/// Workers OFFLINE since before `cutoff` that still have sessions placed on
/// them (a failover that never ran or did not finish).
pub async fn offline_with_sessions(db: &Db, cutoff: DateTime<Utc>) -> Result<Vec<String>, DbErr> {
    measured("workers.offline_with_sessions", async {
        let rows = db
            .conn
            .query_all_raw(db.stmt(
                "SELECT w.id FROM workers w WHERE w.status = 'OFFLINE' AND w.updated_at < $1 \
                 AND EXISTS (SELECT 1 FROM sessions s WHERE s.worker_id = w.id) LIMIT 100",
                vec![cutoff.into()],
            ))
            .await?;
        Ok(rows.iter().filter_map(|r| r.try_get::<String>("", "id").ok()).collect())
    })
    .await
}

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

/// One try at reserving a slot on the least-loaded ONLINE worker but
/// `exclude` (one atomic `UPDATE … RETURNING`; on PostgreSQL the candidate
/// is picked `FOR UPDATE SKIP LOCKED`). `None`: nothing reserved.
pub async fn pick_slot<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    exclude: &str,
) -> Result<Option<String>, DbErr> {
    measured("workers.pick_slot", async {
        let pick = if db.is_postgres() { PICK_PG } else { PICK_SQLITE };
        let row = conn.query_one_raw(db.stmt(pick, vec![Utc::now().into(), exclude.into()])).await?;
        row.map(|r| r.try_get::<String>("", "id")).transpose()
    })
    .await
}

/// Free slots on ONLINE workers other than `exclude`.
pub async fn free_slots<C: ConnectionTrait>(conn: &C, db: &Db, exclude: &str) -> Result<i64, DbErr> {
    measured("workers.free_slots", async {
        match conn.query_one_raw(db.stmt(FREE_SLOTS, vec![exclude.into()])).await? {
            Some(r) => r.try_get("", "n"),
            None => Ok(0),
        }
    })
    .await
}

/// Gives a slot back (never below zero).
pub async fn release_slot<C: ConnectionTrait>(conn: &C, db: &Db, worker_id: &str) -> Result<(), DbErr> {
    measured("workers.release_slot", async {
        conn.execute_raw(db.stmt(
            "UPDATE workers SET session_count = session_count - 1, updated_at = $1 WHERE id = $2 AND session_count > 0",
            vec![Utc::now().into(), worker_id.into()],
        ))
        .await?;
        Ok(())
    })
    .await
}

/// Takes the transaction-scoped advisory lock `key` (PostgreSQL only;
/// nothing on SQLite, whose writers are serialised already).
pub async fn advisory_lock<C: ConnectionTrait>(conn: &C, db: &Db, key: i64) -> Result<(), DbErr> {
    if !db.is_postgres() {
        return Ok(());
    }
    measured("workers.advisory_lock", async {
        conn.execute_raw(db.stmt("SELECT pg_advisory_xact_lock($1)", vec![key.into()])).await?;
        Ok(())
    })
    .await
}

/// Slots of the ONLINE workers: (total, used).
pub async fn online_slots<C: ConnectionTrait>(conn: &C, db: &Db) -> Result<(i64, i64), DbErr> {
    measured("workers.online_slots", async {
        let row = conn
            .query_one_raw(db.stmt(
                "SELECT COALESCE(SUM(max_sessions), 0) AS total, COALESCE(SUM(session_count), 0) AS used \
                 FROM workers WHERE status = 'ONLINE'",
                vec![],
            ))
            .await?;
        match row {
            Some(r) => Ok((r.try_get::<i64>("", "total")?, r.try_get::<i64>("", "used")?)),
            None => Ok((0, 0)),
        }
    })
    .await
}

/// The fleet's ONLINE workers and their slots: (workers, total, used).
pub async fn fleet_slots(db: &Db) -> Result<(i64, i64, i64), DbErr> {
    measured("workers.fleet_slots", async {
        let row = db
            .conn
            .query_one_raw(db.stmt(
                "SELECT COUNT(*) AS workers, COALESCE(SUM(max_sessions), 0) AS total, COALESCE(SUM(session_count), 0) AS used \
                 FROM workers WHERE status = 'ONLINE'",
                vec![],
            ))
            .await?;
        match row {
            Some(r) => Ok((
                r.try_get::<i64>("", "workers")?,
                r.try_get::<i64>("", "total")?,
                r.try_get::<i64>("", "used")?,
            )),
            None => Ok((0, 0, 0)),
        }
    })
    .await
}

/// Takes a worker out of placement: MAINTENANCE (an OFFLINE one stays
/// OFFLINE). False when there is no such worker.
pub async fn enter_maintenance(db: &Db, worker_id: &str) -> Result<bool, DbErr> {
    measured("workers.enter_maintenance", async {
        let updated = db
            .conn
            .execute_raw(db.stmt(
                "UPDATE workers SET status = CASE WHEN status = 'OFFLINE' THEN 'OFFLINE' ELSE 'MAINTENANCE' END, updated_at = $1 WHERE id = $2",
                vec![Utc::now().into(), worker_id.into()],
            ))
            .await?;
        Ok(updated.rows_affected() > 0)
    })
    .await
}

/// An ONLINE worker's load, for a rebalance.
#[derive(Debug, Clone)]
pub struct Load {
    pub id: String,
    pub count: i64,
    pub max: i64,
}

/// The loads of ONLINE workers with capacity (rows that do not decode are
/// left out).
pub async fn online_loads(db: &Db) -> Result<Vec<Load>, DbErr> {
    measured("workers.online_loads", async {
        let rows = db
            .conn
            .query_all_raw(db.stmt(
                "SELECT id, session_count, max_sessions FROM workers WHERE status = 'ONLINE' AND max_sessions > 0",
                vec![],
            ))
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(Load {
                    id: r.try_get("", "id").ok()?,
                    count: i64::from(r.try_get::<i32>("", "session_count").ok()?),
                    max: i64::from(r.try_get::<i32>("", "max_sessions").ok()?),
                })
            })
            .collect())
    })
    .await
}

/// Deletes `worker_metrics` samples older than `cutoff`; how many.
pub async fn delete_samples_before(db: &Db, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    measured("workers.delete_samples_before", async {
        let res = db
            .conn
            .execute_raw(db.stmt("DELETE FROM worker_metrics WHERE timestamp < $1", vec![cutoff.into()]))
            .await?;
        Ok(res.rows_affected())
    })
    .await
}

/// A `workers` row.
pub type Worker = worker::Model;
/// A `worker_metrics` row (one sample).
pub type MetricSample = worker_metric::Model;

/// One worker by id.
pub async fn by_id(db: &Db, id: &str) -> Result<Option<Worker>, DbErr> {
    measured("workers.by_id", worker::Entity::find_by_id(id.to_owned()).one(&db.conn)).await
}

/// A page of workers by id, with the total.
pub async fn page(db: &Db, offset: u64, limit: u64) -> Result<(u64, Vec<Worker>), DbErr> {
    measured("workers.page", async {
        let order = |q: sea_orm::Select<worker::Entity>| q.order_by_asc(worker::Column::Id);
        super::page(db, worker::Entity::find(), order, offset, limit).await
    })
    .await
}

/// Inserts a pre-registered worker inside `conn`'s transaction (a taken id
/// fails with a unique violation); returns it as written.
pub async fn insert<C: ConnectionTrait>(conn: &C, row: Worker) -> Result<Worker, DbErr> {
    measured("workers.insert", async {
        let active: worker::ActiveModel = row.into();
        active.reset_all().insert(conn).await
    })
    .await
}

/// The columns an administrator's update sets (`None`: left as they are).
#[derive(Debug, Default)]
pub struct WorkerPatch {
    pub max_sessions: Option<i32>,
    pub description: Option<Option<String>>,
    pub status: Option<WorkerStatus>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Writes `patch` to the row of `current`; returns the row as written.
pub async fn update(db: &Db, current: &Worker, patch: WorkerPatch) -> Result<Worker, DbErr> {
    measured("workers.update", async {
        let mut a: worker::ActiveModel = current.clone().into();
        if let Some(v) = patch.max_sessions {
            a.max_sessions = Set(v);
        }
        if let Some(v) = patch.description {
            a.description = Set(v);
        }
        if let Some(v) = patch.status {
            a.status = Set(v);
        }
        if let Some(v) = patch.updated_at {
            a.updated_at = Set(v);
        }
        a.update(&db.conn).await
    })
    .await
}

/// Deletes the worker's row inside `conn`'s transaction.
pub async fn delete<C: ConnectionTrait>(conn: &C, id: &str) -> Result<(), DbErr> {
    measured("workers.delete", async {
        worker::Entity::delete_by_id(id.to_owned()).exec(conn).await?;
        Ok(())
    })
    .await
}

/// The worker's latest `limit` samples since `since` (any age: `None`),
/// oldest first.
pub async fn recent_samples(
    db: &Db,
    worker_id: &str,
    since: Option<DateTime<Utc>>,
    limit: u64,
) -> Result<Vec<MetricSample>, DbErr> {
    measured("workers.recent_samples", async {
        let mut query = worker_metric::Entity::find().filter(worker_metric::Column::WorkerId.eq(worker_id));
        if let Some(since) = since {
            query = query.filter(worker_metric::Column::Timestamp.gte(since));
        }
        let mut rows =
            query.order_by_desc(worker_metric::Column::Timestamp).limit(limit).all(&db.conn).await?;
        rows.reverse();
        Ok(rows)
    })
    .await
}
