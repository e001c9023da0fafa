//! REST bodies of the account, API key, message history and admin
//! endpoints, and their mapping from the gRPC replies (camelCase, enum
//! values upper case, times RFC 3339).

use serde::{Deserialize, Serialize};
use wagate_proto::error::ApiError;
use wagate_proto::v1;

use crate::dto::{PaginationDto, Ts, UserDto, message_status_name, session_status_name};
use crate::json::{Field, JsonBody, Kind, require};

fn strip(name: &'static str, prefix: &str) -> &'static str {
    name.strip_prefix(prefix).unwrap_or(name)
}

pub fn worker_status_name(v: i32) -> &'static str {
    v1::WorkerStatus::try_from(v).map_or("UNSPECIFIED", |s| strip(s.as_str_name(), "WORKER_STATUS_"))
}

pub fn message_type_name(v: i32) -> &'static str {
    v1::MessageType::try_from(v).map_or("UNSPECIFIED", |s| strip(s.as_str_name(), "MESSAGE_TYPE_"))
}

pub fn direction_name(v: i32) -> &'static str {
    v1::MessageDirection::try_from(v).map_or("UNSPECIFIED", |s| strip(s.as_str_name(), "MESSAGE_DIRECTION_"))
}

pub fn pagination(p: Option<&v1::Pagination>) -> PaginationDto {
    let p = p.cloned().unwrap_or_default();
    let total_pages = if p.limit == 0 { 0 } else { p.total.div_ceil(u64::from(p.limit)) };
    PaginationDto { total: p.total, page: p.page, limit: p.limit, total_pages }
}

fn no_unknown_fields(
    raw: &serde_json::Map<String, serde_json::Value>,
    allowed: &[Field],
) -> Result<(), ApiError> {
    for key in raw.keys() {
        if !allowed.iter().any(|f| f.name == key) {
            return Err(ApiError::invalid(key.clone(), format!("{key} cannot be changed here")));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- requests

/// `PATCH /me`. `role`, `tier`, `isActive` are refused (mass assignment).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateMeBody {
    pub name: Option<String>,
    pub email: Option<String>,
    /// New password (8-128 characters); needs `currentPassword`.
    pub password: Option<String>,
    pub current_password: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

impl JsonBody for UpdateMeBody {
    const FIELDS: &'static [Field] = &[
        Field::optional("name", Kind::String),
        Field::optional("email", Kind::String),
        Field::optional("password", Kind::String),
        Field::optional("currentPassword", Kind::String),
    ];
    fn validate(&self) -> Result<(), ApiError> {
        no_unknown_fields(&self.rest, Self::FIELDS)?;
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

/// `PATCH /admin/users/{id}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateUserBody {
    /// BASIC, PRO or MAX.
    pub tier: Option<String>,
    /// USER or ADMINISTRATOR.
    pub role: Option<String>,
    pub is_active: Option<bool>,
    pub name: Option<String>,
}

impl JsonBody for UpdateUserBody {
    const FIELDS: &'static [Field] = &[
        Field::optional("tier", Kind::String),
        Field::optional("role", Kind::String),
        Field::optional("isActive", Kind::Bool),
        Field::optional("name", Kind::String),
    ];
}

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
        Ok(v1::UpdateUserRequest {
            user_id: user_id.to_owned(),
            tier,
            role,
            is_active: self.is_active,
            name: self.name,
        })
    }
}

/// `POST /sessions/{id}/api-key/rotate` (the body is optional).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotateKeyBody {
    /// Absolute expiry (RFC 3339, in the future).
    pub expires_at: Option<String>,
    /// Relative expiry in days (1-3650); ignored when `expiresAt` is set.
    pub expires_in_days: Option<f64>,
    /// Needed unless the token is younger than the re-authentication window.
    pub current_password: Option<String>,
}

impl JsonBody for RotateKeyBody {
    const FIELDS: &'static [Field] = &[
        Field::optional("expiresAt", Kind::String),
        Field::optional("expiresInDays", Kind::Number),
        Field::optional("currentPassword", Kind::String),
    ];
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
        let expires_at = match self.expires_at.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
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

/// `POST /admin/workers`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateWorkerBody {
    /// Optional id (`[A-Za-z0-9._-]`, 1-64); generated when absent.
    pub worker_id: Option<String>,
    pub endpoint: Option<String>,
    /// 1-100000, default 50.
    pub max_sessions: Option<f64>,
    pub description: Option<String>,
}

