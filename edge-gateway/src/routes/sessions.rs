//! `sessions`, `sessions/{sessionId}`, `sessions/{sessionId}/qr`,
//! `sessions/{sessionId}/start` (JWT,
//! checked by the control plane; the edge only checks a credential is present).

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::error::{ApiError, ErrorCode};

use crate::qr::{QrFormat, render};
use wagate_proto::v1::{
    CreateSessionRequest, CreateSessionResponse, DeleteSessionRequest, DeleteSessionResponse,
    GetSessionRequest, ListSessionsRequest, ListSessionsResponse, QrResponse, Session,
};

use super::{Answer, AppState, CallContext, Reply, incomplete_reply};
use crate::json::{Json, Validate, require};
use crate::model::{PaginationDto, Ts, session_status_name};
use crate::openapi::Envelope;
use crate::params::{PageParams, PathIds, Query};

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, delete))
        .routes(routes!(qr))
        .routes(routes!(start))
        .routes(routes!(stop))
        .routes(routes!(logout))
}

/// `POST sessions`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "Personal", "sessionId": "ann-personal"}))]
pub struct CreateSessionBody {
    #[schema(schema_with = crate::schema::name_required)]
    pub name: String,
    /// Optional id (generated when absent).
    #[serde(default)]
    #[schema(schema_with = crate::schema::new_session_id)]
    pub session_id: Option<String>,
}

impl Validate for CreateSessionBody {
    fn validate(&self) -> Result<(), ApiError> {
        require("name", &self.name)
    }
}

/// A session as listed and fetched.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionDto<'a> {
    pub id: &'a str,
    pub session_id: &'a str,
    pub name: &'a str,
    /// INIT, QR_REQUIRED, CONNECTING, CONNECTED, RECONNECTING, DISCONNECTED, ...
    pub status: &'static str,
    pub phone_number: Option<&'a str>,
    pub worker_id: Option<&'a str>,
    pub qr_code: Option<&'a str>,
    pub last_seen_at: Option<Ts>,
    pub created_at: Option<Ts>,
    pub updated_at: Option<Ts>,
    pub api_key_prefix: Option<&'a str>,
    /// Why the session waits (e.g. for a worker with free capacity) or failed.
    pub status_reason: Option<&'a str>,
}

impl<'a> From<&'a Session> for SessionDto<'a> {
    fn from(s: &'a Session) -> Self {
        SessionDto {
            id: &s.id,
            session_id: &s.id,
            name: &s.name,
            status: session_status_name(s.status),
            phone_number: s.phone_number.as_deref(),
            worker_id: s.worker_id.as_deref(),
            qr_code: s.qr_code.as_deref(),
            last_seen_at: Ts::from_proto(s.last_seen_at.as_ref()),
            created_at: Ts::from_proto(s.created_at.as_ref()),
            updated_at: Ts::from_proto(s.updated_at.as_ref()),
            api_key_prefix: s.api_key_prefix.as_deref(),
            status_reason: s.status_reason.as_deref(),
        }
    }
}

/// Answer of `POST sessions`: the session and its API key (shown once).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedSessionDto<'a> {
    pub session_id: &'a str,
    pub id: &'a str,
    pub name: &'a str,
    pub status: &'static str,
    pub worker_id: Option<&'a str>,
    pub phone_number: Option<&'a str>,
    pub qr_code: Option<&'a str>,
    /// The session's API key, shown once.
    pub api_key: &'a str,
    pub api_key_prefix: Option<&'a str>,
    pub created_at: Option<Ts>,
    pub updated_at: Option<Ts>,
    pub last_seen_at: Option<Ts>,
}

