//! MessageHistoryService: a session's messages for its owner (or its own
//! API key), newest first,
//! filtered (direction, status, type, peer, time range) and paged by an
//! opaque cursor over `(created_at, id)` — stable under concurrent inserts,
//! no OFFSET scans.

use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};
use wagate_proto::error::ErrorCode;
use wagate_proto::time::{from_proto, opt_to_proto, to_proto};
use wagate_proto::v1::{self, message_history_service_server::MessageHistoryService};

use crate::convert;
use crate::error::{CpError, CpResult, api, invalid};
use crate::persistence::enums::{MessageDirection, MessageType};
use crate::persistence::messages::{self as message_rows, HistoryFilter, Message};
use crate::persistence::sessions::Session;
use crate::services::readable_session;
use crate::state::SharedState;
use crate::validation;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 100;

pub struct MessageHistoryApi {
    state: SharedState,
}

/// A position in the history: the last row of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: String,
}

impl Cursor {
    /// Opaque text: hex of `<unix nanos>.<id>`.
    pub fn encode(&self) -> String {
        let nanos = self.created_at.timestamp_nanos_opt().unwrap_or_default();
        hex::encode(format!("{nanos}.{}", self.id))
    }

    pub fn decode(raw: &str) -> Result<Cursor, CpError> {
        let bad = || invalid("cursor", "cursor is not valid; pass nextCursor of the previous page");
        if raw.len() > 256 {
            return Err(bad());
        }
        let bytes = hex::decode(raw.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let (nanos, id) = text.split_once('.').ok_or_else(bad)?;
        let nanos: i64 = nanos.parse().map_err(|_| bad())?;
        let id = validation::lookup_id(id).ok_or_else(bad)?.to_owned();
        Ok(Cursor { created_at: DateTime::from_timestamp_nanos(nanos), id })
    }
}

pub fn message(m: &Message) -> v1::Message {
    let meta: Option<serde_json::Value> = m.metadata.as_deref().and_then(|s| serde_json::from_str(s).ok());
    let get_f = |k: &str| meta.as_ref().and_then(|v| v.get(k)).and_then(serde_json::Value::as_f64);
    let get_s = |k: &str| meta.as_ref().and_then(|v| v.get(k)).and_then(|v| v.as_str()).map(str::to_owned);
    let media = meta.as_ref().and_then(|v| v.get("media"));
    let media_s = |k: &str| media.and_then(|v| v.get(k)).and_then(|v| v.as_str()).map(str::to_owned);
    let kind = match m.message_type {
        MessageType::Text => v1::MessageType::Text,
        MessageType::Image => v1::MessageType::Image,
        MessageType::Document => v1::MessageType::Document,
        MessageType::Audio => v1::MessageType::Audio,
        MessageType::Video => v1::MessageType::Video,
        MessageType::Sticker => v1::MessageType::Sticker,
        MessageType::Location => v1::MessageType::Location,
        MessageType::Contact => v1::MessageType::Contact,
    };
    v1::Message {
        id: m.id.clone(),
        session_id: m.session_id.clone(),
        direction: match m.direction {
            MessageDirection::Inbound => v1::MessageDirection::Inbound,
            MessageDirection::Outbound => v1::MessageDirection::Outbound,
        } as i32,
        from: m.from_number.clone(),
        to: m.to_number.clone(),
        content: Some(v1::MessageContent {
            r#type: kind as i32,
            text: m.content.clone(),
            media_url: m.media_url.clone(),
            caption: m.caption.clone(),
            filename: m.filename.clone(),
            latitude: get_f("latitude"),
            longitude: get_f("longitude"),
            name: get_s("name"),
            phone: get_s("phone"),
            vcard: get_s("vcard"),
            media_id: media_s("id"),
            mime_type: media_s("mimeType"),
            media_size: media.and_then(|v| v.get("size")).and_then(serde_json::Value::as_u64),
            media_sha256: media_s("sha256"),
        }),
        status: convert::message_status_to_proto(m.status) as i32,
        error: m.error_message.clone(),
        sent_at: opt_to_proto(m.sent_at),
        delivered_at: opt_to_proto(m.delivered_at),
        read_at: opt_to_proto(m.read_at),
        created_at: Some(to_proto(m.created_at)),
    }
}

impl MessageHistoryApi {
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }

