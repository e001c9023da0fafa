//! `POST /auth/register` and `POST /auth/login`.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::error::ApiError;
use wagate_proto::v1::{AuthResponse, LoginRequest, RegisterRequest};

use super::{Answer, AppState, CallContext, Reply, incomplete_reply};
use crate::json::{Json, Validate, require, require_present};
use crate::model::{Ts, UserDto};
use crate::openapi::Envelope;

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(register)).routes(routes!(login))
}

/// `POST auth/register`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"email": "ann@example.com", "password": "correct-horse-9", "name": "Ann"}))]
pub struct RegisterBody {
    #[schema(
        min_length = 1,
        max_length = 254,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
    )]
    pub email: String,
    /// 8-128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    #[serde(default)]
    #[schema(max_length = 100)]
    pub name: Option<String>,
}

impl Validate for RegisterBody {
    fn validate(&self) -> Result<(), ApiError> {
        require("email", &self.email)?;
        require_present("password", &self.password)
    }
}

/// `POST auth/login`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"email": "ann@example.com", "password": "correct-horse-9"}))]
pub struct LoginBody {
    #[schema(min_length = 1)]
    pub email: String,
    #[schema(min_length = 1)]
    pub password: String,
}

impl Validate for LoginBody {
    fn validate(&self) -> Result<(), ApiError> {
        require("email", &self.email)?;
        require_present("password", &self.password)
    }
}

/// Answer of register and login.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthDto<'a> {
    pub user: UserDto<'a>,
    pub token: &'a str,
    pub expires_at: Option<Ts>,
}

impl<'a> AuthDto<'a> {
    pub fn from_proto(r: &'a AuthResponse) -> Option<Self> {
        Some(AuthDto {
            user: r.user.as_ref()?.into(),
            token: &r.token,
            expires_at: Ts::from_proto(r.expires_at.as_ref()),
        })
    }
}

#[utoipa::path(post, path = "/auth/register", tag = "auth", summary = "Create an account (USER, BASIC)",
    request_body = RegisterBody,
    responses((status = 201, body = Envelope<AuthDto>), (status = 409, body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn register(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    Json(body): Json<RegisterBody>,
) -> Answer {
    let request =
        RegisterRequest { email: body.email, password: body.password, name: body.name.unwrap_or_default() };
    let reply = call
        .unary("AuthService.Register", state.control_plane.auth().register(call.request(request)))
        .await?;
    let dto = AuthDto::from_proto(&reply).ok_or_else(|| incomplete_reply("AuthService.Register"))?;
    Ok(Reply::created(&dto))
}

#[utoipa::path(post, path = "/auth/login", tag = "auth", summary = "Log in, get a JWT",
    request_body = LoginBody,
    responses((status = 200, body = Envelope<AuthDto>),
        (status = 401, body = crate::openapi::ErrorEnvelope, description = "wrong email or password")))]
pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    Json(body): Json<LoginBody>,
) -> Answer {
    let request = LoginRequest { email: body.email, password: body.password };
    let reply =
        call.unary("AuthService.Login", state.control_plane.auth().login(call.request(request))).await?;
    let dto = AuthDto::from_proto(&reply).ok_or_else(|| incomplete_reply("AuthService.Login"))?;
    Ok(Reply::ok(&dto))
}
