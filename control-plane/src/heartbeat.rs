//! Worker liveness bookkeeping: the `workers` row on Hello and on each
//! heartbeat, and sampled `worker_metrics` rows.

use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbErr};
use wagate_proto::v1;

use crate::error::{CpError, api, is_unique_violation};
use crate::state::SharedState;

const UPSERT: &str = "INSERT INTO workers (id, endpoint, status, session_count, max_sessions, cpu_usage, memory_usage, \
        last_heartbeat, version, created_at, updated_at) \
    VALUES ($1, $2, 'ONLINE', 0, $3, 0, 0, $4, $5, $6, $7) \
    ON CONFLICT (id) DO UPDATE SET endpoint = excluded.endpoint, max_sessions = excluded.max_sessions, \
        version = excluded.version, last_heartbeat = excluded.last_heartbeat, updated_at = excluded.updated_at, \
        status = CASE WHEN workers.status = 'MAINTENANCE' THEN 'MAINTENANCE' ELSE 'ONLINE' END";

/// Self-heals the placement counter from the sessions actually assigned.
const RECOUNT: &str = "UPDATE workers SET session_count = (SELECT COUNT(*) FROM sessions WHERE sessions.worker_id = workers.id) WHERE id = $1";

pub async fn upsert_on_hello(state: &SharedState, hello: &v1::Hello, peer: &str) -> Result<(), CpError> {
    let db = &state.db;
    let now = Utc::now();
    let endpoint = if hello.endpoint.trim().is_empty() {
        format!("stream://{}", hello.worker_id)
    } else {
        hello.endpoint.clone()
    };
    let version = (!hello.version.is_empty()).then(|| hello.version.clone());
    let res = db
        .conn
        .execute_raw(db.stmt(
            UPSERT,
            vec![
                hello.worker_id.clone().into(),
                endpoint.into(),
                i32::try_from(hello.max_sessions).unwrap_or(i32::MAX).into(),
                now.into(),
                version.into(),
                now.into(),
                now.into(),
            ],
        ))
        .await;
    match res {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(api(
                wagate_proto::error::ErrorCode::AlreadyExists,
                "endpoint is already registered by another worker",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    db.conn.execute_raw(db.stmt(RECOUNT, vec![hello.worker_id.clone().into()])).await?;
    tracing::debug!(peer, max_sessions = hello.max_sessions, "worker row upserted");
    Ok(())
}

/// Decides which heartbeats become `worker_metrics` samples.
pub struct Sampler {
    interval: Duration,
    last: Option<Instant>,
}

impl Sampler {
    pub fn new(interval: Duration) -> Self {
        Self { interval, last: None }
    }

    fn due(&mut self) -> bool {
        let now = Instant::now();
        if self.last.is_none_or(|l| now.duration_since(l) >= self.interval) {
            self.last = Some(now);
            true
        } else {
            false
        }
    }
}

pub async fn record(state: &SharedState, worker_id: &str, hb: &v1::Heartbeat, sampler: &mut Sampler) {
    if let Err(err) = write(state, worker_id, hb, sampler).await {
        tracing::warn!(error = %err, "heartbeat write failed");
    }
    if let Err(err) = state
        .cache
        .set_worker_replica(worker_id, &state.config.replica_id, state.config.liveness_timeout() * 4)
        .await
    {
        tracing::debug!(error = %err, "replica record refresh failed");
    }
}

async fn write(
    state: &SharedState,
    worker_id: &str,
    hb: &v1::Heartbeat,
    sampler: &mut Sampler,
) -> Result<(), DbErr> {
    let db = &state.db;
    let now = Utc::now();
    let cpu = if hb.cpu_usage.is_finite() { hb.cpu_usage.max(0.0) } else { 0.0 };
    let mem = if hb.memory_usage.is_finite() { hb.memory_usage.clamp(0.0, 100.0) } else { 0.0 };
    db.conn
        .execute_raw(db.stmt(
            "UPDATE workers SET cpu_usage = $1, memory_usage = $2, last_heartbeat = $3, updated_at = $4, \
             status = CASE WHEN status = 'OFFLINE' THEN 'ONLINE' ELSE status END WHERE id = $5",
            vec![cpu.into(), mem.into(), now.into(), now.into(), worker_id.into()],
        ))
        .await?;
    if sampler.due() {
        db.conn
            .execute_raw(db.stmt(
                "INSERT INTO worker_metrics (id, worker_id, cpu_usage, memory_usage, session_count, message_count, uptime, timestamp) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                vec![
                    uuid::Uuid::now_v7().to_string().into(),
                    worker_id.into(),
                    cpu.into(),
                    mem.into(),
                    i32::try_from(hb.session_count).unwrap_or(i32::MAX).into(),
                    i64::try_from(hb.message_count).unwrap_or(i64::MAX).into(),
                    i64::try_from(hb.uptime_seconds).unwrap_or(i64::MAX).into(),
                    now.into(),
                ],
            ))
            .await?;
    }
    Ok(())
}
