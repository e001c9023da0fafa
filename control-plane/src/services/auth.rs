//! AuthService: register and login.

use chrono::Utc;
use tonic::{Request, Response, Status};
use wagate_proto::error::ErrorCode;
use wagate_proto::time::to_proto;
use wagate_proto::v1::{self, auth_service_server::AuthService};

use crate::audit::{self, AuditEntry};
use crate::auth::identity::Authenticated;
use crate::auth::jwt::Subject;
use crate::auth::{password_policy, passwords, refresh};
use crate::convert;
use crate::email;
use crate::error::{CpError, CpResult, api, is_unique_violation};
use crate::limits::{Check, LimitSettings, Rate};
use crate::persistence::account_tokens::{self, Purpose};
use crate::persistence::enums::{LogLevel, UserRole, UserTier};
use crate::persistence::users::{self, User, UserPatch};
use crate::state::SharedState;
use crate::validation;

const RULE_LOGIN_IP: &str = "login_ip";
/// Per account and client IP (the key names both: [`login_account_key`]).
const RULE_LOGIN_ACCOUNT: &str = "login_account_ip";
const RULE_REGISTER_IP: &str = "register_ip";
const RULE_RESET_IP: &str = "password_reset_ip";
const RULE_RESET_EMAIL: &str = "password_reset_email";
const RULE_VERIFY_RESEND: &str = "verify_resend_user";
/// Reset requests per client IP, and per address (whether or not it has an
/// account: the limit says nothing about which addresses exist).
const RESET_IP_RATE: Rate = Rate::new(20, std::time::Duration::from_secs(3600)).sliding();
const RESET_EMAIL_RATE: Rate = Rate::new(3, std::time::Duration::from_secs(3600)).sliding();
const VERIFY_RESEND_RATE: Rate = Rate::new(3, std::time::Duration::from_secs(3600)).sliding();

/// The login rules, each over a sliding window.
struct LoginRates {
    account: Option<Rate>,
    ip: Option<Rate>,
}

impl LoginRates {
    fn of(limits: &LimitSettings) -> Self {
        Self { account: limits.login_account.map(Rate::sliding), ip: limits.login_ip.map(Rate::sliding) }
    }
}

/// The subject of the per-account rule: the client IP and the email (an
/// address has no spaces; an email checked here has none either, or it
/// matches no account).
fn login_account_key(email: &str, peer: &str) -> String {
    format!("{peer} {email}")
}

pub struct AuthApi {
    state: SharedState,
    /// One password check at a time per account (see [`passwords::Turns`]).
    turns: passwords::Turns,
}

impl AuthApi {
    pub fn new(state: SharedState) -> Self {
        Self { state, turns: passwords::Turns::default() }
    }

    /// An access token and a refresh token (a new family unless `family`),
    /// the access token naming the family.
    async fn respond(&self, u: &User, family: Option<&str>) -> CpResult<v1::AuthResponse> {
        let family = family.map_or_else(refresh::new_family, str::to_owned);
        let subject = Subject {
            user_id: &u.id,
            email: &u.email,
            role: role_str(u.role),
            tier: u.tier.as_str(),
            token_version: u.token_version,
            family: &family,
        };
        let (token, exp) =
            self.state.auth.jwt().issue(&subject).map_err(|e| api(ErrorCode::Internal, e.to_string()))?;
        let refresh = refresh::issue(&self.state.db, &u.id, &family, self.state.config.refresh_ttl).await?;
        Ok(v1::AuthResponse {
            user: Some(convert::user(u)),
            token,
            expires_at: Some(to_proto(exp)),
            refresh_token: refresh.token,
            refresh_expires_at: Some(to_proto(refresh.expires_at)),
        })
    }

