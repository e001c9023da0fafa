//! Notifications to a session's owner (never anyone else: the recipient is
//! read from the session's `user_id`), each behind the owner's switch
//! (`users.notify_mask`, `PATCH /me`), one mail per incident: the
//! `dedup_key` names the incident, so two replicas (or a repeated event)
//! enqueue it once.
//!
//! - a session that was CONNECTED (or RECONNECTING from it) goes
//!   DISCONNECTED — incident: the status row it left (`updated_at`);
//! - a session RECONNECTING longer than `WAGATE_NOTIFY_RECONNECTING_SECS`
//!   (periodic sweep) — incident: since when;
//! - the message quota reaches 80 % and 100 % — incident: the quota window;
//! - a webhook is disabled — incident: the webhook row's last change.

use chrono::{DateTime, Utc};

use super::templates::{self, kind};
use crate::persistence::email_outbox::NewEmail;
use crate::persistence::users::{self, NOTIFY_QUOTA, NOTIFY_SESSION_STATUS, NOTIFY_WEBHOOK_DISABLED, User};
use crate::persistence::{DbErr, sessions};
use crate::state::SharedState;

/// Sessions looked at per sweep at most.
const SWEEP_LIMIT: u64 = 200;

/// The owner of a session and the session's name, if both exist and the
/// owner wants `topic`.
async fn owner_wanting(
    state: &SharedState,
    session_id: &str,
    topic: i32,
) -> Result<Option<(User, String)>, DbErr> {
    let Some(s) = sessions::by_id(&state.db.conn, session_id).await? else { return Ok(None) };
    let Some(u) = users::by_id(&state.db, &s.user_id).await? else { return Ok(None) };
    Ok((u.is_active && u.notify_mask & topic != 0).then_some((u, s.name)))
}

async fn enqueue(
    state: &SharedState,
    user: &User,
    key: String,
    kind: &'static str,
    mail: (String, String),
) -> Result<bool, DbErr> {
    let (subject, body) = mail;
    state
        .email
        .enqueue(
            &state.db,
            NewEmail {
                dedup_key: key,
                user_id: Some(user.id.clone()),
                kind,
                to: user.email.clone(),
                subject,
                body,
            },
        )
        .await
}

/// A session left CONNECTED for DISCONNECTED; `left_at` is when the row it
/// left was written (the incident). Best effort: failures are logged.
pub fn session_down(
    state: &SharedState,
    session_id: &str,
    left_at: DateTime<Utc>,
    status: &'static str,
    reason: Option<String>,
) {
    let st = state.clone();
    let session_id = session_id.to_owned();
    state.tasks.spawn(async move {
        let run = async {
            let Some((user, name)) = owner_wanting(&st, &session_id, NOTIFY_SESSION_STATUS).await? else {
                return Ok(false);
            };
            let key = format!("session:{session_id}:down:{}", left_at.timestamp_millis());
            let mail = templates::session_down(&session_id, &name, status, reason.as_deref());
            enqueue(&st, &user, key, kind::SESSION_DOWN, mail).await
        };
        if let Err(e) = run.await {
            tracing::warn!(session_id, error = %e, "session notification not enqueued");
        }
    });
}

/// Sessions RECONNECTING for too long: one mail per session and incident.
pub async fn sweep_reconnecting(state: &SharedState) -> Result<(), DbErr> {
    let after = state.email.settings.reconnecting_after;
    let cutoff = Utc::now() - chrono::Duration::from_std(after).unwrap_or_default();
    for s in sessions::reconnecting_since(&state.db, cutoff, SWEEP_LIMIT).await? {
        let key = format!("session:{}:reconnecting:{}", s.id, s.since.timestamp_millis());
        let Some(user) = users::by_id(&state.db, &s.user_id).await? else { continue };
        if !user.is_active || user.notify_mask & NOTIFY_SESSION_STATUS == 0 {
            continue;
        }
        let mail = templates::session_reconnecting(&s.id, &s.name, after.as_secs().div_ceil(60));
        enqueue(state, &user, key, kind::SESSION_RECONNECTING, mail).await?;
    }
    Ok(())
}

/// The quota of `user_id` crossed `percent` (80 or 100) in the window
/// numbered `window`. Best effort, off the send path.
pub fn quota(state: &SharedState, user_id: &str, percent: u8, limit: u64, per: String, window: i64) {
    let key = format!("quota:{user_id}:{percent}:{window}");
    // Every send above 80 % comes here: one in-memory lookup, no SQL, once handled.
    if state.email.recently_handled(&key) {
        return;
    }
    let st = state.clone();
    let user_id = user_id.to_owned();
    state.tasks.spawn(async move {
        let run = async {
            let Some(user) = users::by_id(&st.db, &user_id).await? else { return Ok(false) };
            if !user.is_active || user.notify_mask & NOTIFY_QUOTA == 0 {
                st.email.skip(&key);
                return Ok(false);
            }
            let k = if percent >= 100 { kind::QUOTA_100 } else { kind::QUOTA_80 };
            enqueue(&st, &user, key, k, templates::quota(percent, limit, &per)).await
        };
        if let Err(e) = run.await {
            tracing::warn!(user_id, error = %e, "quota notification not enqueued");
        }
    });
}

/// The webhook `hook_id` of `session_id` was disabled; `incident` is the
/// webhook row's last change before it.
pub async fn webhook_disabled(
    state: &SharedState,
    session_id: &str,
    hook_id: &str,
    url: &str,
    reason: &str,
    incident: DateTime<Utc>,
) -> Result<(), DbErr> {
    let Some((user, name)) = owner_wanting(state, session_id, NOTIFY_WEBHOOK_DISABLED).await? else {
        return Ok(());
    };
    let key = format!("webhook:{hook_id}:disabled:{}", incident.timestamp_millis());
    let mail = templates::webhook_disabled(session_id, &name, url, reason);
    enqueue(state, &user, key, kind::WEBHOOK_DISABLED, mail).await?;
    Ok(())
}
