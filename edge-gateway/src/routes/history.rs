//! `GET /sessions/{sessionId}/messages` (filters + cursor) and
//! `GET /sessions/{sessionId}/messages/{messageId}` (owner's JWT).

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::v1::{
    self, GetMessageRequest, ListMessagesRequest, MessageDirection, MessageStatus, MessageType,
};

use super::{Answer, AppState, CallContext, Reply};
use crate::model::{Ts, direction_name, message_status_name, message_type_name};
use crate::names;
use crate::openapi::Envelope;
use crate::params::{Names, PathIds, Query, SessionId, one_of, positive, text, time};

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        // GET here, PATCH (edit) and DELETE (for everyone) with the other message commands
        .routes(routes!(get, super::messages::edit, super::messages::delete))
}

names!(Direction { Inbound = "INBOUND", Outbound = "OUTBOUND" });
names!(Status { Pending = "PENDING", Sent = "SENT", Delivered = "DELIVERED", Read = "READ", Failed = "FAILED" });
names!(Kind {
    Text = "TEXT", Image = "IMAGE", Document = "DOCUMENT", Audio = "AUDIO", Video = "VIDEO",
    Sticker = "STICKER", Location = "LOCATION", Contact = "CONTACT",
});

/// Filters and cursor of the history.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Page size, default 50 (values above 100 are capped at 100).
    #[serde(default, deserialize_with = "positive")]
    #[param(minimum = 1, maximum = 2147483647)]
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[serde(default, deserialize_with = "text::<_, 256>")]
    #[param(max_length = 256)]
    pub cursor: Option<String>,
    #[serde(default, deserialize_with = "one_of")]
    #[param(schema_with = Direction::schema)]
    pub direction: Option<Direction>,
    #[serde(default, deserialize_with = "one_of")]
    #[param(schema_with = Status::schema)]
    pub status: Option<Status>,
    #[serde(default, rename = "type", deserialize_with = "one_of")]
    #[param(rename = "type", schema_with = Kind::schema)]
    pub kind: Option<Kind>,
    /// Phone number or JID of the other party (to or from).
    #[serde(default, deserialize_with = "text::<_, 128>")]
    #[param(schema_with = crate::schema::query_peer)]
    pub peer: Option<String>,
    /// RFC 3339, inclusive.
    #[serde(default, deserialize_with = "time")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<prost_types::Timestamp>,
    /// RFC 3339, inclusive.
    #[serde(default, deserialize_with = "time")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<prost_types::Timestamp>,
}

impl HistoryParams {
    pub fn into_request(self, session_id: String) -> ListMessagesRequest {
        let direction = match self.direction {
            None => MessageDirection::Unspecified,
            Some(Direction::Inbound) => MessageDirection::Inbound,
            Some(Direction::Outbound) => MessageDirection::Outbound,
        };
        let status = self.status.map_or(0, |s| match s {
            Status::Pending => MessageStatus::Pending,
            Status::Sent => MessageStatus::Sent,
            Status::Delivered => MessageStatus::Delivered,
            Status::Read => MessageStatus::Read,
            Status::Failed => MessageStatus::Failed,
        } as i32);
        let kind = self.kind.map_or(0, |k| match k {
            Kind::Text => MessageType::Text,
            Kind::Image => MessageType::Image,
            Kind::Document => MessageType::Document,
            Kind::Audio => MessageType::Audio,
            Kind::Video => MessageType::Video,
            Kind::Sticker => MessageType::Sticker,
            Kind::Location => MessageType::Location,
            Kind::Contact => MessageType::Contact,
        } as i32);
        ListMessagesRequest {
            session_id,
            limit: self.limit.unwrap_or(0),
            cursor: self.cursor.unwrap_or_default(),
            direction: direction as i32,
            status,
            r#type: kind,
            peer: self.peer.unwrap_or_default(),
            from: self.from,
            to: self.to,
        }
    }
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
    /// The stored file (uploaded to be sent, or received): download it at `url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<crate::routes::media::MediaRefDto>,
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
    /// The id WhatsApp gave it (once sent, or received): what reactions,
    /// replies and receipts name.
    pub wa_message_id: Option<String>,
    /// WhatsApp id of the message this one replies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quoted_message_id: Option<String>,
    /// JIDs mentioned.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    /// When the session edited it (`message` is the new text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Ts>,
    /// When it was deleted for everyone (`message` is then empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Ts>,
}

impl From<&v1::Message> for MessageDto {
    fn from(m: &v1::Message) -> Self {
        let c = m.content.clone().unwrap_or_default();
        let media = crate::routes::media::MediaRefDto::of(&c);
        MessageDto {
            id: m.id.clone(),
            message_id: m.id.clone(),
            session_id: m.session_id.clone(),
            direction: direction_name(m.direction),
            from: m.from.clone(),
            to: m.to.clone(),
            kind: message_type_name(c.r#type),
            message: c.text,
            media,
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
            wa_message_id: m.wa_message_id.clone(),
            quoted_message_id: c.quoted_message_id,
            mentions: c.mentions,
            edited_at: Ts::from_proto(m.edited_at.as_ref()),
            deleted_at: Ts::from_proto(m.deleted_at.as_ref()),
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

#[utoipa::path(get, path = "/sessions/{sessionId}/messages", tag = "messages",
    summary = "Message history, newest first, cursor-paged",
    security(("bearer" = []), ("apiKey" = [])),
    params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64), HistoryParams),
    responses((status = 200, body = Envelope<MessageListDto>)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    SessionId(id): SessionId,
    Query(q): Query<HistoryParams>,
) -> Answer {
    let request = q.into_request(id);
    call.require_api_key()?;
    let r = call
        .unary(
            "MessageHistoryService.ListMessages",
            state.control_plane.history().list_messages(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&MessageListDto::from(&r)))
}

#[utoipa::path(get, path = "/sessions/{sessionId}/messages/{messageId}", tag = "messages", summary = "One message",
    security(("bearer" = []), ("apiKey" = [])),
    params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64),
        ("messageId" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$", max_length = 64)),
    responses((status = 200, body = Envelope<MessageDto>)))]
pub(crate) async fn get(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let request =
        GetMessageRequest { session_id: ids.session()?, message_id: ids.id("messageId", "message")? };
    call.require_api_key()?;
    let m = call
        .unary(
            "MessageHistoryService.GetMessage",
            state.control_plane.history().get_message(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&MessageDto::from(&m)))
}
