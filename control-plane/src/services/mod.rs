//! The public gRPC API (what the edge and internal services call).

pub mod admin;
pub mod admin_workers;
pub mod analytics;
pub mod api_keys;
pub mod auth;
pub mod fleet;
pub mod message_history;
pub mod messages;
pub mod sessions;
pub mod users;

use wagate_proto::error::ErrorCode;
use wagate_proto::v1;

use chrono::Utc;

use crate::auth::{AuthUser, api_keys as keys, identity};
use crate::error::{CpResult, api};
use crate::persistence::api_keys::{self as key_rows, KeyEntry};
use crate::persistence::sessions::{self as session_rows, Session};
use crate::state::SharedState;
use crate::validation;

/// A session API key presented on a call (`x-api-key`, or a bearer that
/// has a key's shape), resolved through the key cache: active, of an active
/// user, not expired. `None` when the credential is not a key (a user token).
pub async fn session_key(
    state: &SharedState,
    md: &tonic::metadata::MetadataMap,
) -> CpResult<Option<KeyEntry>> {
    let Some(key) = identity::api_key(md) else { return Ok(None) };
    if !keys::looks_like_key(key) {
        // x-api-key with something that is no key, or a bearer JWT.
        return if md.get(wagate_proto::metadata::API_KEY).is_some() {
            Err(api(ErrorCode::InvalidApiKey, "invalid or revoked API key"))
        } else {
            Ok(None)
        };
    }
    let invalid_key = || api(ErrorCode::InvalidApiKey, "invalid or revoked API key");
    let hash = keys::hash(key);
    let cache = &state.key_cache;
    let entry = match cache.get(&hash) {
        Some(e) => e,
        None => {
            let ticket = cache.ticket();
            let e = key_rows::lookup(&state.db, &hash).await?.ok_or_else(invalid_key)?;
            cache.insert(ticket, hash, e.clone());
            e
        }
    };
    if !entry.key_active || !entry.user_active || entry.expires_at.is_some_and(|e| e <= Utc::now()) {
        return Err(invalid_key());
    }
    state.key_usage.touch(&entry.key_id);
    state.usage.api_call(&entry.user_id, &entry.session_id, &entry.key_id);
    Ok(Some(entry))
}

/// The session a call may read: by its owner's user token, or by the
/// session's own API key. Another session's key, like another user's
/// session, is SESSION_NOT_FOUND: nothing tells the caller it exists.
pub async fn readable_session(
    state: &SharedState,
    md: &tonic::metadata::MetadataMap,
    session_id: &str,
) -> CpResult<Session> {
    let not_found = || api(ErrorCode::SessionNotFound, "session not found");
    match session_key(state, md).await? {
        Some(key) => {
            let id = validation::lookup_id(session_id).ok_or_else(not_found)?;
            if key.session_id != id {
                return Err(not_found());
            }
            session_rows::by_id(&state.db.conn, id).await?.ok_or_else(not_found)
        }
        None => {
            let user = state.auth.user(md).await?;
            owned_session(state, &user, session_id).await
        }
    }
}

/// The caller's session, or SESSION_NOT_FOUND (also for other users' ids).
pub async fn owned_session(state: &SharedState, user: &AuthUser, session_id: &str) -> CpResult<Session> {
    let not_found = || api(ErrorCode::SessionNotFound, "session not found");
    let id = validation::lookup_id(session_id).ok_or_else(not_found)?;
    session_rows::by_id_of_user(&state.db.conn, id, &user.id).await?.ok_or_else(not_found)
}

/// `page` (1-based, 0 → 1) and `limit` (0 → 20, capped at 100).
pub fn page_limit(page: u32, limit: u32) -> (u32, u32) {
    (page.max(1), if limit == 0 { 20 } else { limit.min(100) })
}

pub fn pagination(total: u64, page: u32, limit: u32) -> v1::Pagination {
    v1::Pagination { total, page, limit }
}

/// Tells the session's worker to stop it; best effort (a worker that is
/// gone no longer runs it, one that comes back is fenced on Hello).
pub async fn stop_on_worker(state: &SharedState, s: &Session) {
    let Some(worker_id) = &s.worker_id else { return };
    let stop = v1::StopSession {
        session_id: s.id.clone(),
        generation: u64::try_from(s.generation).unwrap_or_default(),
    };
    match state.dispatcher.run(worker_id, stop).await {
        Ok(r) if !r.ok => {
            tracing::warn!(session_id = s.id, worker_id, error = r.error_message, "worker refused stop")
        }
        Err(e) => tracing::warn!(session_id = s.id, worker_id, error = %e, "stop not delivered"),
        Ok(_) => {}
    }
}
