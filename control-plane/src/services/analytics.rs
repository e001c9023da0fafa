//! System analytics and worker metrics: SQL aggregates only (COUNT,
//! GROUP BY, AVG, MAX), never loading the rows they summarise.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use wagate_proto::v1;

use crate::error::{CpResult, invalid};
use crate::persistence::Db;
use crate::persistence::entities::worker_metric;
use crate::services::admin_workers;
use crate::state::SharedState;

/// `1h`, `24h`, `7d`, `30d` (empty → `24h`) → (name, since).
pub fn time_range(raw: &str, now: DateTime<Utc>) -> CpResult<(&'static str, DateTime<Utc>)> {
    let (name, span) = match raw.trim() {
        "" | "24h" => ("24h", Duration::hours(24)),
        "1h" => ("1h", Duration::hours(1)),
        "7d" => ("7d", Duration::days(7)),
        "30d" => ("30d", Duration::days(30)),
        _ => return Err(invalid("timeRange", "timeRange must be one of 1h, 24h, 7d, 30d")),
    };
    Ok((name, now - span))
}

async fn count(db: &Db, sql: &str, values: Vec<sea_orm::Value>) -> CpResult<u64> {
    let row = db.conn.query_one_raw(db.stmt(sql, values)).await?;
    let n: i64 = match row {
        Some(r) => r.try_get("", "n")?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or_default())
}

