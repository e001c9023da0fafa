//! AuthService: register and login.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use tonic::{Request, Response, Status};
use wagate_proto::error::ErrorCode;
use wagate_proto::time::to_proto;
use wagate_proto::v1::{self, auth_service_server::AuthService};

use crate::audit::{self, AuditEntry};
use crate::auth::passwords;
use crate::convert;
use crate::error::{CpError, CpResult, api, is_unique_violation};
use crate::persistence::entities::user;
use crate::persistence::enums::{LogLevel, UserRole, UserTier};
use crate::state::SharedState;
use crate::validation;

pub struct AuthApi {
    state: SharedState,
}

impl AuthApi {
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }

    fn respond(&self, u: &user::Model) -> CpResult<v1::AuthResponse> {
        let (token, exp) = self
            .state
            .auth
            .jwt()
            .issue(&u.id, &u.email, role_str(u.role), u.tier.as_str())
            .map_err(|e| api(ErrorCode::Internal, e.to_string()))?;
        Ok(v1::AuthResponse { user: Some(convert::user(u)), token, expires_at: Some(to_proto(exp)) })
    }

    async fn register(&self, req: v1::RegisterRequest) -> CpResult<v1::AuthResponse> {
        self.state.ensure_running()?;
        let email = validation::email(&req.email)?;
        validation::password(&req.password)?;
        let name = if req.name.trim().is_empty() {
            email.split('@').next().unwrap_or("user").to_owned()
        } else {
            validation::name("name", &req.name)?
        };
        let created = create_user(&self.state, name, email, req.password, UserRole::User).await?;
        audit::record(&self.state.db, "auth", AuditEntry::new("user registered").user(&created.id));
        self.respond(&created)
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
        let found = if email.len() <= 254 && req.password.len() <= 1024 {
            user::Entity::find()
                .filter(user::Column::Email.eq(email.clone()))
                .one(&self.state.db.conn)
                .await?
        } else {
            None
        };
        let stored = match &found {
            Some(u) => u.password_hash.clone(),
            None => passwords::dummy_hash().await,
        };
        let ok = passwords::verify(req.password, stored).await?;
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
        let now = Utc::now();
        let mut active: user::ActiveModel = user.clone().into();
        active.last_login_at = Set(Some(now));
        let user = active.update(&self.state.db.conn).await?;
        audit::record(
            &self.state.db,
            "auth",
            AuditEntry::new("login succeeded").user(&user.id).details(serde_json::json!({ "peer": peer })),
        );
        self.respond(&user)
    }
}

/// Creates a user (argon2id hash); a taken email is ALREADY_EXISTS.
pub async fn create_user(
    state: &SharedState,
    name: String,
    email: String,
    password: String,
    role: UserRole,
) -> CpResult<user::Model> {
    let exists =
        user::Entity::find().filter(user::Column::Email.eq(email.clone())).one(&state.db.conn).await?;
    if exists.is_some() {
        return Err(api(ErrorCode::AlreadyExists, "an account with this email already exists"));
    }
    let hash = passwords::hash(password).await?;
    let now = Utc::now();
    let row = user::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        name: Set(name),
        email: Set(email),
        password_hash: Set(hash),
        role: Set(role),
        tier: Set(UserTier::Basic),
        is_active: Set(true),
        last_login_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    match row.insert(&state.db.conn).await {
        Ok(u) => Ok(u),
        Err(e) if is_unique_violation(&e) => {
            Err(api(ErrorCode::AlreadyExists, "an account with this email already exists"))
        }
        Err(e) => Err(CpError::Db(e)),
    }
}

pub fn role_str(role: UserRole) -> &'static str {
    match role {
        UserRole::User => "USER",
        UserRole::Administrator => "ADMINISTRATOR",
    }
}

pub fn peer_of<T>(req: &Request<T>) -> String {
    req.metadata()
        .get(wagate_proto::metadata::FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.remote_addr().map(|a| a.ip().to_string()))
        .unwrap_or_default()
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn register(
        &self,
        request: Request<v1::RegisterRequest>,
    ) -> Result<Response<v1::AuthResponse>, Status> {
        Ok(Response::new(self.register(request.into_inner()).await?))
    }

    async fn login(&self, request: Request<v1::LoginRequest>) -> Result<Response<v1::AuthResponse>, Status> {
        let peer = peer_of(&request);
        Ok(Response::new(self.login(request.into_inner(), peer).await?))
    }
}