    async fn refresh(&self, req: v1::RefreshRequest) -> CpResult<v1::AuthResponse> {
        self.state.ensure_running()?;
        if req.refresh_token.trim().is_empty() {
            return Err(crate::error::invalid("refreshToken", "refreshToken is required"));
        }
        let refused = || api(ErrorCode::InvalidToken, "invalid or expired refresh token");
        match refresh::redeem(&self.state.db, req.refresh_token.trim()).await? {
            refresh::Redeemed::Rotated { user_id, family_id } => {
                let u = users::by_id(&self.state.db, &user_id).await?.ok_or_else(refused)?;
                if !u.is_active {
                    return Err(refused());
                }
                self.respond(&u, Some(&family_id)).await
            }
            refresh::Redeemed::Reused { user_id, family_id } => {
                // The family is revoked in the database; its access tokens
                // (the thief's and the owner's) are refused from now on too.
                // Best effort: the answer is 401 whatever happens here.
                if let Err(err) = self.state.auth.deny_family(&family_id).await {
                    tracing::warn!(user_id, error = %err, "reused refresh family not put on the shared deny-list: refused on this replica only");
                }
                tracing::warn!(user_id, "refresh token reuse: family revoked");
                audit::record(
                    &self.state.db,
                    "auth",
                    AuditEntry::new("refresh token reuse detected: token family revoked")
                        .level(LogLevel::Warn)
                        .user(&user_id),
                );
                Err(refused())
            }
        }
    }

    async fn logout(&self, who: Authenticated, req: v1::LogoutRequest) -> CpResult<v1::LogoutResponse> {
        self.state.auth.deny(&who.claims).await?;
        if !req.refresh_token.trim().is_empty()
            && let Some(family) =
                refresh::revoke_token_family(&self.state.db, &who.user.id, req.refresh_token.trim()).await?
        {
            // The sign-in is over: its other access tokens too. A failure is
            // a 503 the client retries (revoking again changes nothing).
            self.state.auth.deny_family(&family).await?;
        }
        audit::record(&self.state.db, "auth", AuditEntry::new("signed out").user(&who.user.id));
        Ok(v1::LogoutResponse { revoked: true })
    }

    async fn logout_all(&self, who: Authenticated) -> CpResult<v1::LogoutResponse> {
        self.state.ensure_running()?;
        bump_token_version(&self.state, &who.user.id).await?;
        refresh::revoke_all(&self.state.db, &who.user.id).await?;
        audit::record(&self.state.db, "auth", AuditEntry::new("signed out everywhere").user(&who.user.id));
        Ok(v1::LogoutResponse { revoked: true })
    }

    async fn register(&self, req: v1::RegisterRequest, peer: String) -> CpResult<v1::AuthResponse> {
        self.state.ensure_running()?;
        let email = validation::email(&req.email)?;
        let name = if req.name.trim().is_empty() {
            email.split('@').next().unwrap_or("user").to_owned()
        } else {
            validation::name("name", &req.name)?
        };
        password_policy::check(&req.password, &email, &name)?;
        // Sign-ups per client address: fresh accounts are not free for the taking.
        if let Some(rate) = self.state.config.limits.register_ip.map(Rate::sliding) {
            let d = self.state.limiter.check(RULE_REGISTER_IP, &peer, rate, 1).await;
            if !d.allowed {
                return Err(d
                    .refusal(format!("Too many sign-ups from this address ({})", rate.describe()))
                    .into());
            }
        }
        let created = create_user(&self.state, name, email, req.password, UserRole::User).await?;
        audit::record(&self.state.db, "auth", AuditEntry::new("user registered").user(&created.id));
        // The account exists: a mail that cannot be queued now is asked for
        // again with POST /auth/verify-email/resend.
        if let Err(e) = email::account::send_verification(&self.state, &created).await {
            tracing::warn!(user_id = created.id, error = %e, "verification mail not enqueued");
        }
        self.respond(&created, None).await
    }