fn whole(name: &'static str, v: Option<f64>) -> Result<Option<u32>, ApiError> {
    match v {
        None => Ok(None),
        Some(x) if x.fract() == 0.0 && (1.0..=100_000.0).contains(&x) => Ok(Some(x as u32)),
        Some(_) => {
            Err(ApiError::invalid(name, format!("{name} must be a whole number between 1 and 100000")))
        }
    }
}

impl JsonBody for CreateWorkerBody {
    const FIELDS: &'static [Field] = &[
        Field::optional("workerId", Kind::String),
        Field::optional("endpoint", Kind::String),
        Field::optional("maxSessions", Kind::Number),
        Field::optional("description", Kind::String),
    ];
    fn validate(&self) -> Result<(), ApiError> {
        whole("maxSessions", self.max_sessions).map(|_| ())
    }
}

impl CreateWorkerBody {
    pub fn into_request(self) -> Result<v1::CreateWorkerRequest, ApiError> {
        Ok(v1::CreateWorkerRequest {
            worker_id: self.worker_id.unwrap_or_default(),
            endpoint: self.endpoint.unwrap_or_default(),
            max_sessions: whole("maxSessions", self.max_sessions)?.unwrap_or(0),
            description: self.description,
        })
    }
}

/// `PATCH /admin/workers/{id}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateWorkerBody {
    pub max_sessions: Option<f64>,
    pub description: Option<String>,
    /// MAINTENANCE or ONLINE.
    pub status: Option<String>,
}

impl JsonBody for UpdateWorkerBody {
    const FIELDS: &'static [Field] = &[
        Field::optional("maxSessions", Kind::Number),
        Field::optional("description", Kind::String),
        Field::optional("status", Kind::String),
    ];
    fn validate(&self) -> Result<(), ApiError> {
        whole("maxSessions", self.max_sessions).map(|_| ())
    }
}

impl UpdateWorkerBody {
    pub fn into_request(self, worker_id: &str) -> Result<v1::UpdateWorkerRequest, ApiError> {
        let status = match self.status.as_deref().map(str::trim) {
            None => None,
            Some(s) if s.eq_ignore_ascii_case("maintenance") => Some(v1::WorkerStatus::Maintenance as i32),
            Some(s) if s.eq_ignore_ascii_case("online") => Some(v1::WorkerStatus::Online as i32),
            Some(_) => return Err(ApiError::invalid("status", "status must be MAINTENANCE or ONLINE")),
        };
        Ok(v1::UpdateWorkerRequest {
            worker_id: worker_id.to_owned(),
            max_sessions: whole("maxSessions", self.max_sessions)?,
            description: self.description,
            status,
        })
    }
}

