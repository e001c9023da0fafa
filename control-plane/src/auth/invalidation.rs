//! Cross-replica invalidation of the API-key cache.
//!
//! Anything that changes what a key unlocks (key rotated, revoked or
//! deleted, user deactivated, session deleted, moved or changed status)
//! invalidates this replica's cache at once and broadcasts the same to every
//! other replica: Redis pub/sub, or the in-process bus of the embedded
//! default. The cache TTL stays as a safety net only (a lost message).
//!
//! The same bus carries webhook configuration changes, so that every replica
//! writes a new webhook's events at once (not after its cache TTL).
//!
//! Messages: `s:<session id>` (that session's keys), `w:<session id>` (that
//! session's webhook) or `*` (every key).

use tracing::Instrument;

use crate::state::SharedState;

const ALL: &str = "*";

/// Invalidates `session_id`'s keys here and on every replica; returns once
/// the broadcast is published.
pub async fn session(state: &SharedState, session_id: &str) {
    state.key_cache.invalidate_session(session_id);
    publish(state, &format!("s:{session_id}")).await;
}

/// A session's webhook was created, changed or removed: every replica
/// re-reads it before its next event (and writes events at all again, if it
/// had seen no active webhook).
pub async fn webhook(state: &SharedState, session_id: &str) {
    webhook_changed_here(state, session_id);
    publish(state, &format!("w:{session_id}")).await;
}

fn webhook_changed_here(state: &SharedState, session_id: &str) {
    state.webhooks.changed(session_id);
    state.webhooks.set_any_active(true);
}

/// Invalidates every key here and on every replica (e.g. a user deactivated).
pub async fn all(state: &SharedState) {
    state.key_cache.invalidate_all();
    publish(state, ALL).await;
}

/// Like [`session`], for callers that cannot wait: local now, broadcast in
/// the background.
pub fn session_soon(state: &SharedState, session_id: &str) {
    state.key_cache.invalidate_session(session_id);
    let st = state.clone();
    let message = format!("s:{session_id}");
    state.tasks.spawn(async move { publish(&st, &message).await });
}

/// How long a broadcast may wait for Redis: callers await it after their
/// commit, and the cache TTL bounds staleness if it is lost.
const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

async fn publish(state: &SharedState, message: &str) {
    let error = match tokio::time::timeout(PUBLISH_TIMEOUT, state.cache.publish(message)).await {
        Ok(Ok(())) => return,
        Ok(Err(err)) => err.to_string(),
        Err(_) => "timed out".to_owned(),
    };
    // The TTL still bounds staleness on the other replicas.
    tracing::warn!(error, "invalidation not broadcast");
    ::metrics::counter!("wagate_invalidations_lost_total").increment(1);
}

/// Applies invalidations broadcast by any replica (this one's own included:
/// harmless, it already applied them).
pub fn spawn_listener(state: &SharedState) {
    let mut rx = state.cache.subscribe();
    let st = state.clone();
    state.tasks.spawn(
        async move {
            loop {
                let message = tokio::select! {
                    () = st.shutdown.cancelled() => break,
                    m = rx.recv() => m,
                };
                match message {
                    Ok(m) if m == ALL => st.key_cache.invalidate_all(),
                    Ok(m) => match m.split_once(':') {
                        Some(("s", id)) => st.key_cache.invalidate_session(id),
                        Some(("w", id)) => webhook_changed_here(&st, id),
                        _ => tracing::debug!(message = m, "unknown invalidation"),
                    },
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => st.key_cache.invalidate_all(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        }
        .instrument(tracing::debug_span!("invalidation_listener")),
    );
}