    async fn login(&self, req: v1::LoginRequest, peer: String) -> CpResult<v1::AuthResponse> {
        self.state.ensure_running()?;
        let email = req.email.trim().to_lowercase();
        if email.is_empty() {
            return Err(crate::error::invalid("email", "email is required"));
        }
        if req.password.is_empty() {
            return Err(crate::error::invalid("password", "password is required"));
        }
        // Attempts are counted before the password is checked (so a burst
        // of guesses cannot get past the limit, nor burn argon2 CPU beyond
        // it); a successful login gives its units back, so only failures
        // add up. Per account *and* client IP (a guesser elsewhere cannot
        // lock the owner out), and per client IP (one address cannot spray
        // guesses across accounts), both over a sliding window (no 2× burst
        // at a window boundary), in one all-or-nothing step.
        let limits = &self.state.config.limits;
        let limiter = &self.state.limiter;
        let account_key = login_account_key(&email, &peer);
        let rates = LoginRates::of(limits);
        let mut checks = Vec::with_capacity(2);
        if let Some(rate) = rates.ip {
            checks.push(Check { rule: RULE_LOGIN_IP, subject: &peer, rate, cost: 1 });
        }
        if let Some(rate) = rates.account {
            checks.push(Check { rule: RULE_LOGIN_ACCOUNT, subject: &account_key, rate, cost: 1 });
        }
        if let Err((i, d)) = limiter.check_all(&checks).await {
            let per_account = checks[i].rule == RULE_LOGIN_ACCOUNT;
            let message = if per_account {
                format!(
                    "Too many login attempts for this account from this address ({}), retry in {} s",
                    checks[i].rate.describe(),
                    d.retry_after_secs()
                )
            } else {
                format!(
                    "Too many login attempts from this address ({}), retry in {} s",
                    checks[i].rate.describe(),
                    d.retry_after_secs()
                )
            };
            tracing::warn!(
                peer,
                per_account,
                retry_after = d.retry_after_secs(),
                "login refused: too many attempts"
            );
            if per_account {
                audit::record(
                    &self.state.db,
                    "auth",
                    AuditEntry::new("login refused: too many attempts for this account from this address")
                        .level(LogLevel::Warn)
                        .details(serde_json::json!({ "email": email, "peer": peer })),
                );
            }
            return Err(d.refusal(message).into());
        }
        let found = if email.len() <= 254 && req.password.len() <= 1024 {
            users::by_email(&self.state.db, &email).await?
        } else {
            None
        };
        let stored = match &found {
            Some(u) => u.password_hash.clone(),
            None => passwords::dummy_hash().await,
        };
        let ok = {
            // Guesses on one account wait for each other, not for other users.
            let _turn = self.turns.take(&email).await;
            passwords::verify(req.password, stored).await?
        };
        let user = match found {
            Some(u) if ok && u.is_active => u,
            Some(u) if ok => {
                audit::record(
                    &self.state.db,
                    "auth",
                    AuditEntry::new("login refused: account deactivated").level(LogLevel::Warn).user(&u.id),
                );
                return Err(api(ErrorCode::InvalidCredentials, "invalid email or password"));
            }
            other => {
                let mut entry = AuditEntry::new("login failed")
                    .level(LogLevel::Warn)
                    .details(serde_json::json!({ "email": email, "peer": peer }));
                if let Some(u) = other {
                    entry = entry.user(&u.id);
                }
                audit::record(&self.state.db, "auth", entry);
                return Err(api(ErrorCode::InvalidCredentials, "invalid email or password"));
            }
        };
        if let Some(rate) = rates.account {
            limiter.refund(RULE_LOGIN_ACCOUNT, &account_key, rate, 1).await;
        }
        if let Some(rate) = rates.ip {
            limiter.refund(RULE_LOGIN_IP, &peer, rate, 1).await;
        }
        let now = Utc::now();
        let user = users::update(
            &self.state.db,
            &user,
            UserPatch { last_login_at: Some(Some(now)), ..UserPatch::default() },
        )
        .await?;
        audit::record(
            &self.state.db,
            "auth",
            AuditEntry::new("login succeeded").user(&user.id).details(serde_json::json!({ "peer": peer })),
        );
        self.respond(&user, None).await
    }
}

impl AuthApi {
    /// Always accepted (no account enumeration): the mail, if the address
    /// has an active account, is issued by a task of its own, so the answer
    /// takes the same time either way.
    async fn request_password_reset(
        &self,
        req: v1::PasswordResetRequest,
        peer: String,
    ) -> CpResult<v1::AcceptedResponse> {
        self.state.ensure_running()?;
        let email = req.email.trim().to_lowercase();
        if email.is_empty() {
            return Err(crate::error::invalid("email", "email is required"));
        }
        if email.len() > 254 {
            return Err(crate::error::invalid("email", "email is at most 254 characters"));
        }
        let checks = [
            Check { rule: RULE_RESET_IP, subject: &peer, rate: RESET_IP_RATE, cost: 1 },
            Check { rule: RULE_RESET_EMAIL, subject: &email, rate: RESET_EMAIL_RATE, cost: 1 },
        ];
        if let Err((i, d)) = self.state.limiter.check_all(&checks).await {
            return Err(d
                .refusal(format!(
                    "Too many password reset requests ({}), retry in {} s",
                    checks[i].rate.describe(),
                    d.retry_after_secs()
                ))
                .into());
        }
        let state = self.state.clone();
        self.state.tasks.spawn(async move {
            let run = async {
                let Some(user) = users::by_email(&state.db, &email).await? else { return Ok(false) };
                if !user.is_active {
                    return Ok(false);
                }
                email::account::send_password_reset(&state, &user).await?;
                audit::record(
                    &state.db,
                    "auth",
                    AuditEntry::new("password reset requested")
                        .user(&user.id)
                        .details(serde_json::json!({ "peer": peer })),
                );
                Ok::<_, CpError>(true)
            };
            if let Err(e) = run.await {
                tracing::warn!(error = %e, "password reset mail not enqueued");
            }
        });
        Ok(v1::AcceptedResponse { accepted: true })
    }

