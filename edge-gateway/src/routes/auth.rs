//! `POST /auth/register`, `/auth/login`, `/auth/refresh`, `/auth/logout`,
//! `/auth/logout-all`, the password reset (`/auth/password-reset`,
//! `/auth/password-reset/confirm`) and email verification
//! (`GET|POST /auth/verify-email`, `POST /auth/verify-email/resend`).

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::error::ApiError;
use wagate_proto::v1::{
    AuthResponse, LoginRequest, LogoutAllRequest, LogoutRequest, LogoutResponse, PasswordResetConfirmRequest,
    PasswordResetRequest, RefreshRequest, RegisterRequest, ResendVerificationRequest, VerifyEmailRequest,
};

use super::{Answer, AppState, CallContext, Reply, incomplete_reply};
use crate::json::{Json, OptionalJson, Validate, require, require_present};
use crate::model::{Ts, UserDto};
use crate::openapi::Envelope;
use crate::params::Query;

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
        .routes(routes!(password_reset))
        .routes(routes!(password_reset_confirm))
        .routes(routes!(verify_email_link, verify_email))
        .routes(routes!(resend_verification))
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
    /// 10-128 characters (NIST SP 800-63B): not one of the common/breached
    /// passwords shipped with the server, not a repeated or sequential
    /// pattern, not containing the email or name. A refusal names the rule.
    #[schema(min_length = 10, max_length = 128)]
    pub password: String,
    /// Display name (blank or absent: the email's local part).
    #[serde(default)]
    #[schema(schema_with = crate::schema::register_name)]
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
    #[schema(schema_with = crate::schema::login_email)]
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
    /// Access token (JWT, 15 minutes by default).
    pub token: &'a str,
    pub expires_at: Option<Ts>,
    /// One-time refresh token (`wrt_…`): trade it at `POST /auth/refresh`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_expires_at: Option<Ts>,
}

impl<'a> AuthDto<'a> {
    pub fn from_proto(r: &'a AuthResponse) -> Option<Self> {
        Some(AuthDto {
            user: r.user.as_ref()?.into(),
            token: &r.token,
            expires_at: Ts::from_proto(r.expires_at.as_ref()),
            refresh_token: Some(r.refresh_token.as_str()).filter(|t| !t.is_empty()),
            refresh_expires_at: Ts::from_proto(r.refresh_expires_at.as_ref()),
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

/// `POST auth/refresh`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"refreshToken": "wrt_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}))]
pub struct RefreshBody {
    #[schema(schema_with = crate::schema::refresh_token)]
    pub refresh_token: String,
}

impl Validate for RefreshBody {
    fn validate(&self) -> Result<(), ApiError> {
        require("refreshToken", &self.refresh_token)
    }
}

/// `POST auth/logout` (the body is optional).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"refreshToken": "wrt_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}))]
pub struct LogoutBody {
    /// Also revoke this refresh token (and every token rotated from it);
    /// any text is accepted (an unknown token revokes nothing).
    pub refresh_token: Option<String>,
}

impl Validate for LogoutBody {
    fn validate(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogoutDto {
    pub revoked: bool,
}

impl From<LogoutResponse> for LogoutDto {
    fn from(r: LogoutResponse) -> Self {
        Self { revoked: r.revoked }
    }
}

#[utoipa::path(post, path = "/auth/refresh", tag = "auth",
    summary = "Trade a refresh token for a new access token and refresh token (one-time use; reuse revokes the family)",
    request_body = RefreshBody,
    responses((status = 200, body = Envelope<AuthDto>),
        (status = 401, body = crate::openapi::ErrorEnvelope, description = "unknown, expired, revoked or reused refresh token")))]
pub(crate) async fn refresh(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    Json(body): Json<RefreshBody>,
) -> Answer {
    let request = RefreshRequest { refresh_token: body.refresh_token };
    let reply =
        call.unary("AuthService.Refresh", state.control_plane.auth().refresh(call.request(request))).await?;
    let dto = AuthDto::from_proto(&reply).ok_or_else(|| incomplete_reply("AuthService.Refresh"))?;
    Ok(Reply::ok(&dto))
}

#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    summary = "Revoke the presented access token (and the given refresh token's family)",
    security(("bearer" = [])),
    request_body(content = Option<LogoutBody>, description = "optional"),
    responses((status = 200, body = Envelope<LogoutDto>)))]
pub(crate) async fn logout(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    OptionalJson(body): OptionalJson<LogoutBody>,
) -> Answer {
    call.require_authorization()?;
    let request = LogoutRequest { refresh_token: body.unwrap_or_default().refresh_token.unwrap_or_default() };
    let r =
        call.unary("AuthService.Logout", state.control_plane.auth().logout(call.request(request))).await?;
    Ok(Reply::ok(&LogoutDto::from(r)))
}

#[utoipa::path(post, path = "/auth/logout-all", tag = "auth",
    summary = "Invalidate every access and refresh token of the account at once",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<LogoutDto>)))]
pub(crate) async fn logout_all(State(state): State<Arc<AppState>>, call: CallContext) -> Answer {
    call.require_authorization()?;
    let r = call
        .unary(
            "AuthService.LogoutAll",
            state.control_plane.auth().logout_all(call.request(LogoutAllRequest {})),
        )
        .await?;
    Ok(Reply::ok(&LogoutDto::from(r)))
}

