//! Admin functions on the worker fleet: list (with the live stream state of
//! this replica), pre-register with a per-worker token (shown once, stored
//! as a hash), detail, update, remove (drain, then delete).

use chrono::Utc;
use wagate_proto::error::ErrorCode;
use wagate_proto::time::to_proto;
use wagate_proto::v1;

use crate::audit::{self, AuditEntry};
use crate::auth::{AuthUser, api_keys};
use crate::convert;
use crate::error::{CpError, CpResult, api, invalid, is_unique_violation};
use crate::persistence::enums::{LogLevel, WorkerStatus};
use crate::persistence::sessions as session_rows;
use crate::persistence::workers::{self as worker_rows, MetricSample, Worker, WorkerPatch};
use crate::services::{page_limit, pagination};
use crate::state::SharedState;

pub const WORKER_TOKEN_PREFIX: &str = "wkt_";
/// (Migration `m20261127_000018_worker_default_cap` writes this value too.)
pub const DEFAULT_MAX_SESSIONS: u32 = 50;
pub const MAX_MAX_SESSIONS: u32 = 100_000;

/// A new per-worker token and its stored hash.
pub fn new_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = format!("{WORKER_TOKEN_PREFIX}{}", hex::encode(bytes));
    let hash = api_keys::hash(&token);
    (token, hash)
}

pub fn status_to_proto(s: WorkerStatus) -> v1::WorkerStatus {
    match s {
        WorkerStatus::Online => v1::WorkerStatus::Online,
        WorkerStatus::Offline => v1::WorkerStatus::Offline,
        WorkerStatus::Maintenance => v1::WorkerStatus::Maintenance,
    }
}

pub fn info(state: &SharedState, w: &Worker) -> v1::WorkerInfo {
    let live = state.registry.get(&w.id);
    v1::WorkerInfo {
        id: w.id.clone(),
        endpoint: w.endpoint.clone(),
        status: status_to_proto(w.status) as i32,
        session_count: u32::try_from(w.session_count).unwrap_or_default(),
        max_sessions: u32::try_from(w.max_sessions).unwrap_or_default(),
        cpu_usage: w.cpu_usage,
        memory_usage: w.memory_usage,
        last_heartbeat: Some(to_proto(w.last_heartbeat)),
        description: w.description.clone(),
        version: w.version.clone(),
        connected: live.is_some(),
        stream_generation: live.as_ref().map_or(0, |c| c.generation),
        pending_commands: live.as_ref().map_or(0, |c| u32::try_from(c.pending_count()).unwrap_or(u32::MAX)),
        has_token: w.token_hash.is_some(),
        created_at: Some(to_proto(w.created_at)),
        updated_at: Some(to_proto(w.updated_at)),
    }
}

pub fn sample(m: &MetricSample) -> v1::WorkerMetricSample {
    v1::WorkerMetricSample {
        timestamp: Some(to_proto(m.timestamp)),
        cpu_usage: m.cpu_usage,
        memory_usage: m.memory_usage,
        session_count: u32::try_from(m.session_count).unwrap_or_default(),
        message_count: u64::try_from(m.message_count).unwrap_or_default(),
        uptime: u64::try_from(m.uptime).unwrap_or_default(),
    }
}

/// A worker id: 1..=64 of `[A-Za-z0-9._-]` (the rule of `Hello`).
pub fn valid_worker_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

pub async fn find(state: &SharedState, id: &str) -> CpResult<Worker> {
    let not_found = || api(ErrorCode::NotFound, "worker not found");
    if !valid_worker_id(id.trim()) {
        return Err(not_found());
    }
    worker_rows::by_id(&state.db, id.trim()).await?.ok_or_else(not_found)
}

pub async fn list(state: &SharedState, req: v1::ListWorkersRequest) -> CpResult<v1::ListWorkersResponse> {
    let (page, limit) = page_limit(req.page, req.limit);
    let (total, rows) =
        worker_rows::page(&state.db, u64::from(page - 1) * u64::from(limit), u64::from(limit)).await?;
    Ok(v1::ListWorkersResponse {
        workers: rows.iter().map(|w| info(state, w)).collect(),
        pagination: Some(pagination(total, page, limit)),
    })
}

fn check_max_sessions(n: u32) -> CpResult<i32> {
    if !(1..=MAX_MAX_SESSIONS).contains(&n) {
        return Err(invalid("maxSessions", format!("maxSessions must be between 1 and {MAX_MAX_SESSIONS}")));
    }
    Ok(i32::try_from(n).unwrap_or(i32::MAX))
}

