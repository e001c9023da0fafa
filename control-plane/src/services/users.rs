//! UserService: the caller's own account (`/me`). Role and tier are not
//! part of the request type, so they cannot be mass-assigned.

use chrono::Utc;
use tonic::{Request, Response, Status};
use wagate_proto::error::ErrorCode;
use wagate_proto::v1::{self, user_service_server::UserService};

use crate::audit::{self, AuditEntry};
use crate::auth::identity::Authenticated;
use crate::auth::{password_policy, passwords, refresh};
use crate::convert;
use crate::error::{CpResult, api, invalid, is_unique_violation, refused};
use crate::fleet::placement;
use crate::persistence::enums::LogLevel;
use crate::persistence::sessions as session_rows;
use crate::persistence::users::{self as user_rows, UserPatch};
use crate::services::stop_on_worker;
use crate::state::SharedState;
use crate::validation;

pub struct UserApi {
    state: SharedState,
}

impl UserApi {
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }

    async fn update_me(&self, who: Authenticated, req: v1::UpdateMeRequest) -> CpResult<v1::User> {
        self.state.ensure_running()?;
        let me = who.user.clone();
        let mut patch = UserPatch::default();
        let mut changed = Vec::new();
        if let Some(name) = &req.name {
            patch.name = Some(validation::name("name", name)?);
            changed.push("name");
        }
        if let Some(email) = &req.email {
            let email = validation::email(email)?;
            if email != me.email {
                // The password check below covers a combined change.
                if req.password.is_none() {
                    self.state.auth.require_recent_auth(&who, req.current_password.as_deref()).await?;
                }
                let taken = user_rows::by_email(&self.state.db, &email).await?.is_some();
                if taken {
                    return Err(api(ErrorCode::AlreadyExists, "an account with this email already exists"));
                }
                patch.email = Some(email);
                // The new address is verified through a new link.
                patch.email_verified_at = Some(None);
                changed.push("email");
            }
        }
        if let Some(password) = &req.password {
            let current = req.current_password.as_deref().unwrap_or_default();
            if current.is_empty() {
                return Err(invalid("currentPassword", "currentPassword is required to change the password"));
            }
            // The email this change leaves on the account (validated above).
            let email =
                req.email.as_deref().and_then(|e| validation::email(e).ok()).unwrap_or(me.email.clone());
            password_policy::check(password, &email, &me.name)?;
            if !passwords::verify(current.to_owned(), me.password_hash.clone()).await? {
                audit::record(
                    &self.state.db,
                    "users",
                    AuditEntry::new("password change refused: wrong current password")
                        .level(LogLevel::Warn)
                        .user(&me.id),
                );
                return Err(refused("currentPassword", "currentPassword is not correct"));
            }
            patch.password_hash = Some(passwords::hash(password.clone()).await?);
            // Every earlier access token dies with the old password.
            patch.token_version = Some(me.token_version.saturating_add(1));
            changed.push("password");
        }
        if let Some(prefs) = &req.notifications {
            let mask = convert::apply_notification_prefs(me.notify_mask, prefs);
            if mask != me.notify_mask {
                patch.notify_mask = Some(mask);
                changed.push("notifications");
            }
        }
        if changed.is_empty() {
            return Ok(convert::user(&me));
        }
        patch.updated_at = Some(Utc::now());
        let password_changed = changed.contains(&"password");
        let updated = match user_rows::update(&self.state.db, &me, patch).await {
            Ok(u) => u,
            Err(e) if is_unique_violation(&e) => {
                return Err(api(ErrorCode::AlreadyExists, "an account with this email already exists"));
            }
            Err(e) => return Err(e.into()),
        };
        if password_changed {
            refresh::revoke_all(&self.state.db, &me.id).await?;
        }
        if changed.contains(&"email")
            && let Err(e) = crate::email::account::send_verification(&self.state, &updated).await
        {
            tracing::warn!(user_id = me.id, error = %e, "verification mail not enqueued");
        }
        audit::record(
            &self.state.db,
            "users",
            AuditEntry::new("account updated").user(&me.id).details(serde_json::json!({ "fields": changed })),
        );
        Ok(convert::user(&updated))
    }
}

/// Deletes a user: stops their sessions on the workers (best effort),
/// frees the worker slots, deletes the row (cascading to sessions, keys,
/// messages, webhooks, usage) and the routes. Returns the sessions removed.
pub async fn delete_user(state: &SharedState, user_id: &str) -> CpResult<u32> {
    let sessions = session_rows::of_user(&state.db, user_id).await?;
    futures::future::join_all(sessions.iter().map(|s| stop_on_worker(state, s))).await;
    let db = &state.db;
    let txn = db.begin().await?;
    for s in &sessions {
        if let Some(w) = &s.worker_id {
            placement::release_slot(db, &txn, w).await?;
        }
    }
    if !user_rows::delete(&txn, user_id).await? {
        return Err(api(ErrorCode::NotFound, "user not found"));
    }
    txn.commit().await?;
    crate::auth::invalidation::all(state).await;
    Ok(u32::try_from(sessions.len()).unwrap_or(u32::MAX))
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn get_me(&self, request: Request<v1::GetMeRequest>) -> Result<Response<v1::User>, Status> {
        let me = self.state.auth.user(request.metadata()).await?;
        Ok(Response::new(convert::user(&me)))
    }

    async fn update_me(&self, request: Request<v1::UpdateMeRequest>) -> Result<Response<v1::User>, Status> {
        let who = self.state.auth.authenticate(request.metadata()).await?;
        Ok(Response::new(self.update_me(who, request.into_inner()).await?))
    }

    async fn delete_me(
        &self,
        request: Request<v1::DeleteMeRequest>,
    ) -> Result<Response<v1::DeleteUserResponse>, Status> {
        let who = self.state.auth.authenticate(request.metadata()).await?;
        self.state.ensure_running()?;
        self.state.auth.require_recent_auth(&who, request.get_ref().current_password.as_deref()).await?;
        let me = who.user;
        let n = delete_user(&self.state, &me.id).await?;
        audit::record(
            &self.state.db,
            "users",
            AuditEntry::new("account deleted by its owner")
                .user(&me.id)
                .details(serde_json::json!({ "sessions": n })),
        );
        Ok(Response::new(v1::DeleteUserResponse { user_id: me.id, deleted: true, sessions_deleted: n }))
    }
}
