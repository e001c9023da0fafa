//! Webhook events: the types (their wire names, which ones a webhook can
//! subscribe to) and the JSON the control plane POSTs,
//! `{"id", "type", "sessionId", "timestamp", "data"}` with camelCase names
//! like the REST API.
//!
//! Adding an event type is one line of [`event_types!`] below (variant,
//! wire name, payload struct, subscribable or not) and its payload struct:
//! the list of names ([`EventType::ALL`]), the errors that list them, the
//! subscription masks and the OpenAPI schemas (`{Variant}Event` and its
//! payload, [`openapi_schemas`]) follow.

use serde::{Deserialize, Serialize};
#[cfg(feature = "openapi")]
use utoipa::openapi::{RefOr, schema::Schema};

/// Defines [`EventType`] from one line per type:
/// `Variant = "wire.name", data = PayloadStruct, subscribable = bool;`.
macro_rules! event_types {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident = $wire:literal, data = $data:ident, subscribable = $sub:literal $(, opt_in = $opt:literal)?;
    )+) => {
        /// A webhook event type; serialized as its wire name (`message.received`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum EventType {
            $( $(#[doc = $doc])* #[serde(rename = $wire)] $variant, )+
        }

        impl EventType {
            /// Every event type, in declaration order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),+];

            /// The wire name (`"type"` of the event, the `events` of a webhook).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $wire,)+
                }
            }

            /// Whether a webhook can subscribe to this type (others are sent on request).
            pub const fn is_subscribable(self) -> bool {
                match self {
                    $(EventType::$variant => $sub,)+
                }
            }

            /// Whether a webhook gets this type only when it names it (an
            /// empty `events` list means every subscribable type but these).
            pub const fn is_opt_in(self) -> bool {
                match self {
                    $(EventType::$variant => false $(|| $opt)?,)+
                }
            }

            /// What the type is (its documentation).
            pub fn description(self) -> String {
                match self {
                    $(EventType::$variant => [$($doc),*].map(str::trim).join(" "),)+
                }
            }
        }

        /// The schemas of every event: `{Variant}Event` (the envelope) and its payload.
        #[cfg(feature = "openapi")]
        pub fn openapi_schemas() -> Vec<(String, RefOr<Schema>)> {
            let mut out = Vec::new();
            $( openapi::envelope::<$data>(EventType::$variant, concat!(stringify!($variant), "Event"), &mut out); )+
            out
        }
    };
}

event_types! {
    /// `message.received`: an inbound message.
    MessageReceived = "message.received", data = MessageReceivedData, subscribable = true;
    /// `message.status`: SENT, DELIVERED, READ or FAILED (with reason).
    MessageStatus = "message.status", data = MessageStatusData, subscribable = true;
    /// `session.status`: every change of the session's state, with its reason.
    SessionStatus = "session.status", data = SessionStatusData, subscribable = true;
    /// `session.qr`: a new QR code to scan.
    SessionQr = "session.qr", data = SessionQrData, subscribable = true;
    /// `webhook.test`: sent by POST …/webhook/test.
    WebhookTest = "webhook.test", data = WebhookTestData, subscribable = false;
    /// `message.reaction`: someone reacted to a message of the session (empty emoji: removed).
    MessageReaction = "message.reaction", data = MessageReactionData, subscribable = true;
    /// `message.edited`: a message of the session's chats was edited (by the contact, or by the account).
    MessageEdited = "message.edited", data = MessageEditedData, subscribable = true;
    /// `message.deleted`: a message was deleted for everyone.
    MessageDeleted = "message.deleted", data = MessageDeletedData, subscribable = true;
    /// `message.read`: a contact read messages the session sent (one event per read receipt, naming every message it covers).
    MessageRead = "message.read", data = MessageReadData, subscribable = true;
    /// `group.participants`: participants of a group were added, removed, promoted or demoted.
    GroupParticipants = "group.participants", data = GroupParticipantsData, subscribable = true;
    /// `presence`: a contact is typing, recording, paused, online or offline (opt-in: name it in `events`).
    Presence = "presence", data = PresenceData, subscribable = true, opt_in = true;
}

const SUBSCRIBABLE_LEN: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < EventType::ALL.len() {
        if EventType::ALL[i].is_subscribable() {
            n += 1;
        }
        i += 1;
    }
    n
};

const SUBSCRIBABLE: [EventType; SUBSCRIBABLE_LEN] = {
    let mut out = [EventType::ALL[0]; SUBSCRIBABLE_LEN];
    let (mut i, mut n) = (0, 0);
    while i < EventType::ALL.len() {
        if EventType::ALL[i].is_subscribable() {
            out[n] = EventType::ALL[i];
            n += 1;
        }
        i += 1;
    }
    out
};

// A subscription is a mask of one bit per type (see [`EventType::bit`]).
const _: () = assert!(EventType::ALL.len() <= 32, "EventType::bit is a u32");