impl<'a> CreatedSessionDto<'a> {
    pub fn from_proto(r: &'a CreateSessionResponse) -> Option<Self> {
        let s = r.session.as_ref()?;
        Some(CreatedSessionDto {
            session_id: &s.id,
            id: &s.id,
            name: &s.name,
            status: session_status_name(s.status),
            worker_id: s.worker_id.as_deref(),
            phone_number: s.phone_number.as_deref(),
            qr_code: s.qr_code.as_deref(),
            api_key: &r.api_key,
            api_key_prefix: s.api_key_prefix.as_deref(),
            created_at: Ts::from_proto(s.created_at.as_ref()),
            updated_at: Ts::from_proto(s.updated_at.as_ref()),
            last_seen_at: Ts::from_proto(s.last_seen_at.as_ref()),
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionListDto<'a> {
    pub sessions: Vec<SessionDto<'a>>,
    pub pagination: PaginationDto,
}

impl<'a> From<&'a ListSessionsResponse> for SessionListDto<'a> {
    fn from(r: &'a ListSessionsResponse) -> Self {
        SessionListDto {
            sessions: r.sessions.iter().map(SessionDto::from).collect(),
            pagination: PaginationDto::new(r.total, r.page, r.limit),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QrDto<'a> {
    pub session_id: &'a str,
    pub status: &'static str,
    pub qr_code: Option<&'a str>,
}

impl<'a> From<&'a QrResponse> for QrDto<'a> {
    fn from(r: &'a QrResponse) -> Self {
        QrDto {
            session_id: &r.session_id,
            status: session_status_name(r.status),
            qr_code: r.qr_code.as_deref(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedDto<'a> {
    pub session_id: &'a str,
    pub deleted: bool,
}

impl<'a> From<&'a DeleteSessionResponse> for DeletedDto<'a> {
    fn from(r: &'a DeleteSessionResponse) -> Self {
        DeletedDto { session_id: &r.session_id, deleted: r.deleted }
    }
}

#[utoipa::path(post, path = "/sessions", tag = "sessions", summary = "Create a session (API key shown once)",
    security(("bearer" = [])), request_body = CreateSessionBody,
    responses((status = 201, body = Envelope<CreatedSessionDto>), (status = 409, body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    Json(body): Json<CreateSessionBody>,
) -> Answer {
    call.require_authorization()?;
    let request = CreateSessionRequest { name: body.name, session_id: body.session_id.unwrap_or_default() };
    let reply = call
        .unary(
            "SessionService.CreateSession",
            state.control_plane.sessions().create_session(call.request(request)),
        )
        .await?;
    let dto = CreatedSessionDto::from_proto(&reply)
        .ok_or_else(|| incomplete_reply("SessionService.CreateSession"))?;
    Ok(Reply::created(&dto))
}

#[utoipa::path(get, path = "/sessions", tag = "sessions", summary = "The caller's sessions",
    security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Envelope<SessionListDto>)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    Query(page): Query<PageParams>,
) -> Answer {
    call.require_authorization()?;
    let request = ListSessionsRequest { page: page.page.unwrap_or(0), limit: page.limit.unwrap_or(0) };
    let reply = call
        .unary(
            "SessionService.ListSessions",
            state.control_plane.sessions().list_sessions(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&SessionListDto::from(&reply)))
}

fn get_request(ids: &PathIds) -> Result<GetSessionRequest, ApiError> {
    Ok(GetSessionRequest { session_id: ids.session()? })
}

#[utoipa::path(get, path = "/sessions/{sessionId}", tag = "sessions", summary = "One session (its owner, or the session's own API key)",
    security(("bearer" = []), ("apiKey" = [])), params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64)),
    responses((status = 200, body = Envelope<SessionDto>)))]
pub(crate) async fn get(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let request = get_request(&ids)?;
    call.require_api_key()?;
    let reply = call
        .unary("SessionService.GetSession", state.control_plane.sessions().get_session(call.request(request)))
        .await?;
    Ok(Reply::ok(&SessionDto::from(&reply)))
}

/// `?format=` of `GET …/qr`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QrParams {
    /// json (default: the envelope with the code's text), png, svg or text
    /// (Unicode blocks for a terminal). An image of a session that has no
    /// code to scan (not QR_REQUIRED) is 409 SESSION_NOT_CONNECTED.
    #[serde(default)]
    #[param(pattern = "^(json|png|svg|text)$")]
    pub format: String,
}

