//! `POST sessions/{sessionId}/send`: the hot path. Authenticated by the
//! session's API key, which the control plane checks; `Idempotency-Key` is forwarded.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::contract::limits::{MAX_CHECK_NUMBERS, MAX_READ_IDS};
use wagate_proto::error::ApiError;
use wagate_proto::v1::{
    CheckNumbersRequest, DeleteMessageRequest, EditMessageRequest, MarkReadRequest, MessageContent,
    MessageType, PresenceState, ReactRequest, SendPresenceRequest, SendRequest, SendResponse,
};

use super::{Answer, AppState, CallContext, Reply};
use crate::json::{Json, Validate, require};
use crate::model::{Ts, message_status_name};
use crate::openapi::Envelope;
use crate::params::{PathIds, SessionId};
use crate::routes::media::MediaDto;
use axum::extract::FromRequest;

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(send))
        .routes(routes!(check_numbers))
        .routes(routes!(mark_read))
        .routes(routes!(send_presence))
        .routes(routes!(react))
}

/// `POST sessions/{id}/send`. Its schema is written by hand
/// ([`crate::schema::send_body`]): one `oneOf` branch per `type`, each
/// with the fields that type requires.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendBody {
    /// Phone number (digits, with country code) or a JID.
    pub to: String,
    /// text (default), image, document, audio, video, sticker, location or contact (any case).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub media_url: Option<String>,
    #[serde(default)]
    pub caption: Option<String>,
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub vcard: Option<String>,
    /// Reply to this message of the session (wagate or WhatsApp id).
    #[serde(default)]
    pub quoted_message_id: Option<String>,
    /// People mentioned (phone numbers or JIDs).
    #[serde(default)]
    pub mentions: Option<Vec<String>>,
    /// The file itself, base64 (standard alphabet; a `data:` URL prefix is
    /// allowed), instead of `mediaUrl`; the JSON body is then limited to
    /// `WAGATE_EDGE_BASE64_BODY_LIMIT_BYTES` (16 MiB).
    #[serde(default)]
    pub media_base64: Option<String>,
    /// The type the client declares for `mediaBase64` (the bytes decide).
    #[serde(default)]
    pub mime_type: Option<String>,
    /// Set when a multipart `file` part was uploaded (not a JSON field).
    #[serde(skip)]
    pub media_id: Option<String>,
}

impl utoipa::PartialSchema for SendBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::schema::send_body()
    }
}

impl utoipa::ToSchema for SendBody {}

const MESSAGE_TYPES: &str = "text, image, document, audio, video, sticker, location, contact";

impl Validate for SendBody {
    fn validate(&self) -> Result<(), ApiError> {
        require("to", &self.to)?;
        let kind = self.message_type()?;
        let missing =
            |name: &'static str, what: &str| ApiError::invalid(name, format!("{name} is required {what}"));
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        match kind {
            MessageType::Text if blank(&self.message) => {
                return Err(missing("message", "for a text message"));
            }
            MessageType::Image
            | MessageType::Video
            | MessageType::Audio
            | MessageType::Document
            | MessageType::Sticker => {
                let sources = [!blank(&self.media_url), !blank(&self.media_base64), self.media_id.is_some()];
                match sources.iter().filter(|s| **s).count() {
                    0 => {
                        return Err(missing(
                            "mediaUrl",
                            "(or mediaBase64, or a multipart file) for a media message",
                        ));
                    }
                    1 => {}
                    _ => {
                        return Err(ApiError::invalid(
                            "mediaUrl",
                            "give the media once: mediaUrl, mediaBase64 or a multipart file",
                        ));
                    }
                }
            }
            MessageType::Location => {
                let lat = self.latitude.ok_or_else(|| missing("latitude", "for a location message"))?;
                let lon = self.longitude.ok_or_else(|| missing("longitude", "for a location message"))?;
                if !(-90.0..=90.0).contains(&lat) {
                    return Err(ApiError::invalid("latitude", "latitude must be between -90 and 90"));
                }
                if !(-180.0..=180.0).contains(&lon) {
                    return Err(ApiError::invalid("longitude", "longitude must be between -180 and 180"));
                }
            }
            MessageType::Contact if blank(&self.phone) && blank(&self.vcard) => {
                return Err(missing("phone", "(or vcard) for a contact message"));
            }
            _ => {}
        }
        Ok(())
    }
}

