//! The JSON body of an event: the types and payloads are the contract's
//! ([`wagate_proto::contract::events`], which the edge documents in its
//! OpenAPI document); here, the event ids and the rendering.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
pub use wagate_proto::contract::events::{
    Event, EventContact, EventLocation, EventMedia, EventType, GroupParticipantsData, MessageDeletedData,
    MessageEditedData, MessageReactionData, MessageReadData, MessageReceivedData, MessageStatusData,
    PresenceData, SessionQrData, SessionStatusData, WebhookTestData,
};

/// A new event id: `evt_` + a time-ordered UUID (v7), so ids sort in
/// creation order (the per-webhook delivery order).
pub fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::now_v7().simple())
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The JSON body of an event.
pub fn render<T: Serialize>(
    id: &str,
    kind: EventType,
    session_id: &str,
    at: DateTime<Utc>,
    data: &T,
) -> String {
    let event =
        Event { id: id.to_owned(), kind, session_id: session_id.to_owned(), timestamp: rfc3339(at), data };
    serde_json::to_string(&event).unwrap_or_else(|e| {
        tracing::error!(error = %e, "event serialization failed");
        "{}".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_camel_case() {
        let at = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let body = render("evt_1", EventType::SessionQr, "s1", at, &SessionQrData { qr_code: "q".into() });
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["type"], "session.qr");
        assert_eq!(v["sessionId"], "s1");
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["data"]["qrCode"], "q");
        assert!(new_event_id() < new_event_id());
        // Byte for byte what receivers get (and what signatures cover).
        assert_eq!(
            body,
            r#"{"id":"evt_1","type":"session.qr","sessionId":"s1","timestamp":"2023-11-14T22:13:20.123Z","data":{"qrCode":"q"}}"#
        );
    }
}
