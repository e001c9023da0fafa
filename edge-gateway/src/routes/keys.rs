//! `GET/DELETE /sessions/{sessionId}/api-key`, `POST /sessions/{sessionId}/api-key/rotate` (owner's JWT).

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::error::ApiError;
use wagate_proto::v1::{self, GetSessionRequest};

use super::{Answer, AppState, CallContext, Reply, incomplete_reply};
use crate::json::{OptionalJson, Validate};
use crate::model::Ts;
use crate::openapi::Envelope;
use crate::params::{PathIds, SessionId};

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(get, revoke)).routes(routes!(rotate))
}

/// `POST /sessions/{id}/api-key/rotate` (the body is optional).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"expiresInDays": 90}))]
pub struct RotateKeyBody {
    /// Absolute expiry (RFC 3339, in the future; null or absent: none).
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Relative expiry in days (1-3650); ignored when `expiresAt` is set.
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<f64>,
    /// The account's password: needed unless the token is younger than the
    /// re-authentication window (5 minutes by default).
    #[schema(max_length = 1024)]
    pub current_password: Option<String>,
}

impl Validate for RotateKeyBody {
    fn validate(&self) -> Result<(), ApiError> {
        if let Some(d) = self.expires_in_days
            && !(d.fract() == 0.0 && (1.0..=3650.0).contains(&d))
        {
            return Err(ApiError::invalid(
                "expiresInDays",
                "expiresInDays must be a whole number between 1 and 3650",
            ));
        }
        Ok(())
    }
}

impl RotateKeyBody {
    pub fn into_request(self, session_id: &str) -> Result<v1::RotateApiKeyRequest, ApiError> {
        // Null or absent: no absolute expiry; anything else must be an RFC 3339 time as written.
        let expires_at = match self.expires_at.as_deref() {
            None => None,
            Some(s) => Some(
                chrono::DateTime::parse_from_rfc3339(s)
                    .map(|t| wagate_proto::time::to_proto(t.with_timezone(&chrono::Utc)))
                    .map_err(|_| ApiError::invalid("expiresAt", "expiresAt must be an RFC 3339 time"))?,
            ),
        };
        Ok(v1::RotateApiKeyRequest {
            session_id: session_id.to_owned(),
            expires_at,
            expires_in_days: self.expires_in_days.map(|d| d as u32),
            current_password: self.current_password,
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyDto {
    pub id: String,
    pub session_id: String,
    pub name: String,
    /// Display prefix; never the key.
    pub prefix: String,
    pub is_active: bool,
    pub last_used: Option<Ts>,
    pub created_at: Option<Ts>,
    pub expires_at: Option<Ts>,
}

impl From<&v1::ApiKeyInfo> for ApiKeyDto {
    fn from(k: &v1::ApiKeyInfo) -> Self {
        ApiKeyDto {
            id: k.id.clone(),
            session_id: k.session_id.clone(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            is_active: k.is_active,
            last_used: Ts::from_proto(k.last_used.as_ref()),
            created_at: Ts::from_proto(k.created_at.as_ref()),
            expires_at: Ts::from_proto(k.expires_at.as_ref()),
        }
    }
}

/// A rotated key: the new key is shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedKeyDto {
    pub api_key: String,
    #[serde(flatten)]
    pub key: ApiKeyDto,
}

#[utoipa::path(get, path = "/sessions/{sessionId}/api-key", tag = "api keys",
    summary = "The session key's metadata (prefix, lastUsed, expiry; never the key; 404 once revoked)",
    security(("bearer" = [])), params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64)),
    responses((status = 200, body = Envelope<ApiKeyDto>)))]
pub(crate) async fn get(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let request = GetSessionRequest { session_id: ids.session()? };
    call.require_authorization()?;
    let k = call
        .unary("ApiKeyService.GetApiKey", state.control_plane.api_keys().get_api_key(call.request(request)))
        .await?;
    Ok(Reply::ok(&ApiKeyDto::from(&k)))
}

#[utoipa::path(delete, path = "/sessions/{sessionId}/api-key", tag = "api keys",
    summary = "Revoke the session's key at once",
    security(("bearer" = [])), params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64)),
    responses((status = 200, body = Envelope<ApiKeyDto>)))]
pub(crate) async fn revoke(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let request = GetSessionRequest { session_id: ids.session()? };
    call.require_authorization()?;
    let k = call
        .unary(
            "ApiKeyService.RevokeApiKey",
            state.control_plane.api_keys().revoke_api_key(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&ApiKeyDto::from(&k)))
}

/// The body is optional: none (or an empty one) rotates without expiry.
#[utoipa::path(post, path = "/sessions/{sessionId}/api-key/rotate", tag = "api keys",
    summary = "Issue a new key (shown once); the old one stops working at once",
    security(("bearer" = [])), params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64)),
    request_body(content = Option<RotateKeyBody>, description = "optional"),
    responses((status = 200, body = Envelope<RotatedKeyDto>)))]
pub(crate) async fn rotate(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    SessionId(id): SessionId,
    OptionalJson(body): OptionalJson<RotateKeyBody>,
) -> Answer {
    call.require_authorization()?;
    let request = body.unwrap_or_default().into_request(&id)?;
    let r = call
        .unary(
            "ApiKeyService.RotateApiKey",
            state.control_plane.api_keys().rotate_api_key(call.request(request)),
        )
        .await?;
    let key = r.key.as_ref().ok_or_else(|| incomplete_reply("ApiKeyService.RotateApiKey"))?;
    Ok(Reply::ok(&RotatedKeyDto { api_key: r.api_key.clone(), key: key.into() }))
}
