//! `sessions/{sessionId}/groups…`: the WhatsApp groups of a session's
//! account, asked of its phone through the worker (the session's API key).

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::error::ApiError;
use wagate_proto::v1::{
    self, CreateGroupRequest, GroupRequest, ListGroupsRequest, UpdateGroupParticipantsRequest,
};

use super::{Answer, AppState, CallContext, Reply};
use crate::json::{Json, Validate, require};
use crate::model::Ts;
use crate::openapi::Envelope;
use crate::params::PathIds;

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get))
        .routes(routes!(participants))
        .routes(routes!(leave))
}

/// A group member.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantDto {
    pub jid: String,
    pub admin: bool,
}

/// A group.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupDto {
    /// `…@g.us`: send to it like to a number.
    pub id: String,
    pub subject: String,
    pub owner: Option<String>,
    pub participants: Vec<ParticipantDto>,
    pub created_at: Option<Ts>,
}

impl From<v1::GroupInfo> for GroupDto {
    fn from(g: v1::GroupInfo) -> Self {
        GroupDto {
            id: g.id,
            subject: g.subject,
            owner: g.owner,
            participants: g
                .participants
                .into_iter()
                .map(|p| ParticipantDto { jid: p.jid, admin: p.admin })
                .collect(),
            created_at: (g.created_at_ms > 0)
                .then(|| prost_types::Timestamp {
                    seconds: g.created_at_ms.div_euclid(1000),
                    nanos: i32::try_from(g.created_at_ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
                })
                .and_then(|t| Ts::from_proto(Some(&t))),
        }
    }
}

/// `GET …/groups` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupListDto {
    pub groups: Vec<GroupDto>,
}

/// `POST sessions/{id}/groups`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"subject": "Shop team", "participants": ["6281234567891", "6281234567892"]}))]
pub struct CreateGroupBody {
    #[schema(min_length = 1, max_length = 100)]
    pub subject: String,
    /// Phone numbers or JIDs (1 to 256).
    #[schema(min_items = 1, max_items = 256)]
    pub participants: Vec<String>,
}

impl Validate for CreateGroupBody {
    fn validate(&self) -> Result<(), ApiError> {
        require("subject", &self.subject)
    }
}

/// `POST sessions/{id}/groups/{groupId}/participants`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"add": ["6281234567893"], "remove": ["6281234567892"]}))]
pub struct ParticipantsBody {
    /// Phone numbers or JIDs to add (at most 256).
    #[serde(default)]
    #[schema(max_items = 256)]
    pub add: Vec<String>,
    /// Phone numbers or JIDs to remove (at most 256).
    #[serde(default)]
    #[schema(max_items = 256)]
    pub remove: Vec<String>,
}

impl Validate for ParticipantsBody {}

/// `POST …/leave` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeftDto {
    pub group_id: String,
}

#[utoipa::path(get, path = "/sessions/{sessionId}/groups", tag = "groups", summary = "The groups the session's account is in",
    security(("apiKey" = []), ("bearer" = [])),
    params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64)),
    responses((status = 200, body = Envelope<GroupListDto>),
        (status = 409, description = "the session is not connected", body = crate::openapi::ErrorEnvelope),
        (status = 501, description = "the session's worker does not support groups", body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn list(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let request = ListGroupsRequest { session_id: ids.session()? };
    call.require_api_key()?;
    let r = call
        .unary("MessageService.ListGroups", state.control_plane.messages().list_groups(call.request(request)))
        .await?;
    Ok(Reply::ok(&GroupListDto { groups: r.groups.into_iter().map(GroupDto::from).collect() }))
}

#[utoipa::path(post, path = "/sessions/{sessionId}/groups", tag = "groups", summary = "Create a group (the account is its admin)",
    security(("apiKey" = []), ("bearer" = [])),
    params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64)),
    request_body = CreateGroupBody,
    responses((status = 201, body = Envelope<GroupDto>),
        (status = 409, description = "the session is not connected", body = crate::openapi::ErrorEnvelope),
        (status = 501, description = "the session's worker does not support groups", body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    ids: PathIds,
    Json(body): Json<CreateGroupBody>,
) -> Answer {
    let request = CreateGroupRequest {
        session_id: ids.session()?,
        subject: body.subject,
        participants: body.participants,
    };
    call.require_api_key()?;
    let g = call
        .unary(
            "MessageService.CreateGroup",
            state.control_plane.messages().create_group(call.request(request)),
        )
        .await?;
    Ok(Reply::created(&GroupDto::from(g)))
}

#[utoipa::path(get, path = "/sessions/{sessionId}/groups/{groupId}", tag = "groups", summary = "One group of the session's account",
    security(("apiKey" = []), ("bearer" = [])),
    params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64),
        ("groupId" = String, Path, description = "…@g.us, or its digits", pattern = "^[0-9-]{5,64}(@g\\.us)?$", max_length = 70)),
    responses((status = 200, body = Envelope<GroupDto>),
        (status = 404, description = "the account is not in that group (NOT_FOUND)", body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn get(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let request = GroupRequest { session_id: ids.session()?, group_id: ids.group()? };
    call.require_api_key()?;
    let g = call
        .unary("MessageService.GetGroup", state.control_plane.messages().get_group(call.request(request)))
        .await?;
    Ok(Reply::ok(&GroupDto::from(g)))
}

#[utoipa::path(post, path = "/sessions/{sessionId}/groups/{groupId}/participants", tag = "groups",
    summary = "Add and remove participants (the account must be an admin)",
    security(("apiKey" = []), ("bearer" = [])),
    params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64),
        ("groupId" = String, Path, description = "…@g.us, or its digits", pattern = "^[0-9-]{5,64}(@g\\.us)?$", max_length = 70)),
    request_body = ParticipantsBody,
    responses((status = 200, description = "the group as it is now", body = Envelope<GroupDto>),
        (status = 404, description = "the account is not in that group (NOT_FOUND)", body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn participants(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    ids: PathIds,
    Json(body): Json<ParticipantsBody>,
) -> Answer {
    let request = UpdateGroupParticipantsRequest {
        session_id: ids.session()?,
        group_id: ids.group()?,
        add: body.add,
        remove: body.remove,
    };
    call.require_api_key()?;
    let g = call
        .unary(
            "MessageService.UpdateGroupParticipants",
            state.control_plane.messages().update_group_participants(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&GroupDto::from(g)))
}

#[utoipa::path(post, path = "/sessions/{sessionId}/groups/{groupId}/leave", tag = "groups", summary = "Leave a group",
    security(("apiKey" = []), ("bearer" = [])),
    params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64),
        ("groupId" = String, Path, description = "…@g.us, or its digits", pattern = "^[0-9-]{5,64}(@g\\.us)?$", max_length = 70)),
    responses((status = 200, body = Envelope<LeftDto>),
        (status = 404, description = "the account is not in that group (NOT_FOUND)", body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn leave(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let request = GroupRequest { session_id: ids.session()?, group_id: ids.group()? };
    call.require_api_key()?;
    let r = call
        .unary("MessageService.LeaveGroup", state.control_plane.messages().leave_group(call.request(request)))
        .await?;
    Ok(Reply::ok(&LeftDto { group_id: r.group_id }))
}