    /// Sets the password with a reset token (the password policy applies),
    /// then revokes every access and refresh token of the account and every
    /// other reset token. API keys belong to sessions, not sign-ins: they stay.
    async fn confirm_password_reset(
        &self,
        req: v1::PasswordResetConfirmRequest,
    ) -> CpResult<v1::PasswordResetConfirmResponse> {
        self.state.ensure_running()?;
        let token = req.token.trim();
        if token.is_empty() {
            return Err(crate::error::invalid("token", "token is required"));
        }
        if req.password.is_empty() {
            return Err(crate::error::invalid("password", "password is required"));
        }
        let refused = || api(ErrorCode::InvalidToken, "invalid, expired or already used reset token");
        if token.len() > 128 {
            return Err(refused());
        }
        let db = &self.state.db;
        let hash = email::account::hash(token);
        let now = Utc::now();
        let live = account_tokens::live(db, &hash, Purpose::PasswordReset, now).await?.ok_or_else(refused)?;
        let user = users::by_id(db, &live.user_id).await?.filter(|u| u.is_active).ok_or_else(refused)?;
        password_policy::check(&req.password, &user.email, &user.name)?;
        // Spent here, once: a second use of the same token is refused.
        account_tokens::spend(db, &hash, Purpose::PasswordReset, now).await?.ok_or_else(refused)?;
        let password_hash = passwords::hash(req.password).await?;
        let mut patch = UserPatch {
            password_hash: Some(password_hash),
            token_version: Some(user.token_version.saturating_add(1)),
            updated_at: Some(now),
            ..UserPatch::default()
        };
        // The mail reached the address the account has: that verifies it.
        if user.email_verified_at.is_none() && live.email == user.email {
            patch.email_verified_at = Some(Some(now));
        }
        users::update(db, &user, patch).await?;
        refresh::revoke_all(db, &user.id).await?;
        account_tokens::spend_all(db, &user.id, Purpose::PasswordReset, now).await?;
        audit::record(db, "auth", AuditEntry::new("password reset: every token revoked").user(&user.id));
        Ok(v1::PasswordResetConfirmResponse { reset: true })
    }

    async fn verify_email(&self, req: v1::VerifyEmailRequest) -> CpResult<v1::VerifyEmailResponse> {
        self.state.ensure_running()?;
        let token = req.token.trim();
        if token.is_empty() {
            return Err(crate::error::invalid("token", "token is required"));
        }
        let refused = || api(ErrorCode::InvalidToken, "invalid, expired or already used verification token");
        if token.len() > 128 {
            return Err(refused());
        }
        let db = &self.state.db;
        let now = Utc::now();
        let spent = account_tokens::spend(db, &email::account::hash(token), Purpose::VerifyEmail, now)
            .await?
            .ok_or_else(refused)?;
        // A link mailed to a former address verifies nothing.
        if !users::mark_verified(db, &spent.user_id, &spent.email, now).await? {
            return Err(refused());
        }
        audit::record(db, "auth", AuditEntry::new("email verified").user(&spent.user_id));
        Ok(v1::VerifyEmailResponse { verified: true, email: spent.email })
    }

    async fn resend_verification(&self, who: Authenticated) -> CpResult<v1::AcceptedResponse> {
        self.state.ensure_running()?;
        if who.user.email_verified_at.is_some() {
            return Ok(v1::AcceptedResponse { accepted: false });
        }
        let d = self.state.limiter.check(RULE_VERIFY_RESEND, &who.user.id, VERIFY_RESEND_RATE, 1).await;
        if !d.allowed {
            return Err(d
                .refusal(format!("Too many verification mails ({})", VERIFY_RESEND_RATE.describe()))
                .into());
        }
        email::account::send_verification(&self.state, &who.user).await?;
        Ok(v1::AcceptedResponse { accepted: true })
    }
}