#[utoipa::path(get, path = "/sessions/{sessionId}/qr", tag = "sessions", summary = "The QR code to scan (JSON, or rendered as PNG, SVG or text)",
    security(("bearer" = []), ("apiKey" = [])), params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64), QrParams),
    responses((status = 200, body = Envelope<QrDto>, content_type = "application/json"),
        (status = 200, description = "?format=png", content_type = "image/png"),
        (status = 200, description = "?format=svg", content_type = "image/svg+xml"),
        (status = 200, description = "?format=text", content_type = "text/plain"),
        (status = 409, description = "an image was asked and there is no code to scan (SESSION_NOT_CONNECTED)", body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn qr(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    ids: PathIds,
    Query(params): Query<QrParams>,
) -> Answer {
    let request = get_request(&ids)?;
    let format = QrFormat::parse(&params.format)?;
    call.require_api_key()?;
    let reply = call
        .unary("SessionService.GetQr", state.control_plane.sessions().get_qr(call.request(request)))
        .await?;
    if format == QrFormat::Json {
        return Ok(Reply::ok(&QrDto::from(&reply)));
    }
    let Some(code) = reply.qr_code.as_deref().filter(|c| !c.is_empty()) else {
        return Err(ApiError::new(
            ErrorCode::SessionNotConnected,
            format!("no QR code to scan (status {})", session_status_name(reply.status)),
        )
        .into());
    };
    let (content_type, body) = render(code, format)?;
    Ok(Reply::rendered(content_type, body))
}

#[utoipa::path(post, path = "/sessions/{sessionId}/start", tag = "sessions",
    summary = "Start a DISCONNECTED or ERROR session again (e.g. after its QR code expired): a new QR code",
    security(("bearer" = [])), params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64)),
    responses(
        (status = 200, description = "placed on a worker and started (INIT, then QR_REQUIRED)", body = Envelope<SessionDto>),
        (status = 403, description = "the tier's session limit is reached (TIER_LIMIT_EXCEEDED)", body = crate::openapi::ErrorEnvelope),
        (status = 404, description = "no such session, or not the caller's (SESSION_NOT_FOUND)", body = crate::openapi::ErrorEnvelope),
        (status = 409, description = "the session is already running (ALREADY_EXISTS)", body = crate::openapi::ErrorEnvelope),
        (status = 502, description = "the worker could not start the session (WORKER_ERROR)", body = crate::openapi::ErrorEnvelope),
        (status = 503, description = "no worker has a free slot, or the rest is reserved for paid tiers (NO_AVAILABLE_WORKERS, see Retry-After)", body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn start(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let request = get_request(&ids)?;
    call.require_authorization()?;
    let reply = call
        .unary(
            "SessionService.StartSession",
            state.control_plane.sessions().start_session(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&SessionDto::from(&reply)))
}

/// `?keepDevice=` of a delete.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct DeleteParams {
    /// `true`: delete without logging out (the device stays linked on the
    /// phone). Default `false`: a paired session is logged out first.
    #[serde(default)]
    #[param(value_type = Option<bool>)]
    pub keep_device: String,
}

impl DeleteParams {
    fn keep_device(&self) -> Result<bool, ApiError> {
        match self.keep_device.trim() {
            "" | "0" => Ok(false),
            "1" => Ok(true),
            v if v.eq_ignore_ascii_case("true") => Ok(true),
            v if v.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(ApiError::invalid("keepDevice", "keepDevice must be true or false")),
        }
    }
}

#[utoipa::path(delete, path = "/sessions/{sessionId}", tag = "sessions",
    summary = "Delete a session (its key and messages with it); a paired session is logged out of WhatsApp first unless keepDevice=true",
    security(("bearer" = [])), params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64), DeleteParams),
    responses((status = 200, body = Envelope<DeletedDto>)))]
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    ids: PathIds,
    Query(params): Query<DeleteParams>,
) -> Answer {
    let request = DeleteSessionRequest { session_id: ids.session()?, keep_device: params.keep_device()? };
    call.require_authorization()?;
    let reply = call
        .unary(
            "SessionService.DeleteSession",
            state.control_plane.sessions().delete_session(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&DeletedDto::from(&reply)))
}

#[utoipa::path(post, path = "/sessions/{sessionId}/stop", tag = "sessions",
    summary = "Stop a running session keeping its pairing (POST …/start resumes it without a QR code)",
    security(("bearer" = [])), params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64)),
    responses(
        (status = 200, description = "DISCONNECTED with reason STOPPED, worker slot freed", body = Envelope<SessionDto>),
        (status = 409, description = "the session is not running (SESSION_NOT_CONNECTED)", body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn stop(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let request = get_request(&ids)?;
    call.require_authorization()?;
    let reply = call
        .unary(
            "SessionService.StopSession",
            state.control_plane.sessions().stop_session(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&SessionDto::from(&reply)))
}

#[utoipa::path(post, path = "/sessions/{sessionId}/logout", tag = "sessions",
    summary = "Log the session out of WhatsApp: the device is unlinked from the phone and its credentials wiped",
    security(("bearer" = [])), params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64)),
    responses(
        (status = 200, description = "DISCONNECTED with reason LOGGED_OUT; POST …/start pairs again with a QR code", body = Envelope<SessionDto>),
        (status = 409, description = "the session never paired (SESSION_NOT_CONNECTED)", body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn logout(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let request = get_request(&ids)?;
    call.require_authorization()?;
    let reply = call
        .unary(
            "SessionService.LogoutSession",
            state.control_plane.sessions().logout_session(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&SessionDto::from(&reply)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_pagination() {
        let r = ListSessionsResponse { sessions: vec![Session::default()], total: 41, page: 2, limit: 20 };
        let v = serde_json::to_value(SessionListDto::from(&r)).unwrap();
        assert_eq!(
            v["pagination"],
            serde_json::json!({"total": 41, "page": 2, "limit": 20, "totalPages": 3})
        );
        assert_eq!(v["sessions"][0]["status"], "UNSPECIFIED");
        assert!(v["sessions"][0]["lastSeenAt"].is_null());
    }
}