async fn groups(db: &Db, sql: &str, values: Vec<sea_orm::Value>) -> CpResult<Vec<v1::CountEntry>> {
    let rows = db.conn.query_all_raw(db.stmt(sql, values)).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let key: String = r.try_get("", "k")?;
        let n: i64 = r.try_get("", "n")?;
        out.push(v1::CountEntry { key, count: u64::try_from(n).unwrap_or_default() });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

fn of(entries: &[v1::CountEntry], key: &str) -> u64 {
    entries.iter().find(|e| e.key == key).map_or(0, |e| e.count)
}

fn rate(part: u64, total: u64) -> f64 {
    if total == 0 { 0.0 } else { ((part as f64 / total as f64) * 1000.0).round() / 10.0 }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub async fn overview(state: &SharedState, range: &str) -> CpResult<v1::AnalyticsResponse> {
    let now = Utc::now();
    let (name, since) = time_range(range, now)?;
    let db = &state.db;
    let total_users = count(db, "SELECT COUNT(*) AS n FROM users", vec![]).await?;
    let total_sessions = count(db, "SELECT COUNT(*) AS n FROM sessions", vec![]).await?;
    let total_messages = count(db, "SELECT COUNT(*) AS n FROM messages", vec![]).await?;
    let workers =
        groups(db, "SELECT status AS k, COUNT(*) AS n FROM workers GROUP BY status", vec![]).await?;
    let avg = db
        .conn
        .query_one_raw(db.stmt(
            "SELECT AVG(cpu_usage) AS cpu, AVG(memory_usage) AS mem FROM workers WHERE status <> 'OFFLINE'",
            vec![],
        ))
        .await?;
    let (cpu, mem) = match avg {
        Some(r) => (r.try_get::<Option<f64>>("", "cpu")?, r.try_get::<Option<f64>>("", "mem")?),
        None => (None, None),
    };
    let sessions =
        groups(db, "SELECT status AS k, COUNT(*) AS n FROM sessions GROUP BY status", vec![]).await?;
    let in_range = vec![sea_orm::Value::from(since)];
    let messages_in_range =
        count(db, "SELECT COUNT(*) AS n FROM messages WHERE created_at >= $1", in_range.clone()).await?;
    let by_type = groups(
        db,
        "SELECT message_type AS k, COUNT(*) AS n FROM messages WHERE created_at >= $1 GROUP BY message_type",
        in_range.clone(),
    )
    .await?;
    let by_status = groups(
        db,
        "SELECT status AS k, COUNT(*) AS n FROM messages WHERE created_at >= $1 GROUP BY status",
        in_range.clone(),
    )
    .await?;
    let by_direction = groups(
        db,
        "SELECT direction AS k, COUNT(*) AS n FROM messages WHERE created_at >= $1 GROUP BY direction",
        in_range.clone(),
    )
    .await?;
    let users_by_tier =
        groups(db, "SELECT tier AS k, COUNT(*) AS n FROM users GROUP BY tier", vec![]).await?;
    let users_active = count(
        db,
        "SELECT COUNT(*) AS n FROM users WHERE last_login_at >= $1",
        vec![(now - Duration::days(7)).into()],
    )
    .await?;
    let users_new = count(db, "SELECT COUNT(*) AS n FROM users WHERE created_at >= $1", in_range).await?;
    let delivered_ok = of(&by_status, "SENT") + of(&by_status, "DELIVERED") + of(&by_status, "READ");
    let connected = of(&sessions, "CONNECTED");
    Ok(v1::AnalyticsResponse {
        time_range: name.to_owned(),
        total_users,
        total_sessions,
        total_workers: workers.iter().map(|e| e.count).sum(),
        total_messages,
        workers_online: of(&workers, "ONLINE"),
        workers_offline: of(&workers, "OFFLINE"),
        workers_maintenance: of(&workers, "MAINTENANCE"),
        avg_cpu_usage: round1(cpu.unwrap_or_default()),
        avg_memory_usage: round1(mem.unwrap_or_default()),
        sessions_connected: connected,
        sessions_disconnected: of(&sessions, "DISCONNECTED"),
        sessions_success_rate: rate(connected, total_sessions),
        sessions_by_status: sessions,
        messages_in_range,
        messages_success_rate: rate(delivered_ok, messages_in_range),
        messages_by_type: by_type,
        messages_by_status: by_status,
        messages_by_direction: by_direction,
        users_by_tier,
        users_active,
        users_new_in_range: users_new,
    })
}

pub async fn worker_metrics(
    state: &SharedState,
    req: v1::GetWorkerMetricsRequest,
) -> CpResult<v1::WorkerMetricsResponse> {
    let (name, since) = time_range(&req.time_range, Utc::now())?;
    let w = admin_workers::find(state, &req.worker_id).await?;
    let db = &state.db;
    let agg = db
        .conn
        .query_one_raw(db.stmt(
            "SELECT COUNT(*) AS n, AVG(cpu_usage) AS cpu, AVG(memory_usage) AS mem, \
                    AVG(CAST(session_count AS DOUBLE PRECISION)) AS sessions, \
                    MAX(cpu_usage) AS max_cpu, MAX(memory_usage) AS max_mem \
             FROM worker_metrics WHERE worker_id = $1 AND timestamp >= $2",
            vec![w.id.clone().into(), since.into()],
        ))
        .await?;
    let f =
        |r: &sea_orm::QueryResult, c: &str| r.try_get::<Option<f64>>("", c).map(Option::unwrap_or_default);
    let (n, cpu, mem, sessions, max_cpu, max_mem) = match &agg {
        Some(r) => (
            r.try_get::<i64>("", "n")?,
            f(r, "cpu")?,
            f(r, "mem")?,
            f(r, "sessions")?,
            f(r, "max_cpu")?,
            f(r, "max_mem")?,
        ),
        None => (0, 0.0, 0.0, 0.0, 0.0, 0.0),
    };
    let mut samples = worker_metric::Entity::find()
        .filter(worker_metric::Column::WorkerId.eq(w.id.clone()))
        .filter(worker_metric::Column::Timestamp.gte(since))
        .order_by_desc(worker_metric::Column::Timestamp)
        .limit(500)
        .all(&db.conn)
        .await?;
    samples.reverse();
    Ok(v1::WorkerMetricsResponse {
        worker_id: w.id,
        time_range: name.to_owned(),
        samples_count: u64::try_from(n).unwrap_or_default(),
        avg_cpu: round1(cpu),
        avg_memory: round1(mem),
        avg_sessions: round1(sessions),
        max_cpu: round1(max_cpu),
        max_memory: round1(max_mem),
        samples: samples.iter().map(admin_workers::sample).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let now = Utc::now();
        assert_eq!(time_range("", now).unwrap(), ("24h", now - Duration::hours(24)));
        assert_eq!(time_range("7d", now).unwrap().0, "7d");
        assert!(time_range("2w", now).is_err());
        assert_eq!(rate(1, 3), 33.3);
        assert_eq!(rate(0, 0), 0.0);
    }
}
