//! A wagate `SendMessage` as a WhatsApp message: the recipient JID, the
//! protobuf message for each supported type, and the WhatsApp message id
//! derived from the wagate id (a re-dispatched send re-sends the same id,
//! which WhatsApp de-duplicates).

use sha2::{Digest, Sha256};
use wagate_proto::v1::{self, MessageType};
use whatsapp_rust::Jid;
use whatsapp_rust::waproto::whatsapp as wa;

/// Why a send cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("recipient {0:?} is not a WhatsApp number or JID")]
    BadRecipient(String),
    #[error("the message has no content")]
    NoContent,
    #[error("{0}")]
    Invalid(&'static str),
    #[error("{0:?} messages are not supported by the whatsapp driver yet")]
    Unsupported(MessageType),
}

/// The WhatsApp id of wagate message `message_id` of `session_id`: `3EB0` and
/// 18 hex digits (the shape WhatsApp Web uses), a pure function of our ids.
pub fn wa_message_id(session_id: &str, message_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"wagate/wa-id/v1");
    h.update(session_id.as_bytes());
    h.update([0]);
    h.update(message_id.as_bytes());
    let digest = h.finalize();
    format!("3EB0{}", hex::encode_upper(&digest[..9]))
}

/// The recipient: a bare number (digits, optional `+`) or a full JID.
pub fn recipient(to: &str) -> Result<Jid, BuildError> {
    let bad = || BuildError::BadRecipient(to.to_owned());
    let to = to.trim();
    if to.contains('@') {
        return to.parse::<Jid>().map_err(|_| bad());
    }
    let digits = to.strip_prefix('+').unwrap_or(to);
    if digits.len() < 5 || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    format!("{digits}@s.whatsapp.net").parse::<Jid>().map_err(|_| bad())
}

/// The protobuf message for `content` (text, location, contact; media types
/// come with the media fetch).
pub fn build(content: &v1::MessageContent) -> Result<wa::Message, BuildError> {
    let kind = MessageType::try_from(content.r#type).unwrap_or(MessageType::Unspecified);
    match kind {
        MessageType::Text | MessageType::Unspecified => {
            if content.text.is_empty() {
                return Err(BuildError::NoContent);
            }
            Ok(wa::Message { conversation: Some(content.text.clone()), ..Default::default() })
        }
        MessageType::Location => {
            let (Some(lat), Some(lng)) = (content.latitude, content.longitude) else {
                return Err(BuildError::Invalid("a location needs latitude and longitude"));
            };
            let location = wa::message::LocationMessage {
                degrees_latitude: Some(lat),
                degrees_longitude: Some(lng),
                name: content.name.clone(),
                ..Default::default()
            };
            Ok(wa::Message { location_message: Some(location).into(), ..Default::default() })
        }
        MessageType::Contact => {
            let name = content.name.clone().unwrap_or_default();
            let vcard = match (&content.vcard, &content.phone) {
                (Some(v), _) if !v.is_empty() => v.clone(),
                (_, Some(phone)) => {
                    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
                    if digits.is_empty() {
                        return Err(BuildError::Invalid("a contact needs a phone number or a vCard"));
                    }
                    format!(
                        "BEGIN:VCARD\nVERSION:3.0\nFN:{name}\nTEL;type=CELL;waid={digits}:+{digits}\nEND:VCARD"
                    )
                }
                _ => return Err(BuildError::Invalid("a contact needs a phone number or a vCard")),
            };
            let contact = wa::message::ContactMessage {
                display_name: Some(name),
                vcard: Some(vcard),
                ..Default::default()
            };
            Ok(wa::Message { contact_message: Some(contact).into(), ..Default::default() })
        }
        other => Err(BuildError::Unsupported(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wa_id_is_stable_and_shaped_like_whatsapp_webs() {
        let a = wa_message_id("sess_1", "msg_1");
        assert_eq!(a, wa_message_id("sess_1", "msg_1"));
        assert_ne!(a, wa_message_id("sess_1", "msg_2"));
        assert_ne!(a, wa_message_id("sess_2", "msg_1"));
        // The separator keeps ("a", "bc") and ("ab", "c") apart.
        assert_ne!(wa_message_id("a", "bc"), wa_message_id("ab", "c"));
        assert_eq!(a.len(), 22);
        assert!(a.starts_with("3EB0"));
        assert!(a[4..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()));
    }

    #[test]
    fn recipients_are_numbers_or_jids() {
        assert_eq!(recipient("+628123456789").unwrap().to_string(), "628123456789@s.whatsapp.net");
        assert_eq!(recipient("628123456789@s.whatsapp.net").unwrap().user, "628123456789");
        assert!(recipient("12").is_err());
        assert!(recipient("62812x").is_err());
    }

    #[test]
    fn text_location_and_contact_are_built() {
        let text =
            v1::MessageContent { r#type: MessageType::Text as i32, text: "hi".into(), ..Default::default() };
        assert_eq!(build(&text).unwrap().conversation.as_deref(), Some("hi"));
        let empty = v1::MessageContent { r#type: MessageType::Text as i32, ..Default::default() };
        assert_eq!(build(&empty), Err(BuildError::NoContent));
        let loc = v1::MessageContent {
            r#type: MessageType::Location as i32,
            latitude: Some(-6.2),
            longitude: Some(106.8),
            name: Some("Monas".into()),
            ..Default::default()
        };
        let m = build(&loc).unwrap();
        assert_eq!(m.location_message.as_option().and_then(|l| l.degrees_latitude), Some(-6.2));
        let contact = v1::MessageContent {
            r#type: MessageType::Contact as i32,
            name: Some("Budi".into()),
            phone: Some("+62 811 222".into()),
            ..Default::default()
        };
        let m = build(&contact).unwrap();
        let vcard = m.contact_message.as_option().and_then(|c| c.vcard.clone()).unwrap();
        assert!(vcard.contains("waid=62811222:+62811222"), "{vcard}");
        let image = v1::MessageContent { r#type: MessageType::Image as i32, ..Default::default() };
        assert_eq!(build(&image), Err(BuildError::Unsupported(MessageType::Image)));
    }
}
