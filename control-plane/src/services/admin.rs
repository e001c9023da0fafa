//! AdminService: users, workers, analytics and audit logs for operators.
//! Every method first checks the ADMINISTRATOR role
//! ([`crate::auth::Authenticator::admin`]).

use chrono::Utc;
use tonic::{Request, Response, Status};
use wagate_proto::error::ErrorCode;
use wagate_proto::time::{from_proto, to_proto};
use wagate_proto::v1::{self, admin_service_server::AdminService};

use crate::audit::{self, AuditEntry};
use crate::auth::AuthUser;
use crate::convert;
use crate::error::{CpResult, api, invalid, refused};
use crate::persistence::enums::{LogLevel, UserRole, UserTier};
use crate::persistence::system_logs::{self, LogFilter, SystemLog};
use crate::persistence::users::{self as user_rows, User, UserPatch};
use crate::services::{admin_workers, analytics, page_limit, pagination, users};
use crate::state::SharedState;
use crate::validation;

pub struct AdminApi {
    state: SharedState,
}

/// `%`, `_` and `\` in a search term match themselves.
pub fn like_pattern(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 2);
    out.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn log_entry(l: &SystemLog) -> v1::LogEntry {
    v1::LogEntry {
        id: l.id.clone(),
        level: level_name(l.level).to_owned(),
        service: l.service.clone(),
        message: l.message.clone(),
        details: l.details.clone(),
        user_id: l.user_id.clone(),
        session_id: l.session_id.clone(),
        worker_id: l.worker_id.clone(),
        timestamp: Some(to_proto(l.timestamp)),
    }
}

pub fn level_name(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Error => "ERROR",
        LogLevel::Warn => "WARN",
        LogLevel::Info => "INFO",
        LogLevel::Debug => "DEBUG",
    }
}