impl SendBody {
    /// The message type named by `type` (any case; `text` when absent).
    pub fn message_type(&self) -> Result<MessageType, ApiError> {
        let Some(kind) = self.kind.as_deref() else { return Ok(MessageType::Text) };
        let kind = kind.trim();
        const TYPES: [(&str, MessageType); 8] = [
            ("text", MessageType::Text),
            ("image", MessageType::Image),
            ("document", MessageType::Document),
            ("audio", MessageType::Audio),
            ("video", MessageType::Video),
            ("sticker", MessageType::Sticker),
            ("location", MessageType::Location),
            ("contact", MessageType::Contact),
        ];
        TYPES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(kind))
            .map(|&(_, t)| t)
            .ok_or_else(|| ApiError::invalid("type", format!("type must be one of {MESSAGE_TYPES}")))
    }

    /// The gRPC request for sending this body through `session_id`.
    pub fn into_request(self, session_id: &str) -> Result<SendRequest, ApiError> {
        let kind = self.message_type()?;
        Ok(SendRequest {
            session_id: session_id.to_owned(),
            to: self.to,
            content: Some(MessageContent {
                r#type: kind as i32,
                text: self.message.unwrap_or_default(),
                media_url: self.media_url,
                caption: self.caption,
                filename: self.filename,
                latitude: self.latitude,
                longitude: self.longitude,
                name: self.name,
                phone: self.phone,
                vcard: self.vcard,
                quoted_message_id: self.quoted_message_id.filter(|q| !q.trim().is_empty()),
                quoted_participant: None,
                mentions: self.mentions.unwrap_or_default(),
                media_id: self.media_id,
                ..Default::default()
            }),
        })
    }
}

/// Answer of a send.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendDto<'a> {
    pub message_id: &'a str,
    /// PENDING, SENT or FAILED.
    pub status: &'static str,
    pub to: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    pub created_at: Option<Ts>,
    /// The file uploaded with the send (`mediaBase64` or multipart `file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaDto>,
}

impl<'a> From<&'a SendResponse> for SendDto<'a> {
    fn from(r: &'a SendResponse) -> Self {
        SendDto {
            message_id: &r.message_id,
            status: message_status_name(r.status),
            to: &r.to,
            error: r.error.as_deref(),
            created_at: Ts::from_proto(r.created_at.as_ref()),
            media: None,
        }
    }
}