impl EventType {
    /// The types a webhook can subscribe to, in declaration order (all when
    /// it names none); `webhook.test` is always sent on request.
    pub const SUBSCRIBABLE: &'static [EventType] = &SUBSCRIBABLE;

    /// The type of a wire name.
    pub fn parse(s: &str) -> Option<EventType> {
        Self::ALL.iter().copied().find(|t| t.as_str() == s)
    }

    /// Bit of this type in a subscription mask.
    pub const fn bit(self) -> u32 {
        1 << self as u32
    }

    /// The mask of an `events` list: the named types, or every subscribable
    /// type but the opt-in ones when it names none. Unknown names are skipped
    /// (they were refused when the list was stored).
    pub fn mask_of<S: AsRef<str>>(events: &[S]) -> u32 {
        if events.is_empty() {
            return Self::SUBSCRIBABLE.iter().filter(|t| !t.is_opt_in()).fold(0, |m, t| m | t.bit());
        }
        events.iter().filter_map(|e| Self::parse(e.as_ref())).fold(0, |m, t| m | t.bit())
    }

    /// The wire names of `types` for a message: `a, b, c or d`.
    pub fn list(types: &[EventType]) -> String {
        match types.split_last() {
            None => String::new(),
            Some((last, [])) => last.as_str().to_owned(),
            Some((last, rest)) => {
                let rest: Vec<&str> = rest.iter().map(|t| t.as_str()).collect();
                format!("{} or {}", rest.join(", "), last.as_str())
            }
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event as POSTed: the envelope around a payload (`data`).
/// Headers of every webhook request (Standard Webhooks): `webhook-id` (the
/// event id), `webhook-timestamp` (Unix seconds of the attempt) and
/// `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
/// keyed by the base64 part of the `whsec_` secret; two, space-separated,
/// while a rotated secret still signs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Event<T> {
    /// Unique event id (`evt_…`), also the `webhook-id` header.
    pub id: String,
    /// The event type.
    #[serde(rename = "type")]
    pub kind: EventType,
    pub session_id: String,
    /// When the event happened (RFC 3339, UTC, milliseconds).
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub timestamp: String,
    pub data: T,
}

/// A location of an inbound message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EventLocation {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A contact card of an inbound message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EventContact {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcard: Option<String>,
}

/// `message.reaction`: someone reacted to a message of the session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MessageReactionData {
    /// wagate id of the message reacted to, when wagate knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// WhatsApp id of the message reacted to.
    pub wa_message_id: String,
    /// Who reacted.
    pub from: String,
    /// The emoji; empty when the reaction was removed.
    pub emoji: String,
}

/// `message.edited`: a message was edited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MessageEditedData {
    /// wagate id of the edited message, when wagate knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// WhatsApp id of the edited message.
    pub wa_message_id: String,
    /// The chat (phone number, group id).
    pub chat_id: String,
    /// Whether the account itself edited it (from this gateway or the phone).
    pub from_me: bool,
    /// The new text.
    pub text: String,
}

/// `message.deleted`: a message was deleted for everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MessageDeletedData {
    /// wagate id of the deleted message, when wagate knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// WhatsApp id of the deleted message.
    pub wa_message_id: String,
    pub chat_id: String,
    pub from_me: bool,
}

/// `message.read`: a contact read messages the session sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MessageReadData {
    /// The chat the receipt came from.
    pub chat_id: String,
    /// Who read (a group member in a group; the contact otherwise).
    pub reader: String,
    /// WhatsApp ids the receipt covers.
    pub wa_message_ids: Vec<String>,
    /// wagate ids of those messages that wagate sent.
    pub message_ids: Vec<String>,
    /// When they were read (RFC 3339).
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub timestamp: String,
}

/// `group.participants`: a change of a group's participants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct GroupParticipantsData {
    /// The group (`…@g.us`).
    pub group_id: String,
    /// add, remove, promote or demote.
    pub action: String,
    /// Who was added, removed, promoted or demoted.
    pub participants: Vec<String>,
    /// Who made the change, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// `presence`: a contact's presence in a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PresenceData {
    /// The chat (the contact, or a group).
    pub chat_id: String,
    /// Whose presence it is.
    pub from: String,
    /// composing, recording, paused, available or unavailable.
    pub state: String,
}

/// `message.received`: an inbound message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MessageReceivedData {
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
    pub location: Option<EventLocation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<EventContact>,
    /// The received file, stored by wagate: download it at `url` with the
    /// session's API key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<EventMedia>,
    /// When the message was sent (RFC 3339).
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub timestamp: String,
}

/// A file of a message, stored by wagate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventMedia {
    pub id: String,
    pub mime_type: String,
    pub size: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// `/api/v1/media/{id}` (the session's API key, or a signed link).
    pub url: String,
}

/// `message.status`: an outbound message moved forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MessageStatusData {
    pub message_id: String,
    /// SENT, DELIVERED, READ or FAILED.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wa_message_id: Option<String>,
    pub to: String,
    /// Why the message failed (FAILED only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the status changed (RFC 3339).
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub timestamp: String,
}

