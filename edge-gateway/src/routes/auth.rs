//! `POST auth/register` and `POST auth/login`.

use wagate_proto::error::ApiError;
use wagate_proto::v1::{LoginRequest, RegisterRequest};

use crate::dto::{AuthDto, LoginBody, RegisterBody};
use crate::envelope::Reply;
use crate::grpc::call_failed;
use crate::json::read_json;
use crate::router::{Ctx, RequestBody};
use crate::routes::incomplete_reply;

pub(crate) async fn register<B: RequestBody>(ctx: &Ctx, body: B) -> Result<Reply, ApiError> {
    let body: RegisterBody = read_json(&ctx.headers, body, ctx.config().body_limit_bytes).await?;
    let request =
        RegisterRequest { email: body.email, password: body.password, name: body.name.unwrap_or_default() };
    let reply = ctx
        .control_plane()
        .auth()
        .register(ctx.call.request(request))
        .await
        .map_err(|s| call_failed("AuthService.Register", &s))?
        .into_inner();
    let dto = AuthDto::from_proto(&reply).ok_or_else(|| incomplete_reply("AuthService.Register"))?;
    Ok(Reply::created(&dto))
}

pub(crate) async fn login<B: RequestBody>(ctx: &Ctx, body: B) -> Result<Reply, ApiError> {
    let body: LoginBody = read_json(&ctx.headers, body, ctx.config().body_limit_bytes).await?;
    let request = LoginRequest { email: body.email, password: body.password };
    let reply = ctx
        .control_plane()
        .auth()
        .login(ctx.call.request(request))
        .await
        .map_err(|s| call_failed("AuthService.Login", &s))?
        .into_inner();
    let dto = AuthDto::from_proto(&reply).ok_or_else(|| incomplete_reply("AuthService.Login"))?;
    Ok(Reply::ok(&dto))
}
