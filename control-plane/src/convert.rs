//! Rows → protobuf messages, and enum mappings between the two.

use wagate_proto::time::{opt_to_proto, to_proto};
use wagate_proto::v1;

use crate::persistence::enums::{MessageStatus, MessageType, SessionStatus, UserRole, UserTier};
use crate::persistence::sessions::Session;
use crate::persistence::users::User;

pub fn user(u: &User) -> v1::User {
    v1::User {
        id: u.id.clone(),
        name: u.name.clone(),
        email: u.email.clone(),
        role: match u.role {
            UserRole::User => v1::UserRole::User,
            UserRole::Administrator => v1::UserRole::Administrator,
        } as i32,
        tier: match u.tier {
            UserTier::Basic => v1::UserTier::Basic,
            UserTier::Pro => v1::UserTier::Pro,
            UserTier::Max => v1::UserTier::Max,
        } as i32,
        is_active: u.is_active,
        last_login_at: opt_to_proto(u.last_login_at),
        created_at: Some(to_proto(u.created_at)),
        updated_at: Some(to_proto(u.updated_at)),
        message_quota: u.message_quota,
        email_verified: u.email_verified_at.is_some(),
        notifications: Some(notification_prefs(u.notify_mask)),
    }
}

/// The notification switches of `users.notify_mask`.
pub fn notification_prefs(mask: i32) -> v1::NotificationPrefs {
    use crate::persistence::users::{NOTIFY_QUOTA, NOTIFY_SESSION_STATUS, NOTIFY_WEBHOOK_DISABLED};
    v1::NotificationPrefs {
        session_status: Some(mask & NOTIFY_SESSION_STATUS != 0),
        quota: Some(mask & NOTIFY_QUOTA != 0),
        webhook_disabled: Some(mask & NOTIFY_WEBHOOK_DISABLED != 0),
    }
}

/// `mask` with the switches `prefs` names set or cleared.
pub fn apply_notification_prefs(mask: i32, prefs: &v1::NotificationPrefs) -> i32 {
    use crate::persistence::users::{NOTIFY_QUOTA, NOTIFY_SESSION_STATUS, NOTIFY_WEBHOOK_DISABLED};
    let mut mask = mask;
    for (bit, on) in [
        (NOTIFY_SESSION_STATUS, prefs.session_status),
        (NOTIFY_QUOTA, prefs.quota),
        (NOTIFY_WEBHOOK_DISABLED, prefs.webhook_disabled),
    ] {
        match on {
            Some(true) => mask |= bit,
            Some(false) => mask &= !bit,
            None => {}
        }
    }
    mask
}

pub fn session(s: &Session, api_key_prefix: Option<String>) -> v1::Session {
    v1::Session {
        id: s.id.clone(),
        name: s.name.clone(),
        status: session_status_to_proto(s.status) as i32,
        phone_number: s.phone_number.clone(),
        worker_id: s.worker_id.clone(),
        qr_code: s.qr_code.clone(),
        last_seen_at: opt_to_proto(s.last_seen_at),
        created_at: Some(to_proto(s.created_at)),
        updated_at: Some(to_proto(s.updated_at)),
        api_key_prefix,
        status_reason: s.status_reason.clone(),
    }
}

pub fn session_status_to_proto(s: SessionStatus) -> v1::SessionStatus {
    match s {
        SessionStatus::Init => v1::SessionStatus::Init,
        SessionStatus::QrRequired => v1::SessionStatus::QrRequired,
        SessionStatus::Connected => v1::SessionStatus::Connected,
        SessionStatus::Disconnected => v1::SessionStatus::Disconnected,
        SessionStatus::Reconnecting => v1::SessionStatus::Reconnecting,
        SessionStatus::Error => v1::SessionStatus::Error,
    }
}

pub fn session_status_from_proto(s: v1::SessionStatus) -> Option<SessionStatus> {
    Some(match s {
        v1::SessionStatus::Unspecified => return None,
        v1::SessionStatus::Init => SessionStatus::Init,
        v1::SessionStatus::QrRequired => SessionStatus::QrRequired,
        v1::SessionStatus::Connected => SessionStatus::Connected,
        v1::SessionStatus::Disconnected => SessionStatus::Disconnected,
        v1::SessionStatus::Reconnecting => SessionStatus::Reconnecting,
        v1::SessionStatus::Error => SessionStatus::Error,
    })
}

pub fn message_status_to_proto(s: MessageStatus) -> v1::MessageStatus {
    match s {
        MessageStatus::Pending => v1::MessageStatus::Pending,
        MessageStatus::Sent => v1::MessageStatus::Sent,
        MessageStatus::Delivered => v1::MessageStatus::Delivered,
        MessageStatus::Read => v1::MessageStatus::Read,
        MessageStatus::Failed => v1::MessageStatus::Failed,
    }
}

