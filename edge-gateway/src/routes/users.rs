//! `/admin/users`: list, get, change, delete users (ADMINISTRATOR, checked
//! by the control plane; the edge only checks a credential is present).

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::error::ApiError;
use wagate_proto::v1::{self, GetUserRequest, ListUsersRequest};

use super::{Answer, AppState, CallContext, Reply};
use crate::json::{Json, Validate};
use crate::model::{DeletedUserDto, PaginationDto, UserDto};
use crate::openapi::Envelope;
use crate::params::{PathIds, Query, positive, text};

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(get, update, delete))
}

/// `?page=&limit=&search=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListParams {
    /// 1-based page (default 1).
    #[serde(default, deserialize_with = "positive")]
    #[param(minimum = 1, maximum = 2147483647)]
    pub page: Option<u32>,
    /// Page size (default 20; values above 100 are capped at 100).
    #[serde(default, deserialize_with = "positive")]
    #[param(minimum = 1, maximum = 2147483647)]
    pub limit: Option<u32>,
    /// Case-insensitive substring of name or email.
    #[serde(default, deserialize_with = "text::<_, 100>")]
    #[param(max_length = 100)]
    pub search: Option<String>,
}

/// `PATCH /admin/users/{id}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"tier": "PRO"}))]
pub struct UpdateUserBody {
    /// BASIC, PRO or MAX (any case).
    #[schema(schema_with = crate::schema::tier)]
    pub tier: Option<String>,
    /// USER or ADMINISTRATOR (any case).
    #[schema(schema_with = crate::schema::role)]
    pub role: Option<String>,
    pub is_active: Option<bool>,
    #[schema(schema_with = crate::schema::name_or_null)]
    pub name: Option<String>,
    /// The user's own message quota per hour (0 suspends sending); `null`
    /// goes back to the tier's quota.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 100000000)]
    pub message_quota: Option<Option<f64>>,
}

/// A field that may be absent (`None`) or `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl Validate for UpdateUserBody {}