// ---------------------------------------------------------------- responses

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedUserDto {
    pub user_id: String,
    pub deleted: bool,
    pub sessions_deleted: u32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserListDto<'a> {
    pub users: Vec<UserDto<'a>>,
    pub pagination: PaginationDto,
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageDto {
    pub id: String,
    pub message_id: String,
    pub session_id: String,
    /// INBOUND or OUTBOUND.
    pub direction: &'static str,
    pub from: Option<String>,
    pub to: String,
    /// TEXT, IMAGE, DOCUMENT, AUDIO, VIDEO, STICKER, LOCATION or CONTACT.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: String,
    pub media_url: Option<String>,
    pub caption: Option<String>,
    pub filename: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub vcard: Option<String>,
    /// PENDING, SENT, DELIVERED, READ or FAILED.
    pub status: &'static str,
    pub error: Option<String>,
    pub sent_at: Option<Ts>,
    pub delivered_at: Option<Ts>,
    pub read_at: Option<Ts>,
    pub created_at: Option<Ts>,
}

impl From<&v1::Message> for MessageDto {
    fn from(m: &v1::Message) -> Self {
        let c = m.content.clone().unwrap_or_default();
        MessageDto {
            id: m.id.clone(),
            message_id: m.id.clone(),
            session_id: m.session_id.clone(),
            direction: direction_name(m.direction),
            from: m.from.clone(),
            to: m.to.clone(),
            kind: message_type_name(c.r#type),
            message: c.text,
            media_url: c.media_url,
            caption: c.caption,
            filename: c.filename,
            latitude: c.latitude,
            longitude: c.longitude,
            name: c.name,
            phone: c.phone,
            vcard: c.vcard,
            status: message_status_name(m.status),
            error: m.error.clone(),
            sent_at: Ts::from_proto(m.sent_at.as_ref()),
            delivered_at: Ts::from_proto(m.delivered_at.as_ref()),
            read_at: Ts::from_proto(m.read_at.as_ref()),
            created_at: Ts::from_proto(m.created_at.as_ref()),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageListDto {
    pub messages: Vec<MessageDto>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
    pub limit: u32,
}

impl From<&v1::ListMessagesResponse> for MessageListDto {
    fn from(r: &v1::ListMessagesResponse) -> Self {
        MessageListDto {
            messages: r.messages.iter().map(MessageDto::from).collect(),
            next_cursor: (!r.next_cursor.is_empty()).then(|| r.next_cursor.clone()),
            limit: r.limit,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerDto {
    pub id: String,
    pub worker_id: String,
    pub endpoint: String,
    /// ONLINE, OFFLINE or MAINTENANCE.
    pub status: &'static str,
    pub session_count: u32,
    pub max_sessions: u32,
    pub cpu_usage: f64,
    pub memory_usage: f64,
    pub last_heartbeat: Option<Ts>,
    pub description: Option<String>,
    pub version: Option<String>,
    /// Its stream is open on the answering control-plane replica.
    pub connected: bool,
    pub stream_generation: u64,
    pub pending_commands: u32,
    /// A per-worker token was issued.
    pub has_token: bool,
    pub created_at: Option<Ts>,
    pub updated_at: Option<Ts>,
}

impl From<&v1::WorkerInfo> for WorkerDto {
    fn from(w: &v1::WorkerInfo) -> Self {
        WorkerDto {
            id: w.id.clone(),
            worker_id: w.id.clone(),
            endpoint: w.endpoint.clone(),
            status: worker_status_name(w.status),
            session_count: w.session_count,
            max_sessions: w.max_sessions,
            cpu_usage: w.cpu_usage,
            memory_usage: w.memory_usage,
            last_heartbeat: Ts::from_proto(w.last_heartbeat.as_ref()),
            description: w.description.clone(),
            version: w.version.clone(),
            connected: w.connected,
            stream_generation: w.stream_generation,
            pending_commands: w.pending_commands,
            has_token: w.has_token,
            created_at: Ts::from_proto(w.created_at.as_ref()),
            updated_at: Ts::from_proto(w.updated_at.as_ref()),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerListDto {
    pub workers: Vec<WorkerDto>,
    pub pagination: PaginationDto,
}

/// A pre-registered worker and its stream token (shown once).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWorkerDto {
    pub token: String,
    #[serde(flatten)]
    pub worker: WorkerDto,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSessionDto {
    pub id: String,
    pub name: String,
    pub user_id: String,
    pub status: &'static str,
    pub phone_number: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSampleDto {
    pub timestamp: Option<Ts>,
    pub cpu_usage: f64,
    pub memory_usage: f64,
    pub session_count: u32,
    pub message_count: u64,
    pub uptime: u64,
}

impl From<&v1::WorkerMetricSample> for MetricSampleDto {
    fn from(m: &v1::WorkerMetricSample) -> Self {
        MetricSampleDto {
            timestamp: Ts::from_proto(m.timestamp.as_ref()),
            cpu_usage: m.cpu_usage,
            memory_usage: m.memory_usage,
            session_count: m.session_count,
            message_count: m.message_count,
            uptime: m.uptime,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerDetailDto {
    #[serde(flatten)]
    pub worker: WorkerDto,
    pub sessions: Vec<WorkerSessionDto>,
    pub recent_metrics: Vec<MetricSampleDto>,
}

impl WorkerDetailDto {
    pub fn from_proto(d: &v1::WorkerDetail) -> Option<Self> {
        Some(WorkerDetailDto {
            worker: d.worker.as_ref()?.into(),
            sessions: d
                .sessions
                .iter()
                .map(|s| WorkerSessionDto {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    user_id: s.user_id.clone(),
                    status: session_status_name(s.status),
                    phone_number: s.phone_number.clone(),
                })
                .collect(),
            recent_metrics: d.recent_metrics.iter().map(MetricSampleDto::from).collect(),
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedWorkerDto {
    pub worker_id: String,
    pub deleted: bool,
    pub sessions_detached: u32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerMetricsDto {
    pub worker_id: String,
    pub time_range: String,
    pub samples_count: u64,
    pub avg_cpu: f64,
    pub avg_memory: f64,
    pub avg_sessions: f64,
    pub max_cpu: f64,
    pub max_memory: f64,
    pub samples: Vec<MetricSampleDto>,
}

impl From<&v1::WorkerMetricsResponse> for WorkerMetricsDto {
    fn from(r: &v1::WorkerMetricsResponse) -> Self {
        WorkerMetricsDto {
            worker_id: r.worker_id.clone(),
            time_range: r.time_range.clone(),
            samples_count: r.samples_count,
            avg_cpu: r.avg_cpu,
            avg_memory: r.avg_memory,
            avg_sessions: r.avg_sessions,
            max_cpu: r.max_cpu,
            max_memory: r.max_memory,
            samples: r.samples.iter().map(MetricSampleDto::from).collect(),
        }
    }
}

type Counts = std::collections::BTreeMap<String, u64>;

fn counts(entries: &[v1::CountEntry]) -> Counts {
    entries.iter().map(|e| (e.key.clone(), e.count)).collect()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverviewDto {
    pub total_users: u64,
    pub total_sessions: u64,
    pub total_workers: u64,
    pub total_messages: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatsDto {
    pub online: u64,
    pub offline: u64,
    pub maintenance: u64,
    pub avg_cpu_usage: f64,
    pub avg_memory_usage: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatsDto {
    pub connected: u64,
    pub disconnected: u64,
    /// Connected sessions as a percentage of all sessions.
    pub success_rate: f64,
    pub by_status: Counts,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageStatsDto {
    /// Messages created in the time range.
    pub total: u64,
    pub by_type: Counts,
    pub by_status: Counts,
    pub by_direction: Counts,
    /// SENT + DELIVERED + READ as a percentage of the range's messages.
    pub success_rate: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserStatsDto {
    pub by_tier: Counts,
    /// Logged in within the last 7 days.
    pub active_users: u64,
    /// Registered in the time range.
    pub new_users: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsDto {
    pub time_range: String,
    pub overview: OverviewDto,
    pub workers: WorkerStatsDto,
    pub sessions: SessionStatsDto,
    pub messages: MessageStatsDto,
    pub users: UserStatsDto,
}

impl From<&v1::AnalyticsResponse> for AnalyticsDto {
    fn from(a: &v1::AnalyticsResponse) -> Self {
        AnalyticsDto {
            time_range: a.time_range.clone(),
            overview: OverviewDto {
                total_users: a.total_users,
                total_sessions: a.total_sessions,
                total_workers: a.total_workers,
                total_messages: a.total_messages,
            },
            workers: WorkerStatsDto {
                online: a.workers_online,
                offline: a.workers_offline,
                maintenance: a.workers_maintenance,
                avg_cpu_usage: a.avg_cpu_usage,
                avg_memory_usage: a.avg_memory_usage,
            },
            sessions: SessionStatsDto {
                connected: a.sessions_connected,
                disconnected: a.sessions_disconnected,
                success_rate: a.sessions_success_rate,
                by_status: counts(&a.sessions_by_status),
            },
            messages: MessageStatsDto {
                total: a.messages_in_range,
                by_type: counts(&a.messages_by_type),
                by_status: counts(&a.messages_by_status),
                by_direction: counts(&a.messages_by_direction),
                success_rate: a.messages_success_rate,
            },
            users: UserStatsDto {
                by_tier: counts(&a.users_by_tier),
                active_users: a.users_active,
                new_users: a.users_new_in_range,
            },
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogDto {
    pub id: String,
    /// ERROR, WARN, INFO or DEBUG.
    pub level: String,
    pub service: String,
    pub message: String,
    /// Parsed JSON details.
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub worker_id: Option<String>,
    pub timestamp: Option<Ts>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogListDto {
    pub logs: Vec<LogDto>,
    pub pagination: PaginationDto,
}

impl From<&v1::ListLogsResponse> for LogListDto {
    fn from(r: &v1::ListLogsResponse) -> Self {
        LogListDto {
            logs: r
                .logs
                .iter()
                .map(|l| LogDto {
                    id: l.id.clone(),
                    level: l.level.clone(),
                    service: l.service.clone(),
                    message: l.message.clone(),
                    details: l.details.as_deref().and_then(|d| serde_json::from_str(d).ok()),
                    user_id: l.user_id.clone(),
                    session_id: l.session_id.clone(),
                    worker_id: l.worker_id.clone(),
                    timestamp: Ts::from_proto(l.timestamp.as_ref()),
                })
                .collect(),
            pagination: pagination(r.pagination.as_ref()),
        }
    }
}