/// Creates a user (argon2id hash); a taken email is ALREADY_EXISTS.
pub async fn create_user(
    state: &SharedState,
    name: String,
    email: String,
    password: String,
    role: UserRole,
) -> CpResult<User> {
    let exists = users::by_email(&state.db, &email).await?;
    if exists.is_some() {
        return Err(api(ErrorCode::AlreadyExists, "an account with this email already exists"));
    }
    let hash = passwords::hash(password).await?;
    let now = Utc::now();
    let row = User {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        email,
        password_hash: hash,
        role,
        tier: UserTier::Basic,
        is_active: true,
        token_version: 0,
        message_quota: None,
        last_login_at: None,
        // An administrator's address is the operator's; accounts signing
        // up verify theirs through the mailed link.
        email_verified_at: (role == UserRole::Administrator).then_some(now),
        notify_mask: users::NOTIFY_ALL,
        created_at: now,
        updated_at: now,
    };
    match users::insert(&state.db, row).await {
        Ok(u) => Ok(u),
        Err(e) if is_unique_violation(&e) => {
            Err(api(ErrorCode::AlreadyExists, "an account with this email already exists"))
        }
        Err(e) => Err(CpError::Db(e)),
    }
}

/// Invalidates every access token issued to the user so far (the version is
/// checked on each call against the row the call reads anyway).
pub async fn bump_token_version(state: &SharedState, user_id: &str) -> CpResult<()> {
    users::bump_token_version(&state.db, user_id).await?;
    Ok(())
}

pub fn role_str(role: UserRole) -> &'static str {
    match role {
        UserRole::User => "USER",
        UserRole::Administrator => "ADMINISTRATOR",
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn register(
        &self,
        request: Request<v1::RegisterRequest>,
    ) -> Result<Response<v1::AuthResponse>, Status> {
        let peer = self.state.auth.client_ip(&request);
        Ok(Response::new(self.register(request.into_inner(), peer).await?))
    }

    async fn login(&self, request: Request<v1::LoginRequest>) -> Result<Response<v1::AuthResponse>, Status> {
        let peer = self.state.auth.client_ip(&request);
        Ok(Response::new(self.login(request.into_inner(), peer).await?))
    }

    async fn refresh(
        &self,
        request: Request<v1::RefreshRequest>,
    ) -> Result<Response<v1::AuthResponse>, Status> {
        Ok(Response::new(self.refresh(request.into_inner()).await?))
    }

    async fn logout(
        &self,
        request: Request<v1::LogoutRequest>,
    ) -> Result<Response<v1::LogoutResponse>, Status> {
        let who = self.state.auth.authenticate(request.metadata()).await?;
        Ok(Response::new(self.logout(who, request.into_inner()).await?))
    }

    async fn request_password_reset(
        &self,
        request: Request<v1::PasswordResetRequest>,
    ) -> Result<Response<v1::AcceptedResponse>, Status> {
        let peer = self.state.auth.client_ip(&request);
        Ok(Response::new(self.request_password_reset(request.into_inner(), peer).await?))
    }

    async fn confirm_password_reset(
        &self,
        request: Request<v1::PasswordResetConfirmRequest>,
    ) -> Result<Response<v1::PasswordResetConfirmResponse>, Status> {
        Ok(Response::new(self.confirm_password_reset(request.into_inner()).await?))
    }

    async fn verify_email(
        &self,
        request: Request<v1::VerifyEmailRequest>,
    ) -> Result<Response<v1::VerifyEmailResponse>, Status> {
        Ok(Response::new(self.verify_email(request.into_inner()).await?))
    }

    async fn resend_verification(
        &self,
        request: Request<v1::ResendVerificationRequest>,
    ) -> Result<Response<v1::AcceptedResponse>, Status> {
        let who = self.state.auth.authenticate(request.metadata()).await?;
        Ok(Response::new(self.resend_verification(who).await?))
    }

    async fn logout_all(
        &self,
        request: Request<v1::LogoutAllRequest>,
    ) -> Result<Response<v1::LogoutResponse>, Status> {
        let who = self.state.auth.authenticate(request.metadata()).await?;
        Ok(Response::new(self.logout_all(who).await?))
    }
}
