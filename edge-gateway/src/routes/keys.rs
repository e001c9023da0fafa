//! `GET/DELETE /sessions/{id}/api-key`, `POST /sessions/{id}/api-key/rotate` (owner's JWT).

use wagate_proto::error::ApiError;
use wagate_proto::v1::GetSessionRequest;

use crate::envelope::Reply;
use crate::grpc::call_failed;
use crate::json::{check_content_type, parse, read_body};
use crate::resources::{ApiKeyDto, RotateKeyBody, RotatedKeyDto};
use crate::router::{Ctx, RequestBody};
use crate::routes::incomplete_reply;

fn session(id: &str) -> GetSessionRequest {
    GetSessionRequest { session_id: id.to_owned() }
}

pub(crate) async fn get(ctx: &Ctx, id: &str) -> Result<Reply, ApiError> {
    ctx.require_authorization()?;
    let k = ctx
        .control_plane()
        .api_keys()
        .get_api_key(ctx.call.request(session(id)))
        .await
        .map_err(|s| call_failed("ApiKeyService.GetApiKey", &s))?
        .into_inner();
    Ok(Reply::ok(&ApiKeyDto::from(&k)))
}

pub(crate) async fn revoke(ctx: &Ctx, id: &str) -> Result<Reply, ApiError> {
    ctx.require_authorization()?;
    let k = ctx
        .control_plane()
        .api_keys()
        .revoke_api_key(ctx.call.request(session(id)))
        .await
        .map_err(|s| call_failed("ApiKeyService.RevokeApiKey", &s))?
        .into_inner();
    Ok(Reply::ok(&ApiKeyDto::from(&k)))
}

/// The body is optional: none (or an empty one) rotates without expiry.
pub(crate) async fn rotate<B: RequestBody>(ctx: &Ctx, id: &str, body: B) -> Result<Reply, ApiError> {
    let bytes = read_body(&ctx.headers, body, ctx.config().body_limit_bytes).await?;
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        RotateKeyBody::default()
    } else {
        check_content_type(&ctx.headers)?;
        parse::<RotateKeyBody>(&bytes)?
    };
    ctx.require_authorization()?;
    let request = body.into_request(id)?;
    let r = ctx
        .control_plane()
        .api_keys()
        .rotate_api_key(ctx.call.request(request))
        .await
        .map_err(|s| call_failed("ApiKeyService.RotateApiKey", &s))?
        .into_inner();
    let key = r.key.as_ref().ok_or_else(|| incomplete_reply("ApiKeyService.RotateApiKey"))?;
    Ok(Reply::ok(&RotatedKeyDto { api_key: r.api_key.clone(), key: key.into() }))
}