#[utoipa::path(post, path = "/sessions/{sessionId}/send", tag = "messages",
    summary = "Send a message with the session's API key (Idempotency-Key honoured)",
    security(("apiKey" = []), ("bearer" = [])),
    params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64),
        ("Idempotency-Key" = Option<String>, Header, description = "makes a retried send safe: the same key answers the first send's message")),
    request_body = SendBody,
    responses((status = 200, body = Envelope<SendDto>), (status = 409, body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn send(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    SessionId(session_id): SessionId,
    req: axum::extract::Request,
) -> Answer {
    let (body, media) = if crate::routes::send_form::is_multipart(req.headers()) {
        crate::routes::send_form::read(&state, &call, &session_id, req).await?
    } else {
        let Json(mut body) = Json::<SendBody>::from_request(req, &state).await?;
        call.require_api_key()?;
        let media = match body.media_base64.take().filter(|b| !b.trim().is_empty()) {
            Some(b64) => {
                let info =
                    crate::routes::send_form::upload_base64(&state, &call, &session_id, &body, &b64).await?;
                body.media_id = Some(info.id.clone());
                Some(info)
            }
            None => None,
        };
        (body, media)
    };
    let request = body.into_request(&session_id)?;
    let reply =
        call.unary("MessageService.Send", state.control_plane.messages().send(call.request(request))).await?;
    let mut dto = SendDto::from(&reply);
    dto.media = media.as_ref().map(MediaDto::from);
    Ok(Reply::ok(&dto))
}

/// `POST sessions/{id}/contacts/check`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"numbers": ["+6281234567891", "6281234567890"]}))]
pub struct CheckNumbersBody {
    /// 1 to 50 phone numbers in international format (digits with country
    /// code; `+`, spaces, `-`, `.` and brackets are ignored).
    #[schema(min_items = 1, max_items = 50)]
    pub numbers: Vec<String>,
}

impl Validate for CheckNumbersBody {
    fn validate(&self) -> Result<(), ApiError> {
        if self.numbers.is_empty() || self.numbers.len() > MAX_CHECK_NUMBERS {
            return Err(ApiError::invalid(
                "numbers",
                format!("numbers must hold 1 to {MAX_CHECK_NUMBERS} phone numbers"),
            ));
        }
        Ok(())
    }
}

/// One number's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NumberCheckDto<'a> {
    /// The number, as digits.
    pub number: &'a str,
    /// Whether it is on WhatsApp.
    pub exists: bool,
    /// Its WhatsApp JID, when it exists.
    pub jid: Option<&'a str>,
}

#[utoipa::path(post, path = "/sessions/{sessionId}/contacts/check", tag = "messages",
    summary = "Check which numbers are on WhatsApp, through the session's phone",
    description = "Asked of the worker that runs the session; a worker whose driver cannot answer it gives 501 NOT_SUPPORTED_BY_WORKER.",
    security(("apiKey" = []), ("bearer" = [])),
    params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64)),
    request_body = CheckNumbersBody,
    responses((status = 200, body = Envelope<Vec<NumberCheckDto>>),
        (status = 409, description = "the session is not connected", body = crate::openapi::ErrorEnvelope),
        (status = 501, description = "the session's worker does not support number checks", body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn check_numbers(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    SessionId(session_id): SessionId,
    Json(body): Json<CheckNumbersBody>,
) -> Answer {
    call.require_api_key()?;
    let request = CheckNumbersRequest { session_id, numbers: body.numbers };
    let reply = call
        .unary(
            "MessageService.CheckNumbers",
            state.control_plane.messages().check_numbers(call.request(request)),
        )
        .await?;
    let numbers: Vec<NumberCheckDto> = reply
        .numbers
        .iter()
        .map(|n| NumberCheckDto { number: &n.number, exists: n.exists, jid: n.jid.as_deref() })
        .collect();
    Ok(Reply::ok(&numbers))
}

/// `POST sessions/{id}/read`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"chatId": "6281234567891@s.whatsapp.net", "messageIds": ["3EB0C767D26A1D2E5A41"]}))]
pub struct MarkReadBody {
    /// The chat: a phone number or a chat JID (…@s.whatsapp.net, …@g.us).
    pub chat_id: String,
    /// 1 to 100 WhatsApp message ids (`waMessageId` of inbound messages) of that chat.
    #[schema(min_items = 1, max_items = 100)]
    pub message_ids: Vec<String>,
}

impl Validate for MarkReadBody {
    fn validate(&self) -> Result<(), ApiError> {
        require("chatId", &self.chat_id)?;
        if self.message_ids.is_empty() || self.message_ids.len() > MAX_READ_IDS {
            return Err(ApiError::invalid(
                "messageIds",
                format!("messageIds must hold 1 to {MAX_READ_IDS} message ids"),
            ));
        }
        Ok(())
    }
}

/// Answer of a read receipt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MarkReadDto<'a> {
    pub chat_id: &'a str,
    pub marked: u32,
}

#[utoipa::path(post, path = "/sessions/{sessionId}/read", tag = "messages",
    summary = "Mark inbound messages of a chat read (blue ticks for the sender)",
    security(("apiKey" = []), ("bearer" = [])),
    params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64)),
    request_body = MarkReadBody,
    responses((status = 200, body = Envelope<MarkReadDto>),
        (status = 409, description = "the session is not connected", body = crate::openapi::ErrorEnvelope),
        (status = 501, description = "the session's worker does not support read receipts", body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn mark_read(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    SessionId(session_id): SessionId,
    Json(body): Json<MarkReadBody>,
) -> Answer {
    call.require_api_key()?;
    let request = MarkReadRequest { session_id, chat_id: body.chat_id, message_ids: body.message_ids };
    let reply = call
        .unary("MessageService.MarkRead", state.control_plane.messages().mark_read(call.request(request)))
        .await?;
    Ok(Reply::ok(&MarkReadDto { chat_id: &reply.chat_id, marked: reply.marked }))
}

const PRESENCE_STATES: [(&str, PresenceState); 5] = [
    ("composing", PresenceState::Composing),
    ("recording", PresenceState::Recording),
    ("paused", PresenceState::Paused),
    ("available", PresenceState::Available),
    ("unavailable", PresenceState::Unavailable),
];

fn presence_name(state: i32) -> &'static str {
    PRESENCE_STATES.iter().find(|(_, s)| *s as i32 == state).map_or("unknown", |(n, _)| n)
}

/// `POST sessions/{id}/presence`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"chatId": "6281234567891", "state": "composing"}))]
pub struct PresenceBody {
    /// The chat (phone number or chat JID); required for composing, recording and paused.
    #[serde(default)]
    pub chat_id: Option<String>,
    /// composing, recording, paused (in the chat) or available, unavailable (global).
    #[schema(pattern = "^(composing|recording|paused|available|unavailable)$")]
    pub state: String,
}

impl Validate for PresenceBody {
    fn validate(&self) -> Result<(), ApiError> {
        self.presence().map(|_| ())
    }
}

impl PresenceBody {
    fn presence(&self) -> Result<PresenceState, ApiError> {
        PRESENCE_STATES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(self.state.trim()))
            .map(|&(_, s)| s)
            .ok_or_else(|| {
                ApiError::invalid(
                    "state",
                    "state must be one of composing, recording, paused, available, unavailable",
                )
            })
    }
}

