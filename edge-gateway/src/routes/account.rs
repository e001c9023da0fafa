//! `GET/PATCH/DELETE /me`: the caller's own account (JWT).

use wagate_proto::error::ApiError;
use wagate_proto::v1::{DeleteMeRequest, GetMeRequest, UpdateMeRequest};

use crate::dto::UserDto;
use crate::envelope::Reply;
use crate::grpc::call_failed;
use crate::json::read_json;
use crate::resources::{DeletedUserDto, UpdateMeBody};
use crate::router::{Ctx, RequestBody};

pub(crate) async fn get(ctx: &Ctx) -> Result<Reply, ApiError> {
    ctx.require_authorization()?;
    let u = ctx
        .control_plane()
        .users()
        .get_me(ctx.call.request(GetMeRequest {}))
        .await
        .map_err(|s| call_failed("UserService.GetMe", &s))?
        .into_inner();
    Ok(Reply::ok(&UserDto::from(&u)))
}

pub(crate) async fn update<B: RequestBody>(ctx: &Ctx, body: B) -> Result<Reply, ApiError> {
    let body: UpdateMeBody = read_json(&ctx.headers, body, ctx.config().body_limit_bytes).await?;
    ctx.require_authorization()?;
    let request = UpdateMeRequest {
        name: body.name,
        email: body.email,
        password: body.password,
        current_password: body.current_password,
    };
    let u = ctx
        .control_plane()
        .users()
        .update_me(ctx.call.request(request))
        .await
        .map_err(|s| call_failed("UserService.UpdateMe", &s))?
        .into_inner();
    Ok(Reply::ok(&UserDto::from(&u)))
}

pub(crate) async fn delete(ctx: &Ctx) -> Result<Reply, ApiError> {
    ctx.require_authorization()?;
    let r = ctx
        .control_plane()
        .users()
        .delete_me(ctx.call.request(DeleteMeRequest { current_password: None }))
        .await
        .map_err(|s| call_failed("UserService.DeleteMe", &s))?
        .into_inner();
    Ok(Reply::ok(&DeletedUserDto {
        user_id: r.user_id,
        deleted: r.deleted,
        sessions_deleted: r.sessions_deleted,
    }))
}
