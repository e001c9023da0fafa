//! ApiKeyService: a session's API key — show (metadata only), rotate (new
//! key shown once, the old hash replaced in the same row so it stops
//! working at once), revoke.

use chrono::{DateTime, Duration, Utc};
use tonic::{Request, Response, Status};
use wagate_proto::error::ErrorCode;
use wagate_proto::time::{from_proto, opt_to_proto, to_proto};
use wagate_proto::v1::{self, api_key_service_server::ApiKeyService};

use crate::audit::{self, AuditEntry};
use crate::auth::identity::Authenticated;
use crate::auth::{AuthUser, api_keys};
use crate::error::{CpResult, api, invalid};
use crate::persistence::api_keys::{self as key_rows, ApiKey};
use crate::services::owned_session;
use crate::state::SharedState;

pub const MAX_EXPIRY_DAYS: u32 = 3650;

pub struct ApiKeyApi {
    state: SharedState,
}

pub fn info(k: &ApiKey) -> v1::ApiKeyInfo {
    v1::ApiKeyInfo {
        id: k.id.clone(),
        session_id: k.session_id.clone(),
        name: k.name.clone(),
        prefix: k.key_prefix.clone(),
        is_active: k.is_active,
        last_used: opt_to_proto(k.last_used),
        created_at: Some(to_proto(k.created_at)),
        expires_at: opt_to_proto(k.expires_at),
    }
}

/// The expiry asked for by a rotate request.
pub fn expiry(req: &v1::RotateApiKeyRequest, now: DateTime<Utc>) -> CpResult<Option<DateTime<Utc>>> {
    if let Some(t) = &req.expires_at {
        let at = from_proto(t).ok_or_else(|| invalid("expiresAt", "expiresAt is not a valid timestamp"))?;
        if at <= now {
            return Err(invalid("expiresAt", "expiresAt must be in the future"));
        }
        if at > now + Duration::days(i64::from(MAX_EXPIRY_DAYS)) {
            return Err(invalid("expiresAt", format!("expiresAt must be within {MAX_EXPIRY_DAYS} days")));
        }
        return Ok(Some(at));
    }
    match req.expires_in_days {
        None => Ok(None),
        Some(d) if (1..=MAX_EXPIRY_DAYS).contains(&d) => Ok(Some(now + Duration::days(i64::from(d)))),
        Some(_) => {
            Err(invalid("expiresInDays", format!("expiresInDays must be between 1 and {MAX_EXPIRY_DAYS}")))
        }
    }
}

impl ApiKeyApi {
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }

    async fn key_of(&self, user: &AuthUser, session_id: &str) -> CpResult<(String, Option<ApiKey>)> {
        let s = owned_session(&self.state, user, session_id).await?;
        let key = key_rows::of_session(&self.state.db, &s.id).await?;
        Ok((s.id, key))
    }

    async fn rotate(
        &self,
        who: Authenticated,
        req: v1::RotateApiKeyRequest,
    ) -> CpResult<v1::RotateApiKeyResponse> {
        self.state.ensure_running()?;
        let user = &who.user;
        let (session_id, existing) = self.key_of(user, &req.session_id).await?;
        self.state.auth.require_recent_auth(&who, req.current_password.as_deref()).await?;
        let now = Utc::now();
        let expires_at = expiry(&req, now)?;
        let key = api_keys::generate();
        let row = match existing {
            Some(k) => {
                key_rows::reissue(
                    &self.state.db,
                    k,
                    key.hash.clone(),
                    key.display_prefix.clone(),
                    now,
                    expires_at,
                )
                .await?
            }
            None => {
                key_rows::insert(
                    &self.state.db.conn,
                    key_rows::new_row(
                        &session_id,
                        key.hash.clone(),
                        key.display_prefix.clone(),
                        now,
                        expires_at,
                    ),
                )
                .await?
            }
        };
        // The old key must stop working at once on this replica's key cache.
        crate::auth::invalidation::session(&self.state, &session_id).await;
        audit::record(
            &self.state.db,
            "api_keys",
            AuditEntry::new("api key rotated")
                .user(&user.id)
                .session(&session_id)
                .details(serde_json::json!({ "prefix": row.key_prefix, "expiresAt": row.expires_at })),
        );
        tracing::info!(session_id, user_id = user.id, "api key rotated");
        Ok(v1::RotateApiKeyResponse { key: Some(info(&row)), api_key: key.key })
    }

    async fn revoke(&self, user: AuthUser, session_id: &str) -> CpResult<v1::ApiKeyInfo> {
        self.state.ensure_running()?;
        let (session_id, existing) = self.key_of(&user, session_id).await?;
        let k = existing.filter(|k| k.is_active).ok_or_else(no_active_key)?;
        let row = key_rows::deactivate(&self.state.db, k).await?;
        crate::auth::invalidation::session(&self.state, &session_id).await;
        audit::record(
            &self.state.db,
            "api_keys",
            AuditEntry::new("api key revoked")
                .user(&user.id)
                .session(&session_id)
                .details(serde_json::json!({ "prefix": row.key_prefix })),
        );
        tracing::info!(session_id, user_id = user.id, "api key revoked");
        Ok(info(&row))
    }
}

fn no_active_key() -> crate::error::CpError {
    api(ErrorCode::NotFound, "this session has no API key (POST …/api-key/rotate issues one)")
}

#[tonic::async_trait]
impl ApiKeyService for ApiKeyApi {
    async fn get_api_key(
        &self,
        request: Request<v1::GetSessionRequest>,
    ) -> Result<Response<v1::ApiKeyInfo>, Status> {
        let user = self.state.auth.user(request.metadata()).await?;
        let (_, key) = self.key_of(&user, &request.get_ref().session_id).await?;
        // A revoked key is gone for its owner (DELETE answered its last
        // metadata); rotating issues a new one.
        let k = key.filter(|k| k.is_active).ok_or_else(no_active_key)?;
        Ok(Response::new(info(&k)))
    }

    async fn rotate_api_key(
        &self,
        request: Request<v1::RotateApiKeyRequest>,
    ) -> Result<Response<v1::RotateApiKeyResponse>, Status> {
        let who = self.state.auth.authenticate(request.metadata()).await?;
        Ok(Response::new(self.rotate(who, request.into_inner()).await?))
    }

    async fn revoke_api_key(
        &self,
        request: Request<v1::GetSessionRequest>,
    ) -> Result<Response<v1::ApiKeyInfo>, Status> {
        let user = self.state.auth.user(request.metadata()).await?;
        Ok(Response::new(self.revoke(user, &request.get_ref().session_id).await?))
    }
}