impl AdminApi {
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }

    async fn user_by_id(&self, id: &str) -> CpResult<User> {
        let not_found = || api(ErrorCode::NotFound, "user not found");
        let id = validation::lookup_id(id).ok_or_else(not_found)?;
        user_rows::by_id(&self.state.db, id).await?.ok_or_else(not_found)
    }

    async fn list_users(&self, req: v1::ListUsersRequest) -> CpResult<v1::ListUsersResponse> {
        let (page, limit) = page_limit(req.page, req.limit);
        let search = req.search.trim();
        if search.chars().count() > 100 {
            return Err(invalid("search", "search must be at most 100 characters"));
        }
        let pattern = (!search.is_empty()).then(|| like_pattern(&search.to_lowercase()));
        let (total, rows) = user_rows::page(
            &self.state.db,
            pattern,
            u64::from(page - 1) * u64::from(limit),
            u64::from(limit),
        )
        .await?;
        Ok(v1::ListUsersResponse {
            users: rows.iter().map(convert::user).collect(),
            pagination: Some(pagination(total, page, limit)),
        })
    }

    async fn update_user(&self, admin: &AuthUser, req: v1::UpdateUserRequest) -> CpResult<v1::User> {
        self.state.ensure_running()?;
        let target = self.user_by_id(&req.user_id).await?;
        let mut patch = UserPatch::default();
        let mut changes = serde_json::Map::new();
        if let Some(t) = req.tier {
            let tier = match v1::UserTier::try_from(t) {
                Ok(v1::UserTier::Basic) => UserTier::Basic,
                Ok(v1::UserTier::Pro) => UserTier::Pro,
                Ok(v1::UserTier::Max) => UserTier::Max,
                _ => return Err(invalid("tier", "tier must be BASIC, PRO or MAX")),
            };
            patch.tier = Some(tier);
            changes.insert("tier".into(), tier.as_str().into());
        }
        if let Some(r) = req.role {
            let role = match v1::UserRole::try_from(r) {
                Ok(v1::UserRole::User) => UserRole::User,
                Ok(v1::UserRole::Administrator) => UserRole::Administrator,
                _ => return Err(invalid("role", "role must be USER or ADMINISTRATOR")),
            };
            if target.id == admin.id && role != UserRole::Administrator {
                return Err(refused("role", "you cannot remove your own administrator role"));
            }
            patch.role = Some(role);
            changes.insert("role".into(), crate::services::auth::role_str(role).into());
        }
        if let Some(is_active) = req.is_active {
            if target.id == admin.id && !is_active {
                return Err(refused("isActive", "you cannot deactivate your own account"));
            }
            patch.is_active = Some(is_active);
            changes.insert("isActive".into(), is_active.into());
        }
        if let Some(name) = &req.name {
            patch.name = Some(validation::name("name", name)?);
            changes.insert("name".into(), true.into());
        }
        if let Some(q) = req.message_quota {
            if q > 100_000_000 {
                return Err(invalid("messageQuota", "messageQuota must be at most 100000000"));
            }
            let quota = (q >= 0).then_some(q);
            patch.message_quota = Some(quota);
            changes.insert("messageQuota".into(), quota.map_or(serde_json::Value::Null, Into::into));
        }
        if changes.is_empty() {
            return Ok(convert::user(&target));
        }
        patch.updated_at = Some(Utc::now());
        let updated = user_rows::update(&self.state.db, &target, patch).await?;
        // Deactivation stops the user's keys at once, a new tier or quota
        // applies to the next send: the key cache holds both.
        crate::auth::invalidation::all(&self.state).await;
        audit::record(
            &self.state.db,
            "admin",
            AuditEntry::new("user updated by administrator")
                .level(LogLevel::Warn)
                .user(&target.id)
                .details(serde_json::json!({ "by": admin.id, "changes": changes })),
        );
        tracing::info!(user_id = target.id, admin_id = admin.id, "user updated by administrator");
        Ok(convert::user(&updated))
    }

    async fn delete_user(&self, admin: &AuthUser, id: &str) -> CpResult<v1::DeleteUserAdminResponse> {
        self.state.ensure_running()?;
        let target = self.user_by_id(id).await?;
        if target.id == admin.id {
            return Err(refused("userId", "delete your own account with DELETE /me"));
        }
        let n = users::delete_user(&self.state, &target.id).await?;
        audit::record(
            &self.state.db,
            "admin",
            AuditEntry::new("user deleted by administrator")
                .level(LogLevel::Warn)
                .user(&target.id)
                .details(serde_json::json!({ "by": admin.id, "email": target.email, "sessions": n })),
        );
        Ok(v1::DeleteUserAdminResponse { user_id: target.id, deleted: true, sessions_deleted: n })
    }

    async fn list_logs(&self, req: v1::ListLogsRequest) -> CpResult<v1::ListLogsResponse> {
        let (page, limit) = page_limit(req.page, req.limit);
        let mut filter = LogFilter::default();
        let level = req.level.trim().to_ascii_uppercase();
        if !level.is_empty() {
            let l = match level.as_str() {
                "ERROR" => LogLevel::Error,
                "WARN" => LogLevel::Warn,
                "INFO" => LogLevel::Info,
                "DEBUG" => LogLevel::Debug,
                _ => return Err(invalid("level", "level must be ERROR, WARN, INFO or DEBUG")),
            };
            filter.level = Some(l);
        }
        let service = req.service.trim();
        if !service.is_empty() {
            if service.chars().count() > 64 {
                return Err(invalid("service", "service must be at most 64 characters"));
            }
            filter.service = Some(service);
        }
        let user_id = req.user_id.trim();
        if !user_id.is_empty() {
            let id = validation::lookup_id(user_id)
                .ok_or_else(|| invalid("userId", "userId is not a valid id"))?;
            filter.user_id = Some(id);
        }
        let from = req
            .from
            .as_ref()
            .map(|t| from_proto(t).ok_or_else(|| invalid("from", "from is not a valid time")));
        if let Some(f) = from.transpose()? {
            filter.from = Some(f);
        }
        let to =
            req.to.as_ref().map(|t| from_proto(t).ok_or_else(|| invalid("to", "to is not a valid time")));
        if let Some(t) = to.transpose()? {
            filter.to = Some(t);
        }
        let (total, rows) = system_logs::page(
            &self.state.db,
            filter,
            u64::from(page - 1) * u64::from(limit),
            u64::from(limit),
        )
        .await?;
        Ok(v1::ListLogsResponse {
            logs: rows.iter().map(log_entry).collect(),
            pagination: Some(pagination(total, page, limit)),
        })
    }

    /// The email delivery log (never the bodies: they may hold tokens).
    async fn list_emails(&self, req: v1::ListEmailsRequest) -> CpResult<v1::ListEmailsResponse> {
        let (page, limit) = page_limit(req.page, req.limit);
        let status = req.status.trim().to_ascii_uppercase();
        let status = match status.as_str() {
            "" => None,
            s @ ("PENDING" | "RETRYING" | "SENT" | "FAILED") => Some(s),
            _ => return Err(invalid("status", "status must be PENDING, RETRYING, SENT or FAILED")),
        };
        let (total, rows) = crate::persistence::email_outbox::page(
            &self.state.db,
            status,
            u64::from(page - 1) * u64::from(limit),
            u64::from(limit),
        )
        .await?;
        Ok(v1::ListEmailsResponse {
            emails: rows
                .into_iter()
                .map(|r| v1::EmailEntry {
                    next_attempt_at: matches!(r.status.as_str(), "PENDING" | "RETRYING")
                        .then(|| to_proto(r.next_attempt_at)),
                    id: r.id,
                    kind: r.kind,
                    to: r.to,
                    subject: r.subject,
                    status: r.status,
                    attempts: u32::try_from(r.attempts).unwrap_or(0),
                    last_error: r.last_error,
                    user_id: r.user_id,
                    created_at: Some(to_proto(r.created_at)),
                    sent_at: r.sent_at.map(to_proto),
                })
                .collect(),
            pagination: Some(pagination(total, page, limit)),
        })
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_users(
        &self,
        request: Request<v1::ListUsersRequest>,
    ) -> Result<Response<v1::ListUsersResponse>, Status> {
        self.state.auth.admin(request.metadata()).await?;
        Ok(Response::new(self.list_users(request.into_inner()).await?))
    }

    async fn get_user(&self, request: Request<v1::GetUserRequest>) -> Result<Response<v1::User>, Status> {
        self.state.auth.admin(request.metadata()).await?;
        Ok(Response::new(convert::user(&self.user_by_id(&request.get_ref().user_id).await?)))
    }

    async fn update_user(
        &self,
        request: Request<v1::UpdateUserRequest>,
    ) -> Result<Response<v1::User>, Status> {
        let admin = self.state.auth.admin(request.metadata()).await?;
        Ok(Response::new(self.update_user(&admin, request.into_inner()).await?))
    }

    async fn delete_user(
        &self,
        request: Request<v1::GetUserRequest>,
    ) -> Result<Response<v1::DeleteUserAdminResponse>, Status> {
        let admin = self.state.auth.admin(request.metadata()).await?;
        Ok(Response::new(self.delete_user(&admin, &request.get_ref().user_id).await?))
    }

    async fn list_workers(
        &self,
        request: Request<v1::ListWorkersRequest>,
    ) -> Result<Response<v1::ListWorkersResponse>, Status> {
        self.state.auth.admin(request.metadata()).await?;
        Ok(Response::new(admin_workers::list(&self.state, request.into_inner()).await?))
    }

    async fn create_worker(
        &self,
        request: Request<v1::CreateWorkerRequest>,
    ) -> Result<Response<v1::CreateWorkerResponse>, Status> {
        let admin = self.state.auth.admin(request.metadata()).await?;
        Ok(Response::new(admin_workers::create(&self.state, &admin, request.into_inner()).await?))
    }

    async fn get_worker(
        &self,
        request: Request<v1::GetWorkerRequest>,
    ) -> Result<Response<v1::WorkerDetail>, Status> {
        self.state.auth.admin(request.metadata()).await?;
        Ok(Response::new(admin_workers::get(&self.state, &request.get_ref().worker_id).await?))
    }

    async fn update_worker(
        &self,
        request: Request<v1::UpdateWorkerRequest>,
    ) -> Result<Response<v1::WorkerInfo>, Status> {
        let admin = self.state.auth.admin(request.metadata()).await?;
        Ok(Response::new(admin_workers::update(&self.state, &admin, request.into_inner()).await?))
    }

    async fn delete_worker(
        &self,
        request: Request<v1::DeleteWorkerRequest>,
    ) -> Result<Response<v1::DeleteWorkerResponse>, Status> {
        let admin = self.state.auth.admin(request.metadata()).await?;
        Ok(Response::new(admin_workers::delete(&self.state, &admin, request.into_inner()).await?))
    }

    async fn get_worker_metrics(
        &self,
        request: Request<v1::GetWorkerMetricsRequest>,
    ) -> Result<Response<v1::WorkerMetricsResponse>, Status> {
        self.state.auth.admin(request.metadata()).await?;
        Ok(Response::new(analytics::worker_metrics(&self.state, request.into_inner()).await?))
    }

    async fn get_analytics(
        &self,
        request: Request<v1::GetAnalyticsRequest>,
    ) -> Result<Response<v1::AnalyticsResponse>, Status> {
        self.state.auth.admin(request.metadata()).await?;
        Ok(Response::new(analytics::overview(&self.state, &request.get_ref().time_range).await?))
    }

    async fn list_logs(
        &self,
        request: Request<v1::ListLogsRequest>,
    ) -> Result<Response<v1::ListLogsResponse>, Status> {
        self.state.auth.admin(request.metadata()).await?;
        Ok(Response::new(self.list_logs(request.into_inner()).await?))
    }

    async fn list_emails(
        &self,
        request: Request<v1::ListEmailsRequest>,
    ) -> Result<Response<v1::ListEmailsResponse>, Status> {
        self.state.auth.admin(request.metadata()).await?;
        Ok(Response::new(self.list_emails(request.into_inner()).await?))
    }
}