/// `session.status`: every change of the session's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SessionStatusData {
    /// INIT, QR_REQUIRED, CONNECTED, DISCONNECTED, RECONNECTING or ERROR.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
}

/// `session.qr`: a new QR code to scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SessionQrData {
    pub qr_code: String,
}

/// `webhook.test`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WebhookTestData {
    pub message: String,
}

#[cfg(feature = "openapi")]
mod openapi {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
    use utoipa::{PartialSchema, ToSchema};

    use super::{Event, EventType};

    /// `name`: the envelope of `kind` around `T` (its `type` the one wire
    /// name), then `T` and what it refers to.
    pub(super) fn envelope<T: ToSchema>(kind: EventType, name: &str, out: &mut Vec<(String, RefOr<Schema>)>) {
        let mut schema = <Event<T> as PartialSchema>::schema();
        if let RefOr::T(Schema::Object(o)) = &mut schema {
            let wire = ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([kind.as_str()]))
                .description(Some("The event type."))
                .build();
            o.properties.insert("type".to_owned(), wire.into());
            if !o.required.iter().any(|r| r == "type") {
                o.required.push("type".to_owned());
            }
            o.description =
                Some(format!("{} {}", kind.description(), o.description.as_deref().unwrap_or("")));
        }
        out.push((name.to_owned(), schema));
        out.push((T::name().into_owned(), T::schema()));
        T::schemas(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_lists() {
        assert_eq!(EventType::ALL.len(), 11);
        assert_eq!(
            EventType::SUBSCRIBABLE,
            [
                EventType::MessageReceived,
                EventType::MessageStatus,
                EventType::SessionStatus,
                EventType::SessionQr,
                EventType::MessageReaction,
                EventType::MessageEdited,
                EventType::MessageDeleted,
                EventType::MessageRead,
                EventType::GroupParticipants,
                EventType::Presence,
            ]
        );
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
            assert_eq!(serde_json::to_string(t).unwrap(), format!("\"{}\"", t.as_str()));
            assert_eq!(serde_json::from_str::<EventType>(&format!("\"{t}\"")).unwrap(), *t);
        }
        assert_eq!(EventType::parse("nope"), None);
        let bits: Vec<u32> = EventType::ALL.iter().map(|t| t.bit()).collect();
        // A type keeps its bit forever (new types go last).
        assert_eq!(bits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]);
        assert_eq!(
            EventType::list(EventType::SUBSCRIBABLE),
            "message.received, message.status, session.status, session.qr, message.reaction, message.edited, \
             message.deleted, message.read, group.participants or presence"
        );
        // Opt-in types only when named; webhook.test never by subscription.
        let none: [&str; 0] = [];
        assert_eq!(EventType::mask_of(&none), 0b011_1110_1111);
        assert_eq!(EventType::mask_of(&["presence"]), EventType::Presence.bit());
        assert!(EventType::Presence.is_opt_in() && !EventType::MessageRead.is_opt_in());
        assert_eq!(EventType::list(&[EventType::SessionQr]), "session.qr");
        assert_eq!(EventType::SessionQr.description(), "`session.qr`: a new QR code to scan.");
    }

    #[test]
    fn envelope_json() {
        let event = Event {
            id: "evt_1".into(),
            kind: EventType::SessionQr,
            session_id: "s1".into(),
            timestamp: "2023-11-14T22:13:20.123Z".into(),
            data: SessionQrData { qr_code: "q".into() },
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"id":"evt_1","type":"session.qr","sessionId":"s1","timestamp":"2023-11-14T22:13:20.123Z","data":{"qrCode":"q"}}"#
        );
        assert_eq!(serde_json::from_str::<Event<SessionQrData>>(&json).unwrap(), event);
        let received =
            MessageReceivedData { kind: "TEXT".into(), text: Some("hi".into()), ..Default::default() };
        let json = serde_json::to_string(&received).unwrap();
        assert_eq!(
            json,
            r#"{"messageId":"","waMessageId":"","from":"","type":"TEXT","text":"hi","timestamp":""}"#
        );
        assert_eq!(serde_json::from_str::<MessageReceivedData>(&json).unwrap(), received);
    }

    #[cfg(feature = "openapi")]
    #[test]
    fn every_event_has_its_schemas() {
        let schemas: std::collections::BTreeMap<String, RefOr<Schema>> =
            openapi_schemas().into_iter().collect();
        for t in EventType::ALL {
            let name = format!("{t:?}Event");
            let json = serde_json::to_value(&schemas[&name]).unwrap();
            assert_eq!(json["properties"]["type"]["enum"], serde_json::json!([t.as_str()]), "{name}");
            assert_eq!(
                json["properties"]["data"]["$ref"],
                format!("#/components/schemas/{t:?}Data"),
                "{json}"
            );
            assert!(schemas.contains_key(&format!("{t:?}Data")), "{t:?}Data");
        }
        for name in ["EventLocation", "EventContact"] {
            assert!(schemas.contains_key(name), "{name}: {:?}", schemas.keys());
        }
    }
}
