//! Read-only report queries across tables (users, sessions, messages,
//! workers, worker_metrics): SQL aggregates only (COUNT, GROUP BY, AVG,
//! MAX), never loading the rows they summarise.
//!
//! The fence it enforces: none; nothing here writes.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, Value};

use super::Db;
use super::measured::measured;

/// (key, count) pairs of a `GROUP BY`, sorted by key.
pub type Groups = Vec<(String, u64)>;

/// The figures of the system overview.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    pub total_users: u64,
    pub total_sessions: u64,
    pub total_messages: u64,
    pub workers_by_status: Groups,
    pub avg_cpu: Option<f64>,
    pub avg_memory: Option<f64>,
    pub sessions_by_status: Groups,
    pub messages_in_range: u64,
    pub messages_by_type: Groups,
    pub messages_by_status: Groups,
    pub messages_by_direction: Groups,
    pub users_by_tier: Groups,
    pub users_active: u64,
    pub users_new: u64,
}

async fn count(db: &Db, sql: &str, values: Vec<Value>) -> Result<u64, DbErr> {
    let row = db.conn.query_one_raw(db.stmt(sql, values)).await?;
    let n: i64 = match row {
        Some(r) => r.try_get("", "n")?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or_default())
}

async fn groups(db: &Db, sql: &str, values: Vec<Value>) -> Result<Groups, DbErr> {
    let rows = db.conn.query_all_raw(db.stmt(sql, values)).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let key: String = r.try_get("", "k")?;
        let n: i64 = r.try_get("", "n")?;
        out.push((key, u64::try_from(n).unwrap_or_default()));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The overview: totals, and what happened since `since` (users active
/// since `active_since`).
pub async fn overview(db: &Db, since: DateTime<Utc>, active_since: DateTime<Utc>) -> Result<Overview, DbErr> {
    measured("analytics.overview", async {
        let total_users = count(db, "SELECT COUNT(*) AS n FROM users", vec![]).await?;
        let total_sessions = count(db, "SELECT COUNT(*) AS n FROM sessions", vec![]).await?;
        let total_messages = count(db, "SELECT COUNT(*) AS n FROM messages", vec![]).await?;
        let workers_by_status =
            groups(db, "SELECT status AS k, COUNT(*) AS n FROM workers GROUP BY status", vec![]).await?;
        let avg = db
            .conn
            .query_one_raw(db.stmt(
                "SELECT AVG(cpu_usage) AS cpu, AVG(memory_usage) AS mem FROM workers WHERE status <> 'OFFLINE'",
                vec![],
            ))
            .await?;
        let (avg_cpu, avg_memory) = match avg {
            Some(r) => (r.try_get::<Option<f64>>("", "cpu")?, r.try_get::<Option<f64>>("", "mem")?),
            None => (None, None),
        };
        let sessions_by_status =
            groups(db, "SELECT status AS k, COUNT(*) AS n FROM sessions GROUP BY status", vec![]).await?;
        let in_range = vec![Value::from(since)];
        let messages_in_range =
            count(db, "SELECT COUNT(*) AS n FROM messages WHERE created_at >= $1", in_range.clone()).await?;
        let messages_by_type = groups(
            db,
            "SELECT message_type AS k, COUNT(*) AS n FROM messages WHERE created_at >= $1 GROUP BY message_type",
            in_range.clone(),
        )
        .await?;
        let messages_by_status = groups(
            db,
            "SELECT status AS k, COUNT(*) AS n FROM messages WHERE created_at >= $1 GROUP BY status",
            in_range.clone(),
        )
        .await?;
        let messages_by_direction = groups(
            db,
            "SELECT direction AS k, COUNT(*) AS n FROM messages WHERE created_at >= $1 GROUP BY direction",
            in_range.clone(),
        )
        .await?;
        let users_by_tier =
            groups(db, "SELECT tier AS k, COUNT(*) AS n FROM users GROUP BY tier", vec![]).await?;
        let users_active =
            count(db, "SELECT COUNT(*) AS n FROM users WHERE last_login_at >= $1", vec![active_since.into()])
                .await?;
        let users_new = count(db, "SELECT COUNT(*) AS n FROM users WHERE created_at >= $1", in_range).await?;
        Ok(Overview {
            total_users,
            total_sessions,
            total_messages,
            workers_by_status,
            avg_cpu,
            avg_memory,
            sessions_by_status,
            messages_in_range,
            messages_by_type,
            messages_by_status,
            messages_by_direction,
            users_by_tier,
            users_active,
            users_new,
        })
    })
    .await
}

/// A worker's samples since a time, summarised.
#[derive(Debug, Clone, Default)]
pub struct SampleStats {
    pub count: i64,
    pub avg_cpu: f64,
    pub avg_memory: f64,
    pub avg_sessions: f64,
    pub max_cpu: f64,
    pub max_memory: f64,
}

/// Aggregates of the worker's `worker_metrics` samples since `since`
/// (zeros when it has none).
pub async fn worker_samples(db: &Db, worker_id: &str, since: DateTime<Utc>) -> Result<SampleStats, DbErr> {
    measured("analytics.worker_samples", async {
        let agg = db
            .conn
            .query_one_raw(db.stmt(
                "SELECT COUNT(*) AS n, AVG(cpu_usage) AS cpu, AVG(memory_usage) AS mem, \
                        AVG(CAST(session_count AS DOUBLE PRECISION)) AS sessions, \
                        MAX(cpu_usage) AS max_cpu, MAX(memory_usage) AS max_mem \
                 FROM worker_metrics WHERE worker_id = $1 AND timestamp >= $2",
                vec![worker_id.into(), since.into()],
            ))
            .await?;
        let f = |r: &sea_orm::QueryResult, c: &str| {
            r.try_get::<Option<f64>>("", c).map(Option::unwrap_or_default)
        };
        Ok(match &agg {
            Some(r) => SampleStats {
                count: r.try_get::<i64>("", "n")?,
                avg_cpu: f(r, "cpu")?,
                avg_memory: f(r, "mem")?,
                avg_sessions: f(r, "sessions")?,
                max_cpu: f(r, "max_cpu")?,
                max_memory: f(r, "max_mem")?,
            },
            None => SampleStats::default(),
        })
    })
    .await
}
