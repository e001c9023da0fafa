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

use crate::auth::AuthUser;
use crate::error::{CpResult, api};
use crate::persistence::sessions::{self as session_rows, Session};
use crate::state::SharedState;
use crate::validation;

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
