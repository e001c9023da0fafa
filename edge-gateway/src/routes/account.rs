//! `GET/PATCH/DELETE /me`: the caller's own account (JWT).

use std::sync::Arc;

use axum::extract::State;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::error::ApiError;
use wagate_proto::v1::{DeleteMeRequest, GetMeRequest, NotificationPrefs, UpdateMeRequest};

use super::{Answer, AppState, CallContext, Reply};
use crate::json::{Json, OptionalJson, Validate, require};
use crate::model::{DeletedUserDto, UserDto};
use crate::openapi::Envelope;

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(get_me, update_me, delete_me))
}

/// `PATCH /me`. `role`, `tier`, `isActive` (any other field) are refused (mass assignment).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "Ann Smith", "notifications": {"quota": false}}))]
pub struct UpdateMeBody {
    #[schema(schema_with = crate::schema::name_or_null)]
    pub name: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 254,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
    )]
    pub email: Option<String>,
    /// New password (10-128 characters, see register); needs `currentPassword`.
    /// Every earlier access and refresh token stops working.
    #[schema(min_length = 10, max_length = 128)]
    pub password: Option<String>,
    /// The current password: needed with `password`, and with `email` unless
    /// the token is younger than the re-authentication window (5 minutes).
    #[schema(max_length = 1024)]
    pub current_password: Option<String>,
    /// Notification switches to change; absent ones stay as they are.
    pub notifications: Option<NotificationsBody>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

/// The notification switches of `PATCH /me`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"sessionStatus": true, "quota": false}))]
pub struct NotificationsBody {
    pub session_status: Option<bool>,
    pub quota: Option<bool>,
    pub webhook_disabled: Option<bool>,
}

/// `DELETE /me` (the body is optional).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"currentPassword": "correct-horse-9"}))]
pub struct DeleteMeBody {
    #[schema(max_length = 1024)]
    pub current_password: Option<String>,
}

impl Validate for DeleteMeBody {
    fn validate(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

const UPDATE_ME_FIELDS: [&str; 5] = ["name", "email", "password", "currentPassword", "notifications"];

impl Validate for UpdateMeBody {
    fn validate(&self) -> Result<(), ApiError> {
        if let Some(key) = self.rest.keys().find(|k| !UPDATE_ME_FIELDS.contains(&k.as_str())) {
            return Err(ApiError::invalid(key.clone(), format!("{key} cannot be changed here")));
        }
        if let Some(n) = &self.name {
            require("name", n)?;
        }
        if let Some(e) = &self.email {
            require("email", e)?;
        }
        if self.password.is_some() && self.current_password.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::invalid(
                "currentPassword",
                "currentPassword is required to change the password",
            ));
        }
        Ok(())
    }
}

#[utoipa::path(get, path = "/me", tag = "account", summary = "The caller's account",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<UserDto>)))]
pub(crate) async fn get_me(State(state): State<Arc<AppState>>, call: CallContext) -> Answer {
    call.require_authorization()?;
    let u = call
        .unary("UserService.GetMe", state.control_plane.users().get_me(call.request(GetMeRequest {})))
        .await?;
    Ok(Reply::ok(&UserDto::from(&u)))
}

#[utoipa::path(patch, path = "/me", tag = "account",
    summary = "Change name, email, password or notification switches (role and tier are refused)",
    security(("bearer" = [])), request_body = UpdateMeBody,
    responses((status = 200, body = Envelope<UserDto>), (status = 409, body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn update_me(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    Json(body): Json<UpdateMeBody>,
) -> Answer {
    call.require_authorization()?;
    let request = UpdateMeRequest {
        name: body.name,
        email: body.email,
        password: body.password,
        current_password: body.current_password,
        notifications: body.notifications.map(|n| NotificationPrefs {
            session_status: n.session_status,
            quota: n.quota,
            webhook_disabled: n.webhook_disabled,
        }),
    };
    let u = call
        .unary("UserService.UpdateMe", state.control_plane.users().update_me(call.request(request)))
        .await?;
    Ok(Reply::ok(&UserDto::from(&u)))
}

#[utoipa::path(delete, path = "/me", tag = "account",
    summary = "Delete the account, its sessions (stopped on the workers), keys and messages",
    security(("bearer" = [])),
    request_body(content = Option<DeleteMeBody>, description = "optional; `currentPassword` is needed unless the token is younger than the re-authentication window"),
    responses((status = 200, body = Envelope<DeletedUserDto>)))]
pub(crate) async fn delete_me(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    OptionalJson(body): OptionalJson<DeleteMeBody>,
) -> Answer {
    call.require_authorization()?;
    let request = DeleteMeRequest { current_password: body.and_then(|b| b.current_password) };
    let r = call
        .unary("UserService.DeleteMe", state.control_plane.users().delete_me(call.request(request)))
        .await?;
    Ok(Reply::ok(&DeletedUserDto::from(r)))
}
