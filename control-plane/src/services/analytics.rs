//! System analytics and worker metrics: SQL aggregates only (COUNT,
//! GROUP BY, AVG, MAX), never loading the rows they summarise.

use chrono::{DateTime, Duration, Utc};
use wagate_proto::v1;

use crate::error::{CpResult, invalid};
use crate::persistence::analytics;
use crate::persistence::workers as worker_rows;
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

fn entries(groups: analytics::Groups) -> Vec<v1::CountEntry> {
    groups.into_iter().map(|(key, count)| v1::CountEntry { key, count }).collect()
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
    let o = analytics::overview(&state.db, since, now - Duration::days(7)).await?;
    let workers = entries(o.workers_by_status);
    let sessions = entries(o.sessions_by_status);
    let by_status = entries(o.messages_by_status);
    let delivered_ok = of(&by_status, "SENT") + of(&by_status, "DELIVERED") + of(&by_status, "READ");
    let connected = of(&sessions, "CONNECTED");
    Ok(v1::AnalyticsResponse {
        time_range: name.to_owned(),
        total_users: o.total_users,
        total_sessions: o.total_sessions,
        total_workers: workers.iter().map(|e| e.count).sum(),
        total_messages: o.total_messages,
        workers_online: of(&workers, "ONLINE"),
        workers_offline: of(&workers, "OFFLINE"),
        workers_maintenance: of(&workers, "MAINTENANCE"),
        avg_cpu_usage: round1(o.avg_cpu.unwrap_or_default()),
        avg_memory_usage: round1(o.avg_memory.unwrap_or_default()),
        sessions_connected: connected,
        sessions_disconnected: of(&sessions, "DISCONNECTED"),
        sessions_success_rate: rate(connected, o.total_sessions),
        sessions_by_status: sessions,
        messages_in_range: o.messages_in_range,
        messages_success_rate: rate(delivered_ok, o.messages_in_range),
        messages_by_type: entries(o.messages_by_type),
        messages_by_status: by_status,
        messages_by_direction: entries(o.messages_by_direction),
        users_by_tier: entries(o.users_by_tier),
        users_active: o.users_active,
        users_new_in_range: o.users_new,
    })
}

pub async fn worker_metrics(
    state: &SharedState,
    req: v1::GetWorkerMetricsRequest,
) -> CpResult<v1::WorkerMetricsResponse> {
    let (name, since) = time_range(&req.time_range, Utc::now())?;
    let w = admin_workers::find(state, &req.worker_id).await?;
    let db = &state.db;
    let stats = analytics::worker_samples(db, &w.id, since).await?;
    let samples = worker_rows::recent_samples(db, &w.id, Some(since), 500).await?;
    Ok(v1::WorkerMetricsResponse {
        worker_id: w.id,
        time_range: name.to_owned(),
        samples_count: u64::try_from(stats.count).unwrap_or_default(),
        avg_cpu: round1(stats.avg_cpu),
        avg_memory: round1(stats.avg_memory),
        avg_sessions: round1(stats.avg_sessions),
        max_cpu: round1(stats.max_cpu),
        max_memory: round1(stats.max_memory),
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