    async fn list(&self, s: Session, req: v1::ListMessagesRequest) -> CpResult<v1::ListMessagesResponse> {
        let limit = if req.limit == 0 { DEFAULT_LIMIT } else { req.limit.min(MAX_LIMIT) };
        let mut filter = HistoryFilter::default();
        match v1::MessageDirection::try_from(req.direction) {
            Ok(v1::MessageDirection::Unspecified) => {}
            Ok(v1::MessageDirection::Inbound) => {
                filter.direction = Some(MessageDirection::Inbound);
            }
            Ok(v1::MessageDirection::Outbound) => {
                filter.direction = Some(MessageDirection::Outbound);
            }
            Err(_) => return Err(invalid("direction", "direction must be INBOUND or OUTBOUND")),
        }
        if req.status != 0 {
            let status = v1::MessageStatus::try_from(req.status)
                .ok()
                .and_then(convert::message_status_from_proto)
                .ok_or_else(|| {
                    invalid("status", "status must be PENDING, SENT, DELIVERED, READ or FAILED")
                })?;
            filter.status = Some(status);
        }
        if req.r#type != 0 {
            let kind = v1::MessageType::try_from(req.r#type)
                .ok()
                .and_then(convert::message_type_from_proto)
                .ok_or_else(|| invalid("type", "type is not a message type"))?;
            filter.kind = Some(kind);
        }
        let peer = req.peer.trim();
        if !peer.is_empty() {
            let jid = validation::recipient(peer).map_err(|_| {
                invalid("peer", "peer must be a phone number in international format or a JID")
            })?;
            let digits = jid.split('@').next().unwrap_or_default().to_owned();
            filter.peer = Some((jid, digits));
        }
        let from = req
            .from
            .as_ref()
            .map(|t| from_proto(t).ok_or_else(|| invalid("from", "from is not a valid time")));
        let from = from.transpose()?;
        let to =
            req.to.as_ref().map(|t| from_proto(t).ok_or_else(|| invalid("to", "to is not a valid time")));
        let to = to.transpose()?;
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(invalid("from", "from must not be after to"));
        }
        filter.from = from;
        filter.to = to;
        if !req.cursor.trim().is_empty() {
            let c = Cursor::decode(&req.cursor)?;
            filter.before = Some((c.created_at, c.id));
        }
        let mut rows = message_rows::history(&self.state.db, &s.id, filter, u64::from(limit) + 1).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = match rows.last() {
            Some(last) if more => Cursor { created_at: last.created_at, id: last.id.clone() }.encode(),
            _ => String::new(),
        };
        Ok(v1::ListMessagesResponse { messages: rows.iter().map(message).collect(), next_cursor, limit })
    }

    async fn get(&self, s: Session, req: v1::GetMessageRequest) -> CpResult<v1::Message> {
        let not_found = || api(ErrorCode::NotFound, "message not found");
        let id = validation::lookup_id(&req.message_id).ok_or_else(not_found)?;
        let m = message_rows::by_id_in_session(&self.state.db, id, &s.id).await?.ok_or_else(not_found)?;
        Ok(message(&m))
    }
}

#[tonic::async_trait]
impl MessageHistoryService for MessageHistoryApi {
    async fn list_messages(
        &self,
        request: Request<v1::ListMessagesRequest>,
    ) -> Result<Response<v1::ListMessagesResponse>, Status> {
        let s = readable_session(&self.state, request.metadata(), &request.get_ref().session_id).await?;
        Ok(Response::new(self.list(s, request.into_inner()).await?))
    }

    async fn get_message(
        &self,
        request: Request<v1::GetMessageRequest>,
    ) -> Result<Response<v1::Message>, Status> {
        let s = readable_session(&self.state, request.metadata(), &request.get_ref().session_id).await?;
        Ok(Response::new(self.get(s, request.into_inner()).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        let c = Cursor { created_at: Utc::now(), id: "0193-abc_1".into() };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "zz", "00", &hex::encode("x.y"), &hex::encode("1.a b"), &"a".repeat(300)] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }
}