fn check_description(d: &str) -> CpResult<Option<String>> {
    let d = d.trim();
    if d.chars().count() > 500 || d.chars().any(char::is_control) {
        return Err(invalid(
            "description",
            "description must be at most 500 characters, without control characters",
        ));
    }
    Ok((!d.is_empty()).then(|| d.to_owned()))
}

pub async fn create(
    state: &SharedState,
    admin: &AuthUser,
    req: v1::CreateWorkerRequest,
) -> CpResult<v1::CreateWorkerResponse> {
    state.ensure_running()?;
    let id = req.worker_id.trim();
    let id = if id.is_empty() {
        format!("worker-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
    } else if valid_worker_id(id) {
        id.to_owned()
    } else {
        return Err(invalid(
            "workerId",
            "workerId must be 1-64 characters of letters, digits, '.', '-' or '_'",
        ));
    };
    let endpoint = req.endpoint.trim();
    let endpoint = if endpoint.is_empty() {
        format!("stream://{id}")
    } else if endpoint.len() > 512 || endpoint.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("endpoint", "endpoint must be at most 512 characters without spaces"));
    } else {
        endpoint.to_owned()
    };
    let max_sessions =
        check_max_sessions(if req.max_sessions == 0 { DEFAULT_MAX_SESSIONS } else { req.max_sessions })?;
    let description = check_description(req.description.as_deref().unwrap_or_default())?;
    if worker_rows::by_id(&state.db, &id).await?.is_some() {
        return Err(api(ErrorCode::AlreadyExists, "a worker with this id already exists"));
    }
    let (token, hash) = new_token();
    let now = Utc::now();
    let row = Worker {
        id: id.clone(),
        endpoint,
        status: WorkerStatus::Offline,
        session_count: 0,
        max_sessions,
        cpu_usage: 0.0,
        memory_usage: 0.0,
        last_heartbeat: now,
        description,
        version: None,
        token_hash: Some(hash),
        created_at: now,
        updated_at: now,
        stream_epoch: 0,
    };
    // The row and its cap in one transaction: after the commit nothing may
    // fail the call, or the token (shown once) would be lost.
    let txn = state.db.begin().await?;
    let row = match worker_rows::insert(&txn, row).await {
        Ok(r) => r,
        Err(e) if is_unique_violation(&e) => {
            return Err(api(ErrorCode::AlreadyExists, "a worker with this id or endpoint already exists"));
        }
        Err(e) => return Err(e.into()),
    };
    // The administrator's capacity, the default included, wins over what the
    // worker advertises in its Hello (it may advertise less, never more).
    worker_rows::set_capacity_cap(&txn, &state.db, &id, max_sessions).await?;
    txn.commit().await?;
    audit::record(
        &state.db,
        "admin",
        AuditEntry::new("worker registered by administrator")
            .worker(&id)
            .details(serde_json::json!({ "by": admin.id, "endpoint": row.endpoint })),
    );
    Ok(v1::CreateWorkerResponse { worker: Some(info(state, &row)), token })
}

pub async fn get(state: &SharedState, id: &str) -> CpResult<v1::WorkerDetail> {
    let w = find(state, id).await?;
    let sessions = session_rows::first_on_worker(&state.db, &w.id, 100).await?;
    let metrics = worker_rows::recent_samples(&state.db, &w.id, None, 20).await?;
    Ok(v1::WorkerDetail {
        worker: Some(info(state, &w)),
        sessions: sessions
            .iter()
            .map(|s| v1::WorkerSession {
                id: s.id.clone(),
                name: s.name.clone(),
                user_id: s.user_id.clone(),
                status: convert::session_status_to_proto(s.status) as i32,
                phone_number: s.phone_number.clone(),
            })
            .collect(),
        recent_metrics: metrics.iter().map(sample).collect(),
    })
}

pub async fn update(
    state: &SharedState,
    admin: &AuthUser,
    req: v1::UpdateWorkerRequest,
) -> CpResult<v1::WorkerInfo> {
    state.ensure_running()?;
    let w = find(state, &req.worker_id).await?;
    let mut patch = WorkerPatch::default();
    let mut changes = serde_json::Map::new();
    if let Some(n) = req.max_sessions {
        patch.max_sessions = Some(check_max_sessions(n)?);
        changes.insert("maxSessions".into(), n.into());
    }
    if let Some(d) = &req.description {
        patch.description = Some(check_description(d)?);
        changes.insert("description".into(), true.into());
    }
    if let Some(s) = req.status {
        let status = match v1::WorkerStatus::try_from(s) {
            Ok(v1::WorkerStatus::Maintenance) => WorkerStatus::Maintenance,
            // Back in rotation; a worker without a live stream stays OFFLINE
            // until it connects.
            Ok(v1::WorkerStatus::Online) if state.registry.get(&w.id).is_some() => WorkerStatus::Online,
            Ok(v1::WorkerStatus::Online) => WorkerStatus::Offline,
            _ => return Err(invalid("status", "status must be MAINTENANCE or ONLINE")),
        };
        patch.status = Some(status);
        changes.insert("status".into(), format!("{status:?}").to_uppercase().into());
    }
    if changes.is_empty() {
        return Ok(info(state, &w));
    }
    patch.updated_at = Some(Utc::now());
    let row = worker_rows::update(&state.db, &w, patch).await?;
    if let Some(n) = req.max_sessions {
        // The administrator's capacity wins over what the worker advertises.
        worker_rows::set_capacity_cap(&state.db.conn, &state.db, &w.id, check_max_sessions(n)?).await?;
    }
    audit::record(
        &state.db,
        "admin",
        AuditEntry::new("worker updated by administrator")
            .worker(&w.id)
            .details(serde_json::json!({ "by": admin.id, "changes": changes })),
    );
    Ok(info(state, &row))
}

