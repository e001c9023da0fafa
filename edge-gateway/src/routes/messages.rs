//! `POST sessions/{id}/send`: the hot path. Authenticated by the session's
//! API key, which the control plane checks; `Idempotency-Key` is forwarded.

use wagate_proto::error::ApiError;

use crate::dto::{SendBody, SendDto};
use crate::envelope::Reply;
use crate::grpc::call_failed;
use crate::json::read_json;
use crate::router::{Ctx, RequestBody};

pub(crate) async fn send<B: RequestBody>(ctx: &Ctx, session_id: &str, body: B) -> Result<Reply, ApiError> {
    let body: SendBody = read_json(&ctx.headers, body, ctx.config().body_limit_bytes).await?;
    ctx.require_api_key()?;
    let request = body.into_request(session_id)?;
    let reply = ctx
        .control_plane()
        .messages()
        .send(ctx.call.request(request))
        .await
        .map_err(|s| call_failed("MessageService.Send", &s))?
        .into_inner();
    Ok(Reply::ok(&SendDto::from(&reply)))
}