pub fn message_status_from_proto(s: v1::MessageStatus) -> Option<MessageStatus> {
    Some(match s {
        v1::MessageStatus::Unspecified => return None,
        v1::MessageStatus::Pending => MessageStatus::Pending,
        v1::MessageStatus::Sent => MessageStatus::Sent,
        v1::MessageStatus::Delivered => MessageStatus::Delivered,
        v1::MessageStatus::Read => MessageStatus::Read,
        v1::MessageStatus::Failed => MessageStatus::Failed,
    })
}

pub fn message_type_from_proto(t: v1::MessageType) -> Option<MessageType> {
    Some(match t {
        v1::MessageType::Unspecified => return None,
        v1::MessageType::Text => MessageType::Text,
        v1::MessageType::Image => MessageType::Image,
        v1::MessageType::Document => MessageType::Document,
        v1::MessageType::Audio => MessageType::Audio,
        v1::MessageType::Video => MessageType::Video,
        v1::MessageType::Sticker => MessageType::Sticker,
        v1::MessageType::Location => MessageType::Location,
        v1::MessageType::Contact => MessageType::Contact,
    })
}

pub fn message_type_to_proto(t: MessageType) -> v1::MessageType {
    match t {
        MessageType::Text => v1::MessageType::Text,
        MessageType::Image => v1::MessageType::Image,
        MessageType::Document => v1::MessageType::Document,
        MessageType::Audio => v1::MessageType::Audio,
        MessageType::Video => v1::MessageType::Video,
        MessageType::Sticker => v1::MessageType::Sticker,
        MessageType::Location => v1::MessageType::Location,
        MessageType::Contact => v1::MessageType::Contact,
    }
}

/// The stored columns of a message (`metadata` the JSON of the LOCATION /
/// CONTACT fields, `media` of a stored file, and [`with_reply_fields`]).
pub struct StoredContent<'a> {
    pub kind: MessageType,
    pub text: &'a str,
    pub media_url: Option<&'a str>,
    pub caption: Option<&'a str>,
    pub filename: Option<&'a str>,
    pub metadata: Option<&'a str>,
}

/// A message's payload rebuilt from its row: for the history, and for a
/// send dispatched again (so a re-dispatch carries its reply and mentions).
pub fn content_from_row(row: StoredContent<'_>) -> v1::MessageContent {
    let meta: serde_json::Value = row.metadata.and_then(|m| serde_json::from_str(m).ok()).unwrap_or_default();
    let s = |k: &str| meta.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let f = |k: &str| meta.get(k).and_then(serde_json::Value::as_f64);
    let media = meta.get("media");
    let media_s = |k: &str| media.and_then(|v| v.get(k)).and_then(|v| v.as_str()).map(str::to_owned);
    v1::MessageContent {
        r#type: message_type_to_proto(row.kind) as i32,
        text: row.text.to_owned(),
        media_url: row.media_url.map(str::to_owned),
        caption: row.caption.map(str::to_owned),
        filename: row.filename.map(str::to_owned),
        latitude: f("latitude"),
        longitude: f("longitude"),
        name: s("name"),
        phone: s("phone"),
        vcard: s("vcard"),
        media_id: media_s("id"),
        mime_type: media_s("mimeType"),
        media_size: media.and_then(|v| v.get("size")).and_then(serde_json::Value::as_u64),
        media_sha256: media_s("sha256"),
        quoted_message_id: s("quotedMessageId"),
        quoted_participant: s("quotedParticipant"),
        mentions: meta
            .get("mentions")
            .and_then(|m| m.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
    }
}

/// `metadata` (the LOCATION / CONTACT JSON, or none) with the reply and
/// mentions of `c` added; none when there is nothing to store.
pub fn with_reply_fields(metadata: Option<String>, c: &v1::MessageContent) -> Option<String> {
    if c.quoted_message_id.is_none() && c.mentions.is_empty() {
        return metadata;
    }
    let mut meta = metadata
        .and_then(|m| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&m).ok())
        .unwrap_or_default();
    if let Some(q) = &c.quoted_message_id {
        meta.insert("quotedMessageId".into(), q.clone().into());
    }
    if let Some(p) = &c.quoted_participant {
        meta.insert("quotedParticipant".into(), p.clone().into());
    }
    if !c.mentions.is_empty() {
        meta.insert("mentions".into(), c.mentions.clone().into());
    }
    Some(serde_json::Value::Object(meta).to_string())
}