/// Removes a worker: drains it first (MAINTENANCE, then every session
/// moves to another worker with its auth state — CONNECTED there without a
/// QR when a worker has capacity, else waiting for one), then deletes its
/// row (its `wkt_…` token with it) and ends its stream on whichever replica
/// holds it. Sessions a move could not take (the new worker refused or did
/// not answer) keep it: 409 `WORKER_HAS_SESSIONS` (the worker stays in
/// MAINTENANCE, out of placement; try again), unless `force` detaches them
/// (no worker, DISCONNECTED).
pub async fn delete(
    state: &SharedState,
    admin: &AuthUser,
    req: v1::DeleteWorkerRequest,
) -> CpResult<v1::DeleteWorkerResponse> {
    state.ensure_running()?;
    let w = find(state, &req.worker_id).await?;
    let db = &state.db;
    let report = crate::fleet::drain::drain(state, &w.id).await?;
    let remaining = crate::fleet::drain::session_ids(state, &w.id).await?;
    if !remaining.is_empty() && !req.force {
        return Err(api(
            ErrorCode::WorkerHasSessions,
            format!(
                "{} session(s) could not be moved off the worker (it stays in MAINTENANCE); try again, or pass force=true to detach them",
                remaining.len()
            ),
        ));
    }
    let txn = db.begin().await?;
    session_rows::detach_worker(&txn, db, &w.id, Utc::now()).await?;
    worker_rows::delete(&txn, &w.id).await?;
    txn.commit().await?;
    crate::auth::invalidation::all(state).await;
    end_stream(state, &w.id).await;
    audit::record(
        &state.db,
        "admin",
        AuditEntry::new("worker deleted by administrator").level(LogLevel::Warn).worker(&w.id).details(
            serde_json::json!({
                "by": admin.id, "moved": report.moved, "waiting": report.waiting, "detached": remaining.len(),
            }),
        ),
    );
    tracing::info!(
        worker_id = w.id,
        moved = report.moved,
        waiting = report.waiting,
        detached = remaining.len(),
        "worker removed"
    );
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Ok(v1::DeleteWorkerResponse {
        worker_id: w.id,
        deleted: true,
        sessions_detached: count(remaining.len()),
        sessions_moved: count(report.moved),
        sessions_waiting: count(report.waiting),
    })
}

/// Ends a removed worker's stream here, or on the replica that holds it
/// (its row is gone, so its `wkt_…` token no longer opens a new one).
async fn end_stream(state: &SharedState, worker_id: &str) {
    if let Some(conn) = state.registry.get(worker_id) {
        conn.cancel.cancel();
        return;
    }
    match state.cache.get_worker_replica(worker_id).await {
        Ok(Some(addr)) if addr != state.dispatcher.self_addr() => {
            // Every stream of it, whatever its epoch.
            if let Err(err) = state.dispatcher.peers().preempt(&addr, worker_id, u64::MAX).await {
                tracing::warn!(worker_id, peer = addr, error = %err, "removed worker's stream not ended on its replica (its heartbeats find no row)");
            }
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(worker_id, error = %err, "removed worker's replica not looked up"),
    }
}

/// Checks a per-worker token: true when `worker_id` was pre-registered
/// with a token whose hash matches.
pub async fn token_matches(state: &SharedState, worker_id: &str, token: &str) -> Result<bool, CpError> {
    if !token.starts_with(WORKER_TOKEN_PREFIX) || !valid_worker_id(worker_id) {
        return Ok(false);
    }
    let row = worker_rows::by_id(&state.db, worker_id).await?;
    Ok(row
        .and_then(|w| w.token_hash)
        .is_some_and(|h| crate::auth::identity::secret_matches(&api_keys::hash(token), &h)))
}
