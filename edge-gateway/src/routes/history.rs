//! `GET /sessions/{id}/messages` (filters + cursor) and
//! `GET /sessions/{id}/messages/{messageId}` (owner's JWT).

use wagate_proto::error::ApiError;
use wagate_proto::v1::{
    GetMessageRequest, ListMessagesRequest, MessageDirection, MessageStatus, MessageType,
};

use crate::envelope::Reply;
use crate::grpc::call_failed;
use crate::query::Query;
use crate::resources::{MessageDto, MessageListDto};
use crate::router::Ctx;

pub const DIRECTIONS: [&str; 2] = ["INBOUND", "OUTBOUND"];
pub const STATUSES: [&str; 5] = ["PENDING", "SENT", "DELIVERED", "READ", "FAILED"];
pub const TYPES: [&str; 8] =
    ["TEXT", "IMAGE", "DOCUMENT", "AUDIO", "VIDEO", "STICKER", "LOCATION", "CONTACT"];

pub(crate) fn list_request(id: &str, q: &Query) -> Result<ListMessagesRequest, ApiError> {
    // limit above 100 is capped by the control plane.
    let limit = q.positive("limit")?;
    let direction = match q.one_of("direction", &DIRECTIONS)? {
        None => MessageDirection::Unspecified,
        Some(0) => MessageDirection::Inbound,
        Some(_) => MessageDirection::Outbound,
    };
    let status = q.one_of("status", &STATUSES)?.map_or(0, |i| {
        [
            MessageStatus::Pending,
            MessageStatus::Sent,
            MessageStatus::Delivered,
            MessageStatus::Read,
            MessageStatus::Failed,
        ][i] as i32
    });
    let kind = q.one_of("type", &TYPES)?.map_or(0, |i| {
        [
            MessageType::Text,
            MessageType::Image,
            MessageType::Document,
            MessageType::Audio,
            MessageType::Video,
            MessageType::Sticker,
            MessageType::Location,
            MessageType::Contact,
        ][i] as i32
    });
    Ok(ListMessagesRequest {
        session_id: id.to_owned(),
        limit,
        cursor: q.text("cursor", 256)?.unwrap_or_default(),
        direction: direction as i32,
        status,
        r#type: kind,
        peer: q.text("peer", 128)?.unwrap_or_default(),
        from: q.time("from")?,
        to: q.time("to")?,
    })
}

pub(crate) async fn list(ctx: &Ctx, id: &str) -> Result<Reply, ApiError> {
    let q = Query::parse(ctx.query.as_deref())?;
    let request = list_request(id, &q)?;
    ctx.require_authorization()?;
    let r = ctx
        .control_plane()
        .history()
        .list_messages(ctx.call.request(request))
        .await
        .map_err(|s| call_failed("MessageHistoryService.ListMessages", &s))?
        .into_inner();
    Ok(Reply::ok(&MessageListDto::from(&r)))
}

pub(crate) async fn get(ctx: &Ctx, id: &str, message_id: &str) -> Result<Reply, ApiError> {
    ctx.require_authorization()?;
    let request = GetMessageRequest { session_id: id.to_owned(), message_id: message_id.to_owned() };
    let m = ctx
        .control_plane()
        .history()
        .get_message(ctx.call.request(request))
        .await
        .map_err(|s| call_failed("MessageHistoryService.GetMessage", &s))?
        .into_inner();
    Ok(Reply::ok(&MessageDto::from(&m)))
}
