//! `/admin/...`: users, workers, analytics, logs. The control plane checks
//! the ADMINISTRATOR role; the edge only checks a credential is present.

use wagate_proto::error::ApiError;
use wagate_proto::v1::{
    DeleteWorkerRequest, GetAnalyticsRequest, GetUserRequest, GetWorkerMetricsRequest, GetWorkerRequest,
    ListLogsRequest, ListUsersRequest, ListWorkersRequest,
};

use crate::dto::UserDto;
use crate::envelope::Reply;
use crate::grpc::call_failed;
use crate::json::read_json;
use crate::query::Query;
use crate::resources::{
    AnalyticsDto, CreateWorkerBody, CreatedWorkerDto, DeletedUserDto, DeletedWorkerDto, LogListDto,
    UpdateUserBody, UpdateWorkerBody, UserListDto, WorkerDetailDto, WorkerDto, WorkerListDto,
    WorkerMetricsDto, pagination,
};
use crate::router::{Ctx, RequestBody};
use crate::routes::incomplete_reply;

pub const TIME_RANGES: [&str; 4] = ["1h", "24h", "7d", "30d"];
pub const LEVELS: [&str; 4] = ["ERROR", "WARN", "INFO", "DEBUG"];

fn page(q: &Query) -> Result<(u32, u32), ApiError> {
    // limit above 100 is capped by the control plane.
    Ok((q.positive("page")?, q.positive("limit")?))
}

fn time_range(q: &Query) -> Result<String, ApiError> {
    Ok(q.one_of("timeRange", &TIME_RANGES)?.map_or("24h", |i| TIME_RANGES[i]).to_owned())
}

pub(crate) async fn list_users(ctx: &Ctx) -> Result<Reply, ApiError> {
    let q = Query::parse(ctx.query.as_deref())?;
    let (page, limit) = page(&q)?;
    let search = q.text("search", 100)?.unwrap_or_default();
    ctx.require_authorization()?;
    let r = ctx
        .control_plane()
        .admin()
        .list_users(ctx.call.request(ListUsersRequest { page, limit, search }))
        .await
        .map_err(|s| call_failed("AdminService.ListUsers", &s))?
        .into_inner();
    Ok(Reply::ok(&UserListDto {
        users: r.users.iter().map(UserDto::from).collect(),
        pagination: pagination(r.pagination.as_ref()),
    }))
}

fn user(id: &str) -> GetUserRequest {
    GetUserRequest { user_id: id.to_owned() }
}

pub(crate) async fn get_user(ctx: &Ctx, id: &str) -> Result<Reply, ApiError> {
    ctx.require_authorization()?;
    let u = ctx
        .control_plane()
        .admin()
        .get_user(ctx.call.request(user(id)))
        .await
        .map_err(|s| call_failed("AdminService.GetUser", &s))?
        .into_inner();
    Ok(Reply::ok(&UserDto::from(&u)))
}

pub(crate) async fn update_user<B: RequestBody>(ctx: &Ctx, id: &str, body: B) -> Result<Reply, ApiError> {
    let body: UpdateUserBody = read_json(&ctx.headers, body, ctx.config().body_limit_bytes).await?;
    let request = body.into_request(id)?;
    ctx.require_authorization()?;
    let u = ctx
        .control_plane()
        .admin()
        .update_user(ctx.call.request(request))
        .await
        .map_err(|s| call_failed("AdminService.UpdateUser", &s))?
        .into_inner();
    Ok(Reply::ok(&UserDto::from(&u)))
}

pub(crate) async fn delete_user(ctx: &Ctx, id: &str) -> Result<Reply, ApiError> {
    ctx.require_authorization()?;
    let r = ctx
        .control_plane()
        .admin()
        .delete_user(ctx.call.request(user(id)))
        .await
        .map_err(|s| call_failed("AdminService.DeleteUser", &s))?
        .into_inner();
    Ok(Reply::ok(&DeletedUserDto {
        user_id: r.user_id,
        deleted: r.deleted,
        sessions_deleted: r.sessions_deleted,
    }))
}

pub(crate) async fn list_workers(ctx: &Ctx) -> Result<Reply, ApiError> {
    let q = Query::parse(ctx.query.as_deref())?;
    let (page, limit) = page(&q)?;
    ctx.require_authorization()?;
    let r = ctx
        .control_plane()
        .admin()
        .list_workers(ctx.call.request(ListWorkersRequest { page, limit }))
        .await
        .map_err(|s| call_failed("AdminService.ListWorkers", &s))?
        .into_inner();
    Ok(Reply::ok(&WorkerListDto {
        workers: r.workers.iter().map(WorkerDto::from).collect(),
        pagination: pagination(r.pagination.as_ref()),
    }))
}