/// Answer of a presence.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresenceDto<'a> {
    /// The chat JID (absent for a global presence).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub chat_id: &'a str,
    pub state: &'static str,
}

#[utoipa::path(post, path = "/sessions/{sessionId}/presence", tag = "messages",
    summary = "Show a presence: typing or recording in a chat, or online/offline",
    security(("apiKey" = []), ("bearer" = [])),
    params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64)),
    request_body = PresenceBody,
    responses((status = 200, body = Envelope<PresenceDto>),
        (status = 409, description = "the session is not connected", body = crate::openapi::ErrorEnvelope),
        (status = 501, description = "the session's worker does not support presence", body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn send_presence(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    SessionId(session_id): SessionId,
    Json(body): Json<PresenceBody>,
) -> Answer {
    call.require_api_key()?;
    let presence = body.presence()?;
    let request =
        SendPresenceRequest { session_id, chat_id: body.chat_id.unwrap_or_default(), state: presence as i32 };
    let reply = call
        .unary(
            "MessageService.SendPresence",
            state.control_plane.messages().send_presence(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&PresenceDto { chat_id: &reply.chat_id, state: presence_name(reply.state) }))
}

/// `PUT sessions/{id}/messages/{messageId}/reaction`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"emoji": "👍"}))]
pub struct ReactionBody {
    /// One emoji; `""` removes the session's reaction.
    pub emoji: String,
}

impl Validate for ReactionBody {}

/// Answer of a reaction.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReactionDto<'a> {
    /// wagate id of the message reacted to.
    pub message_id: &'a str,
    /// The emoji (empty: removed).
    pub emoji: &'a str,
}

#[utoipa::path(put, path = "/sessions/{sessionId}/messages/{messageId}/reaction", tag = "messages",
    summary = "React to a message (sent or received) with an emoji; an empty emoji removes the reaction",
    security(("apiKey" = []), ("bearer" = [])),
    params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64),
        ("messageId" = String, Path, description = "wagate message id, or the WhatsApp id of a message of the session", pattern = "^[A-Za-z0-9._-]{1,64}$", max_length = 64)),
    request_body = ReactionBody,
    responses((status = 200, body = Envelope<ReactionDto>),
        (status = 404, description = "no such message in the session (NOT_FOUND)", body = crate::openapi::ErrorEnvelope),
        (status = 409, description = "the session is not connected, or the message has not reached WhatsApp (MESSAGE_NOT_SENT)", body = crate::openapi::ErrorEnvelope),
        (status = 501, description = "the session's worker does not support reactions", body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn react(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    ids: PathIds,
    Json(body): Json<ReactionBody>,
) -> Answer {
    let request = ReactRequest {
        session_id: ids.session()?,
        message_id: ids.id("messageId", "message")?,
        emoji: body.emoji,
    };
    call.require_api_key()?;
    let reply = call
        .unary("MessageService.React", state.control_plane.messages().react(call.request(request)))
        .await?;
    Ok(Reply::ok(&ReactionDto { message_id: &reply.message_id, emoji: &reply.emoji }))
}

/// `PATCH sessions/{id}/messages/{messageId}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"text": "see you at 6 (not 5)"}))]
pub struct EditBody {
    /// The new text.
    #[schema(min_length = 1, max_length = 4096)]
    pub text: String,
}

impl Validate for EditBody {
    fn validate(&self) -> Result<(), ApiError> {
        require("text", &self.text)
    }
}

/// Answer of an edit or a deletion.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangedDto<'a> {
    pub message_id: &'a str,
    /// The new text (an edit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Ts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Ts>,
}

#[utoipa::path(patch, path = "/sessions/{sessionId}/messages/{messageId}", tag = "messages",
    summary = "Edit the text of a text message the session sent (WhatsApp allows 15 minutes)",
    security(("apiKey" = []), ("bearer" = [])),
    params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64),
        ("messageId" = String, Path, description = "wagate message id, or the WhatsApp id of a message of the session", pattern = "^[A-Za-z0-9._-]{1,64}$", max_length = 64)),
    request_body = EditBody,
    responses((status = 200, body = Envelope<ChangedDto>),
        (status = 404, description = "no such message in the session (NOT_FOUND)", body = crate::openapi::ErrorEnvelope),
        (status = 409, description = "not a text message the session sent, past the edit window or deleted (MESSAGE_NOT_EDITABLE); not on WhatsApp yet (MESSAGE_NOT_SENT); session not connected", body = crate::openapi::ErrorEnvelope),
        (status = 501, description = "the session's worker does not support edits", body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn edit(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    ids: PathIds,
    Json(body): Json<EditBody>,
) -> Answer {
    let request = EditMessageRequest {
        session_id: ids.session()?,
        message_id: ids.id("messageId", "message")?,
        text: body.text,
    };
    call.require_api_key()?;
    let r = call
        .unary(
            "MessageService.EditMessage",
            state.control_plane.messages().edit_message(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&ChangedDto {
        message_id: &r.message_id,
        text: Some(&r.text),
        edited_at: Ts::from_proto(r.edited_at.as_ref()),
        deleted_at: None,
    }))
}

#[utoipa::path(delete, path = "/sessions/{sessionId}/messages/{messageId}", tag = "messages",
    summary = "Delete a message the session sent, for everyone (within 48 hours of sending)",
    security(("apiKey" = []), ("bearer" = [])),
    params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64),
        ("messageId" = String, Path, description = "wagate message id, or the WhatsApp id of a message of the session", pattern = "^[A-Za-z0-9._-]{1,64}$", max_length = 64)),
    responses((status = 200, body = Envelope<ChangedDto>),
        (status = 404, description = "no such message in the session (NOT_FOUND)", body = crate::openapi::ErrorEnvelope),
        (status = 409, description = "not a message the session sent, past the window or already deleted (MESSAGE_NOT_EDITABLE); not on WhatsApp yet (MESSAGE_NOT_SENT); session not connected", body = crate::openapi::ErrorEnvelope),
        (status = 501, description = "the session's worker does not support deleting", body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn delete(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let request =
        DeleteMessageRequest { session_id: ids.session()?, message_id: ids.id("messageId", "message")? };
    call.require_api_key()?;
    let r = call
        .unary(
            "MessageService.DeleteMessage",
            state.control_plane.messages().delete_message(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&ChangedDto {
        message_id: &r.message_id,
        text: None,
        edited_at: None,
        deleted_at: Ts::from_proto(r.deleted_at.as_ref()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;
    use wagate_proto::error::ErrorCode;

    fn send(body: &str) -> Result<SendBody, ApiError> {
        parse::<SendBody>(body.as_bytes())
    }

    #[test]
    fn send_type_is_case_insensitive_and_defaults_to_text() {
        for t in ["text", "TEXT", "Text"] {
            let b = send(&format!(r#"{{"to":"62811","type":"{t}","message":"hi"}}"#)).unwrap();
            assert_eq!(b.message_type().unwrap(), MessageType::Text);
        }
        let b = send(r#"{"to":"62811","message":"hi"}"#).unwrap();
        let req = b.into_request("s1").unwrap();
        assert_eq!(req.session_id, "s1");
        let content = req.content.unwrap();
        assert_eq!(content.r#type, MessageType::Text as i32);
        assert_eq!(content.text, "hi");
        let b = send(r#"{"to":"62811","type":"IMAGE","mediaUrl":"https://x/y.png","caption":"c"}"#).unwrap();
        let content = b.into_request("s1").unwrap().content.unwrap();
        assert_eq!(content.r#type, MessageType::Image as i32);
        assert_eq!(content.media_url.as_deref(), Some("https://x/y.png"));
    }

    #[test]
    fn send_validation_names_fields() {
        for (body, field) in [
            (r#"{"message":"hi"}"#, "to"),
            (r#"{"to":"","message":"hi"}"#, "to"),
            (r#"{"to":628,"message":"hi"}"#, "to"),
            (r#"{"to":"1","type":"fax","message":"hi"}"#, "type"),
            (r#"{"to":"1","type":7,"message":"hi"}"#, "type"),
            (r#"{"to":"1","type":"text"}"#, "message"),
            (r#"{"to":"1","type":"image"}"#, "mediaUrl"),
            (r#"{"to":"1","type":"location","latitude":"x","longitude":1}"#, "latitude"),
            (r#"{"to":"1","type":"location","longitude":1}"#, "latitude"),
            (r#"{"to":"1","type":"location","latitude":1,"longitude":200}"#, "longitude"),
            (r#"{"to":"1","type":"contact"}"#, "phone"),
        ] {
            let e = send(body).unwrap_err();
            assert_eq!(e.code, ErrorCode::ValidationError, "{body}");
            assert_eq!(e.field.as_deref(), Some(field), "{body}: {}", e.message);
        }
        assert!(send(r#"{"to":"1","type":"location","latitude":-6.2,"longitude":106.8}"#).is_ok());
    }
}