/// `POST auth/password-reset`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"email": "ann@example.com"}))]
pub struct PasswordResetBody {
    #[schema(min_length = 1, max_length = 254)]
    pub email: String,
}

impl Validate for PasswordResetBody {
    fn validate(&self) -> Result<(), ApiError> {
        require("email", &self.email)?;
        if self.email.trim().chars().count() > 254 {
            return Err(ApiError::invalid("email", "email is at most 254 characters"));
        }
        Ok(())
    }
}

/// `POST auth/password-reset/confirm`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"token": "wpr_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "password": "a-new-horse-42"}))]
pub struct PasswordResetConfirmBody {
    /// The token of the mail (single use, 30 minutes).
    #[schema(min_length = 1, max_length = 128)]
    pub token: String,
    /// The new password (10-128 characters, the rules of register).
    #[schema(min_length = 10, max_length = 128)]
    pub password: String,
}

impl Validate for PasswordResetConfirmBody {
    fn validate(&self) -> Result<(), ApiError> {
        require("token", &self.token)?;
        require_present("password", &self.password)
    }
}

/// `POST auth/verify-email`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
#[schema(example = json!({"token": "wev_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}))]
pub struct VerifyEmailBody {
    /// The token of the mailed link.
    #[schema(min_length = 1, max_length = 128)]
    #[param(min_length = 1, max_length = 128)]
    pub token: String,
}

impl Validate for VerifyEmailBody {
    fn validate(&self) -> Result<(), ApiError> {
        require("token", &self.token)
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedDto {
    /// True when a mail was (or, for a reset, may have been) queued.
    pub accepted: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordResetDto {
    pub reset: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedDto {
    pub verified: bool,
    pub email: String,
}

#[utoipa::path(post, path = "/auth/password-reset", tag = "auth",
    summary = "Mail a password reset token (always 202: the answer never tells whether the address has an account)",
    request_body = PasswordResetBody,
    responses((status = 202, body = Envelope<AcceptedDto>),
        (status = 429, body = crate::openapi::ErrorEnvelope, description = "too many requests for this address or from this client")))]
pub(crate) async fn password_reset(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    Json(body): Json<PasswordResetBody>,
) -> Answer {
    let request = PasswordResetRequest { email: body.email };
    let r = call
        .unary(
            "AuthService.RequestPasswordReset",
            state.control_plane.auth().request_password_reset(call.request(request)),
        )
        .await?;
    Ok(Reply::success(axum::http::StatusCode::ACCEPTED, &AcceptedDto { accepted: r.accepted }))
}

#[utoipa::path(post, path = "/auth/password-reset/confirm", tag = "auth",
    summary = "Set a new password with a reset token; every access and refresh token of the account is revoked",
    request_body = PasswordResetConfirmBody,
    responses((status = 200, body = Envelope<PasswordResetDto>),
        (status = 401, body = crate::openapi::ErrorEnvelope, description = "unknown, expired or used token (INVALID_TOKEN)")))]
pub(crate) async fn password_reset_confirm(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    Json(body): Json<PasswordResetConfirmBody>,
) -> Answer {
    let request = PasswordResetConfirmRequest { token: body.token, password: body.password };
    let r = call
        .unary(
            "AuthService.ConfirmPasswordReset",
            state.control_plane.auth().confirm_password_reset(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&PasswordResetDto { reset: r.reset }))
}

async fn verify(state: &AppState, call: &CallContext, token: String) -> Answer {
    let r = call
        .unary(
            "AuthService.VerifyEmail",
            state.control_plane.auth().verify_email(call.request(VerifyEmailRequest { token })),
        )
        .await?;
    Ok(Reply::ok(&VerifiedDto { verified: r.verified, email: r.email }))
}

#[utoipa::path(get, path = "/auth/verify-email", tag = "auth",
    summary = "Verify the account's email (the link of the mail)",
    params(VerifyEmailBody),
    responses((status = 200, body = Envelope<VerifiedDto>),
        (status = 401, body = crate::openapi::ErrorEnvelope, description = "unknown, expired or used token (INVALID_TOKEN)")))]
pub(crate) async fn verify_email_link(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    Query(q): Query<VerifyEmailBody>,
) -> Answer {
    q.validate()?;
    verify(&state, &call, q.token).await
}

#[utoipa::path(post, path = "/auth/verify-email", tag = "auth",
    summary = "Verify the account's email with the token of the mailed link",
    request_body = VerifyEmailBody,
    responses((status = 200, body = Envelope<VerifiedDto>),
        (status = 401, body = crate::openapi::ErrorEnvelope, description = "unknown, expired or used token (INVALID_TOKEN)")))]
pub(crate) async fn verify_email(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    Json(body): Json<VerifyEmailBody>,
) -> Answer {
    verify(&state, &call, body.token).await
}

#[utoipa::path(post, path = "/auth/verify-email/resend", tag = "auth",
    summary = "Mail a new verification link to the caller (accepted false: already verified)",
    security(("bearer" = [])),
    responses((status = 202, body = Envelope<AcceptedDto>)))]
pub(crate) async fn resend_verification(State(state): State<Arc<AppState>>, call: CallContext) -> Answer {
    call.require_authorization()?;
    let r = call
        .unary(
            "AuthService.ResendVerification",
            state.control_plane.auth().resend_verification(call.request(ResendVerificationRequest {})),
        )
        .await?;
    Ok(Reply::success(axum::http::StatusCode::ACCEPTED, &AcceptedDto { accepted: r.accepted }))
}
