//! `/admin/workers`: the fleet's workers (ADMINISTRATOR): list, pre-register,
//! get with sessions and metrics, change, delete, metrics over a time range.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::error::ApiError;
use wagate_proto::v1::{
    self, DeleteWorkerRequest, GetWorkerMetricsRequest, GetWorkerRequest, ListWorkersRequest,
};

use super::{Answer, AppState, CallContext, Reply, incomplete_reply};
use crate::json::{Json, Validate};
use crate::model::{PaginationDto, Ts, session_status_name, worker_status_name};
use crate::openapi::Envelope;
use crate::params::{PageParams, PathIds, Query, TimeRangeParams, boolean};

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
        .routes(routes!(metrics))
}

/// `?force=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteWorkerParams {
    /// Detach the sessions the drain could not move (no worker, DISCONNECTED) instead of refusing with 409.
    #[serde(default, deserialize_with = "boolean")]
    pub force: Option<bool>,
}

/// `POST /admin/workers`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"workerId": "worker-7", "maxSessions": 50, "description": "rack 2"}))]
pub struct CreateWorkerBody {
    /// Optional id (`[A-Za-z0-9._-]`, 1-64); generated when absent.
    #[schema(schema_with = crate::schema::new_worker_id)]
    pub worker_id: Option<String>,
    #[schema(schema_with = crate::schema::worker_endpoint)]
    pub endpoint: Option<String>,
    /// 1-100000, default 50.
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 100000)]
    pub max_sessions: Option<f64>,
    #[schema(schema_with = crate::schema::worker_description)]
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

impl Validate for CreateWorkerBody {
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
#[schema(example = json!({"status": "MAINTENANCE"}))]
pub struct UpdateWorkerBody {
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 100000)]
    pub max_sessions: Option<f64>,
    #[schema(schema_with = crate::schema::worker_description)]
    pub description: Option<String>,
    /// MAINTENANCE or ONLINE (any case).
    #[schema(schema_with = crate::schema::worker_status)]
    pub status: Option<String>,
}

impl Validate for UpdateWorkerBody {
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
    /// Sessions moved to another worker (resumed there with their auth state).
    pub sessions_moved: u32,
    /// Sessions waiting for a worker with free capacity.
    pub sessions_waiting: u32,
    /// Sessions the drain could not move, detached (`force=true` only).
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

fn worker_id(ids: &PathIds) -> Result<String, ApiError> {
    ids.id("workerId", "worker")
}

#[utoipa::path(get, path = "/admin/workers", tag = "admin", summary = "Workers with their live stream state",
    security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Envelope<WorkerListDto>)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    Query(page): Query<PageParams>,
) -> Answer {
    call.require_authorization()?;
    let request = ListWorkersRequest { page: page.page.unwrap_or(0), limit: page.limit.unwrap_or(0) };
    let r = call
        .unary("AdminService.ListWorkers", state.control_plane.admin().list_workers(call.request(request)))
        .await?;
    Ok(Reply::ok(&WorkerListDto {
        workers: r.workers.iter().map(WorkerDto::from).collect(),
        pagination: PaginationDto::from_proto(r.pagination.as_ref()),
    }))
}

#[utoipa::path(post, path = "/admin/workers", tag = "admin",
    summary = "Pre-register a worker; its stream token is shown once",
    security(("bearer" = [])), request_body = CreateWorkerBody,
    responses((status = 201, body = Envelope<CreatedWorkerDto>), (status = 409, body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    Json(body): Json<CreateWorkerBody>,
) -> Answer {
    let request = body.into_request()?;
    call.require_authorization()?;
    let r = call
        .unary("AdminService.CreateWorker", state.control_plane.admin().create_worker(call.request(request)))
        .await?;
    let w = r.worker.as_ref().ok_or_else(|| incomplete_reply("AdminService.CreateWorker"))?;
    Ok(Reply::created(&CreatedWorkerDto { token: r.token.clone(), worker: w.into() }))
}

#[utoipa::path(get, path = "/admin/workers/{workerId}", tag = "admin", summary = "A worker, its sessions and recent metrics",
    security(("bearer" = [])), params(("workerId" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$", max_length = 64)),
    responses((status = 200, body = Envelope<WorkerDetailDto>)))]
pub(crate) async fn get(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let request = GetWorkerRequest { worker_id: worker_id(&ids)? };
    call.require_authorization()?;
    let r = call
        .unary("AdminService.GetWorker", state.control_plane.admin().get_worker(call.request(request)))
        .await?;
    let dto = WorkerDetailDto::from_proto(&r).ok_or_else(|| incomplete_reply("AdminService.GetWorker"))?;
    Ok(Reply::ok(&dto))
}

#[utoipa::path(patch, path = "/admin/workers/{workerId}", tag = "admin",
    summary = "Change maxSessions, description, status (MAINTENANCE / ONLINE)",
    security(("bearer" = [])), params(("workerId" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$", max_length = 64)),
    request_body = UpdateWorkerBody,
    responses((status = 200, body = Envelope<WorkerDto>)))]
pub(crate) async fn update(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    ids: PathIds,
    Json(body): Json<UpdateWorkerBody>,
) -> Answer {
    let request = body.into_request(&worker_id(&ids)?)?;
    call.require_authorization()?;
    let w = call
        .unary("AdminService.UpdateWorker", state.control_plane.admin().update_worker(call.request(request)))
        .await?;
    Ok(Reply::ok(&WorkerDto::from(&w)))
}

#[utoipa::path(delete, path = "/admin/workers/{workerId}", tag = "admin",
    summary = "Remove a worker: drain it (its sessions move to other workers, or wait for capacity), then delete it and its token (409 if a session could not be moved, unless force=true detaches it)",
    security(("bearer" = [])), params(("workerId" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$", max_length = 64), DeleteWorkerParams),
    responses((status = 200, body = Envelope<DeletedWorkerDto>), (status = 409, body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    ids: PathIds,
    Query(q): Query<DeleteWorkerParams>,
) -> Answer {
    let request = DeleteWorkerRequest { worker_id: worker_id(&ids)?, force: q.force.unwrap_or(false) };
    call.require_authorization()?;
    let r = call
        .unary("AdminService.DeleteWorker", state.control_plane.admin().delete_worker(call.request(request)))
        .await?;
    Ok(Reply::ok(&DeletedWorkerDto {
        worker_id: r.worker_id,
        deleted: r.deleted,
        sessions_moved: r.sessions_moved,
        sessions_waiting: r.sessions_waiting,
        sessions_detached: r.sessions_detached,
    }))
}

#[utoipa::path(get, path = "/admin/workers/{workerId}/metrics", tag = "admin", summary = "A worker's metrics over a time range",
    security(("bearer" = [])),
    params(("workerId" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$", max_length = 64), TimeRangeParams),
    responses((status = 200, body = Envelope<WorkerMetricsDto>)))]
pub(crate) async fn metrics(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    ids: PathIds,
    Query(q): Query<TimeRangeParams>,
) -> Answer {
    let request = GetWorkerMetricsRequest { worker_id: worker_id(&ids)?, time_range: q.value() };
    call.require_authorization()?;
    let r = call
        .unary(
            "AdminService.GetWorkerMetrics",
            state.control_plane.admin().get_worker_metrics(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&WorkerMetricsDto::from(&r)))
}