impl UpdateUserBody {
    pub fn into_request(self, user_id: &str) -> Result<v1::UpdateUserRequest, ApiError> {
        let tier = match self.tier.as_deref().map(str::trim) {
            None => None,
            Some(t) if t.eq_ignore_ascii_case("basic") => Some(v1::UserTier::Basic as i32),
            Some(t) if t.eq_ignore_ascii_case("pro") => Some(v1::UserTier::Pro as i32),
            Some(t) if t.eq_ignore_ascii_case("max") => Some(v1::UserTier::Max as i32),
            Some(_) => return Err(ApiError::invalid("tier", "tier must be one of BASIC, PRO, MAX")),
        };
        let role = match self.role.as_deref().map(str::trim) {
            None => None,
            Some(r) if r.eq_ignore_ascii_case("user") => Some(v1::UserRole::User as i32),
            Some(r) if r.eq_ignore_ascii_case("administrator") => Some(v1::UserRole::Administrator as i32),
            Some(_) => return Err(ApiError::invalid("role", "role must be USER or ADMINISTRATOR")),
        };
        let message_quota = match self.message_quota {
            None => None,
            Some(None) => Some(-1),
            // A JSON integer may be written 5.0 (JSON Schema's integer is a value, not a spelling).
            Some(Some(n)) if n.fract() == 0.0 && (0.0..=100_000_000.0).contains(&n) => Some(n as i64),
            Some(Some(_)) => {
                return Err(ApiError::invalid("messageQuota", "messageQuota must be 0..100000000 or null"));
            }
        };
        Ok(v1::UpdateUserRequest {
            user_id: user_id.to_owned(),
            tier,
            role,
            is_active: self.is_active,
            name: self.name,
            message_quota,
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserListDto<'a> {
    pub users: Vec<UserDto<'a>>,
    pub pagination: PaginationDto,
}

fn user_id(ids: &PathIds) -> Result<String, ApiError> {
    ids.id("userId", "user")
}

#[utoipa::path(get, path = "/admin/users", tag = "admin", summary = "Users (search name/email)",
    security(("bearer" = [])), params(UserListParams),
    responses((status = 200, body = Envelope<UserListDto>)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    Query(q): Query<UserListParams>,
) -> Answer {
    call.require_authorization()?;
    let request = ListUsersRequest {
        page: q.page.unwrap_or(0),
        limit: q.limit.unwrap_or(0),
        search: q.search.unwrap_or_default(),
    };
    let r = call
        .unary("AdminService.ListUsers", state.control_plane.admin().list_users(call.request(request)))
        .await?;
    Ok(Reply::ok(&UserListDto {
        users: r.users.iter().map(UserDto::from).collect(),
        pagination: PaginationDto::from_proto(r.pagination.as_ref()),
    }))
}

#[utoipa::path(get, path = "/admin/users/{userId}", tag = "admin", summary = "One user",
    security(("bearer" = [])), params(("userId" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$", max_length = 64)),
    responses((status = 200, body = Envelope<UserDto>)))]
pub(crate) async fn get(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let request = GetUserRequest { user_id: user_id(&ids)? };
    call.require_authorization()?;
    let u = call
        .unary("AdminService.GetUser", state.control_plane.admin().get_user(call.request(request)))
        .await?;
    Ok(Reply::ok(&UserDto::from(&u)))
}

#[utoipa::path(patch, path = "/admin/users/{userId}", tag = "admin",
    summary = "Change tier, role, isActive (deactivation stops tokens and keys at once)",
    security(("bearer" = [])), params(("userId" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$", max_length = 64)),
    request_body = UpdateUserBody,
    responses((status = 200, body = Envelope<UserDto>)))]
pub(crate) async fn update(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    ids: PathIds,
    Json(body): Json<UpdateUserBody>,
) -> Answer {
    let request = body.into_request(&user_id(&ids)?)?;
    call.require_authorization()?;
    let u = call
        .unary("AdminService.UpdateUser", state.control_plane.admin().update_user(call.request(request)))
        .await?;
    Ok(Reply::ok(&UserDto::from(&u)))
}

#[utoipa::path(delete, path = "/admin/users/{userId}", tag = "admin", summary = "Delete a user and all they own",
    security(("bearer" = [])), params(("userId" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$", max_length = 64)),
    responses((status = 200, body = Envelope<DeletedUserDto>)))]
pub(crate) async fn delete(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let request = GetUserRequest { user_id: user_id(&ids)? };
    call.require_authorization()?;
    let r = call
        .unary("AdminService.DeleteUser", state.control_plane.admin().delete_user(call.request(request)))
        .await?;
    Ok(Reply::ok(&DeletedUserDto {
        user_id: r.user_id,
        deleted: r.deleted,
        sessions_deleted: r.sessions_deleted,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    fn quota(body: &str) -> Result<Option<i64>, ApiError> {
        parse::<UpdateUserBody>(body.as_bytes())?.into_request("u1").map(|r| r.message_quota)
    }

    /// JSON Schema's `integer` is a value: `5.0` is one, and is accepted like `5`.
    #[test]
    fn message_quota_is_a_whole_number_in_any_spelling() {
        assert_eq!(quota(r#"{"messageQuota":5}"#).unwrap(), Some(5));
        assert_eq!(quota(r#"{"messageQuota":5.0}"#).unwrap(), Some(5));
        assert_eq!(quota(r#"{"messageQuota":1e3}"#).unwrap(), Some(1000));
        assert_eq!(quota(r#"{"messageQuota":null}"#).unwrap(), Some(-1));
        assert_eq!(quota("{}").unwrap(), None);
        for bad in [r#"{"messageQuota":5.5}"#, r#"{"messageQuota":-1}"#, r#"{"messageQuota":100000001}"#] {
            assert_eq!(quota(bad).unwrap_err().field.as_deref(), Some("messageQuota"), "{bad}");
        }
    }
}