pub(crate) async fn create_worker<B: RequestBody>(ctx: &Ctx, body: B) -> Result<Reply, ApiError> {
    let body: CreateWorkerBody = read_json(&ctx.headers, body, ctx.config().body_limit_bytes).await?;
    let request = body.into_request()?;
    ctx.require_authorization()?;
    let r = ctx
        .control_plane()
        .admin()
        .create_worker(ctx.call.request(request))
        .await
        .map_err(|s| call_failed("AdminService.CreateWorker", &s))?
        .into_inner();
    let w = r.worker.as_ref().ok_or_else(|| incomplete_reply("AdminService.CreateWorker"))?;
    Ok(Reply::created(&CreatedWorkerDto { token: r.token.clone(), worker: w.into() }))
}

pub(crate) async fn get_worker(ctx: &Ctx, id: &str) -> Result<Reply, ApiError> {
    ctx.require_authorization()?;
    let r = ctx
        .control_plane()
        .admin()
        .get_worker(ctx.call.request(GetWorkerRequest { worker_id: id.to_owned() }))
        .await
        .map_err(|s| call_failed("AdminService.GetWorker", &s))?
        .into_inner();
    let dto = WorkerDetailDto::from_proto(&r).ok_or_else(|| incomplete_reply("AdminService.GetWorker"))?;
    Ok(Reply::ok(&dto))
}

pub(crate) async fn update_worker<B: RequestBody>(ctx: &Ctx, id: &str, body: B) -> Result<Reply, ApiError> {
    let body: UpdateWorkerBody = read_json(&ctx.headers, body, ctx.config().body_limit_bytes).await?;
    let request = body.into_request(id)?;
    ctx.require_authorization()?;
    let w = ctx
        .control_plane()
        .admin()
        .update_worker(ctx.call.request(request))
        .await
        .map_err(|s| call_failed("AdminService.UpdateWorker", &s))?
        .into_inner();
    Ok(Reply::ok(&WorkerDto::from(&w)))
}

pub(crate) async fn delete_worker(ctx: &Ctx, id: &str) -> Result<Reply, ApiError> {
    let q = Query::parse(ctx.query.as_deref())?;
    let force = q.boolean("force")?;
    ctx.require_authorization()?;
    let r = ctx
        .control_plane()
        .admin()
        .delete_worker(ctx.call.request(DeleteWorkerRequest { worker_id: id.to_owned(), force }))
        .await
        .map_err(|s| call_failed("AdminService.DeleteWorker", &s))?
        .into_inner();
    Ok(Reply::ok(&DeletedWorkerDto {
        worker_id: r.worker_id,
        deleted: r.deleted,
        sessions_detached: r.sessions_detached,
    }))
}

pub(crate) async fn worker_metrics(ctx: &Ctx, id: &str) -> Result<Reply, ApiError> {
    let q = Query::parse(ctx.query.as_deref())?;
    let time_range = time_range(&q)?;
    ctx.require_authorization()?;
    let r = ctx
        .control_plane()
        .admin()
        .get_worker_metrics(
            ctx.call.request(GetWorkerMetricsRequest { worker_id: id.to_owned(), time_range }),
        )
        .await
        .map_err(|s| call_failed("AdminService.GetWorkerMetrics", &s))?
        .into_inner();
    Ok(Reply::ok(&WorkerMetricsDto::from(&r)))
}

pub(crate) async fn analytics(ctx: &Ctx) -> Result<Reply, ApiError> {
    let q = Query::parse(ctx.query.as_deref())?;
    let time_range = time_range(&q)?;
    ctx.require_authorization()?;
    let r = ctx
        .control_plane()
        .admin()
        .get_analytics(ctx.call.request(GetAnalyticsRequest { time_range }))
        .await
        .map_err(|s| call_failed("AdminService.GetAnalytics", &s))?
        .into_inner();
    Ok(Reply::ok(&AnalyticsDto::from(&r)))
}

pub(crate) async fn logs(ctx: &Ctx) -> Result<Reply, ApiError> {
    let q = Query::parse(ctx.query.as_deref())?;
    let (page, limit) = page(&q)?;
    let level = q.one_of("level", &LEVELS)?.map_or("", |i| LEVELS[i]).to_owned();
    let service = q.text("service", 64)?.unwrap_or_default();
    let user_id = q.text("userId", 64)?.unwrap_or_default();
    let request =
        ListLogsRequest { page, limit, level, service, user_id, from: q.time("from")?, to: q.time("to")? };
    ctx.require_authorization()?;
    let r = ctx
        .control_plane()
        .admin()
        .list_logs(ctx.call.request(request))
        .await
        .map_err(|s| call_failed("AdminService.ListLogs", &s))?
        .into_inner();
    Ok(Reply::ok(&LogListDto::from(&r)))
}
