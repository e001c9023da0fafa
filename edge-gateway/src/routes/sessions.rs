//! `sessions`, `sessions/{id}`, `sessions/{id}/qr` (JWT-authenticated by the
//! control plane; the edge only checks a credential is present).

use wagate_proto::error::ApiError;
use wagate_proto::v1::{CreateSessionRequest, GetSessionRequest, ListSessionsRequest};

use crate::dto::{
    CreateSessionBody, CreatedSessionDto, DeletedDto, PageQuery, QrDto, SessionDto, SessionListDto,
};
use crate::envelope::Reply;
use crate::grpc::call_failed;
use crate::json::read_json;
use crate::router::{Ctx, RequestBody};
use crate::routes::incomplete_reply;

pub(crate) async fn create<B: RequestBody>(ctx: &Ctx, body: B) -> Result<Reply, ApiError> {
    let body: CreateSessionBody = read_json(&ctx.headers, body, ctx.config().body_limit_bytes).await?;
    ctx.require_authorization()?;
    let request = CreateSessionRequest { name: body.name, session_id: body.session_id.unwrap_or_default() };
    let reply = ctx
        .control_plane()
        .sessions()
        .create_session(ctx.call.request(request))
        .await
        .map_err(|s| call_failed("SessionService.CreateSession", &s))?
        .into_inner();
    let dto = CreatedSessionDto::from_proto(&reply)
        .ok_or_else(|| incomplete_reply("SessionService.CreateSession"))?;
    Ok(Reply::created(&dto))
}

pub(crate) async fn list(ctx: &Ctx) -> Result<Reply, ApiError> {
    let page = PageQuery::parse(ctx.query.as_deref())?;
    ctx.require_authorization()?;
    let request = ListSessionsRequest { page: page.page, limit: page.limit };
    let reply = ctx
        .control_plane()
        .sessions()
        .list_sessions(ctx.call.request(request))
        .await
        .map_err(|s| call_failed("SessionService.ListSessions", &s))?
        .into_inner();
    Ok(Reply::ok(&SessionListDto::from(&reply)))
}

fn get_request(id: &str) -> GetSessionRequest {
    GetSessionRequest { session_id: id.to_owned() }
}

pub(crate) async fn get(ctx: &Ctx, id: &str) -> Result<Reply, ApiError> {
    ctx.require_authorization()?;
    let reply = ctx
        .control_plane()
        .sessions()
        .get_session(ctx.call.request(get_request(id)))
        .await
        .map_err(|s| call_failed("SessionService.GetSession", &s))?
        .into_inner();
    Ok(Reply::ok(&SessionDto::from(&reply)))
}

pub(crate) async fn qr(ctx: &Ctx, id: &str) -> Result<Reply, ApiError> {
    ctx.require_authorization()?;
    let reply = ctx
        .control_plane()
        .sessions()
        .get_qr(ctx.call.request(get_request(id)))
        .await
        .map_err(|s| call_failed("SessionService.GetQr", &s))?
        .into_inner();
    Ok(Reply::ok(&QrDto::from(&reply)))
}

pub(crate) async fn delete(ctx: &Ctx, id: &str) -> Result<Reply, ApiError> {
    ctx.require_authorization()?;
    let reply = ctx
        .control_plane()
        .sessions()
        .delete_session(ctx.call.request(get_request(id)))
        .await
        .map_err(|s| call_failed("SessionService.DeleteSession", &s))?
        .into_inner();
    Ok(Reply::ok(&DeletedDto::from(&reply)))
}
