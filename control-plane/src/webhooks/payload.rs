//! Event types and their JSON payloads: `{"id", "type", "sessionId",
//! "timestamp", "data"}` with camelCase names like the REST API. The edge
//! documents the same shapes in its OpenAPI document.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    MessageReceived,
    MessageStatus,
    SessionStatus,
    SessionQr,
    WebhookTest,
}

impl EventType {
    /// The types a webhook can subscribe to (`webhook.test` is always sent on request).
    pub const SUBSCRIBABLE: [EventType; 4] = [
        EventType::MessageReceived,
        EventType::MessageStatus,
        EventType::SessionStatus,
        EventType::SessionQr,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::MessageReceived => "message.received",
            EventType::MessageStatus => "message.status",
            EventType::SessionStatus => "session.status",
            EventType::SessionQr => "session.qr",
            EventType::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        Self::SUBSCRIBABLE.into_iter().chain([EventType::WebhookTest]).find(|t| t.as_str() == s)
    }

    /// Bit of this type in a subscription mask.
    pub const fn bit(self) -> u8 {
        match self {
            EventType::MessageReceived => 1,
            EventType::MessageStatus => 2,
            EventType::SessionStatus => 4,
            EventType::SessionQr => 8,
            EventType::WebhookTest => 16,
        }
    }
}

/// A new event id: `evt_` + a time-ordered UUID (v7), so ids sort in
/// creation order (the per-webhook delivery order).
pub fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::now_v7().simple())
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a, T: Serialize> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    session_id: &'a str,
    timestamp: String,
    data: T,
}

/// The JSON body of an event.
pub fn render<T: Serialize>(
    id: &str,
    kind: EventType,
    session_id: &str,
    at: DateTime<Utc>,
    data: &T,
) -> String {
    let env = Envelope { id, kind: kind.as_str(), session_id, timestamp: rfc3339(at), data };
    serde_json::to_string(&env).unwrap_or_else(|e| {
        tracing::error!(error = %e, "event serialization failed");
        "{}".to_owned()
    })
}

#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcard: Option<String>,
}

/// `message.received`: an inbound message.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct MessageReceived {
    pub message_id: String,
    pub wa_message_id: String,
    pub from: String,
    /// TEXT, IMAGE, DOCUMENT, AUDIO, VIDEO, STICKER, LOCATION or CONTACT.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<Contact>,
    /// When the message was sent (RFC 3339).
    pub timestamp: String,
}

/// `message.status`: an outbound message moved forward.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStatusChanged {
    pub message_id: String,
    /// SENT, DELIVERED, READ or FAILED.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wa_message_id: Option<String>,
    pub to: String,
    /// Why the message failed (FAILED only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub timestamp: String,
}

/// `session.status`: the session's state changed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatusChanged {
    /// INIT, QR_REQUIRED, CONNECTED, DISCONNECTED, RECONNECTING or ERROR.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
}

/// `session.qr`: a new QR code to scan.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionQr {
    pub qr_code: String,
}

/// `webhook.test`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookTest {
    pub message: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_camel_case() {
        let at = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let body = render("evt_1", EventType::SessionQr, "s1", at, &SessionQr { qr_code: "q".into() });
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["type"], "session.qr");
        assert_eq!(v["sessionId"], "s1");
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["data"]["qrCode"], "q");
        assert!(new_event_id() < new_event_id());
    }
}
