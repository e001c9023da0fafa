//! Input rules shared by every gRPC method (and so by the REST face): each
//! failure names the field.

pub use wagate_proto::contract::limits::{
    MAX_CAPTION, MAX_CHECK_NUMBERS, MAX_EMOJI, MAX_FILENAME, MAX_GROUP_PARTICIPANTS, MAX_GROUP_SUBJECT,
    MAX_MEDIA_URL, MAX_MENTIONS, MAX_NAME, MAX_READ_IDS, MAX_TEXT, MAX_VCARD,
};
use wagate_proto::v1::{MessageContent, MessageType, PresenceState};

use crate::error::{CpError, invalid};

pub fn email(raw: &str) -> Result<String, CpError> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Err(invalid("email", "email is required"));
    }
    if email.len() > 254 {
        return Err(invalid("email", "email must be at most 254 characters"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(invalid("email", "email must be a valid address"));
    };
    let ok = !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
        && domain.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !ok {
        return Err(invalid("email", "email must be a valid address"));
    }
    Ok(email)
}

/// A display name: trimmed, 1..=100 characters, no control characters.
pub fn name(field: &str, raw: &str) -> Result<String, CpError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(invalid(field, format!("{field} is required")));
    }
    if name.chars().count() > MAX_NAME {
        return Err(invalid(field, format!("{field} must be at most {MAX_NAME} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(field, format!("{field} must not contain control characters")));
    }
    Ok(name.to_owned())
}

/// A caller-chosen session id: 3..=64 of `[A-Za-z0-9_-]`.
pub fn session_id(field: &str, raw: &str) -> Result<String, CpError> {
    let id = raw.trim();
    if !(3..=64).contains(&id.len())
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(invalid(
            field,
            format!("{field} must be 3-64 characters of letters, digits, '-' or '_'"),
        ));
    }
    Ok(id.to_owned())
}

/// An id in a path or lookup: malformed ids simply do not exist.
pub fn lookup_id(raw: &str) -> Option<&str> {
    let id = raw.trim();
    ((1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        .then_some(id)
}

/// Normalises a recipient: a phone number (digits with optional `+`,
/// spaces, dashes, dots, parentheses) or a JID → `digits@s.whatsapp.net`
/// (`@c.us` is rewritten); group JIDs (`…@g.us`) are kept.
pub fn recipient(raw: &str) -> Result<String, CpError> {
    let to = raw.trim();
    if to.is_empty() {
        return Err(invalid("to", "to is required"));
    }
    if let Some((user, server)) = to.split_once('@') {
        let server = server.to_ascii_lowercase();
        return match server.as_str() {
            "s.whatsapp.net" | "c.us" => Ok(format!("{}@s.whatsapp.net", phone_digits(user)?)),
            "g.us"
                if !user.is_empty()
                    && user.len() <= 64
                    && user.bytes().all(|b| b.is_ascii_digit() || b == b'-') =>
            {
                Ok(format!("{user}@g.us"))
            }
            _ => Err(invalid("to", "to must be a phone number or a WhatsApp JID (…@s.whatsapp.net, …@g.us)")),
        };
    }
    Ok(format!("{}@s.whatsapp.net", phone_digits(to)?))
}

fn phone_digits(raw: &str) -> Result<String, CpError> {
    phone_number("to", raw)
}

/// A phone number in international format as its digits (spaces, `-`, `.`,
/// brackets and a leading `+` dropped); errors name `field`.
fn phone_number(field: &str, raw: &str) -> Result<String, CpError> {
    let mut digits = String::with_capacity(raw.len());
    for (i, c) in raw.trim().chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => {}
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => {
                return Err(invalid(
                    field,
                    format!("{field} must be a phone number in international format"),
                ));
            }
        }
    }
    if !(7..=15).contains(&digits.len()) || digits.starts_with('0') {
        return Err(invalid(
            field,
            format!(
                "{field} must be a phone number in international format (7-15 digits, country code first)"
            ),
        ));
    }
    Ok(digits)
}

/// The numbers of a number check: 1 to [`MAX_CHECK_NUMBERS`], each a phone
/// number (as digits), errors naming `numbers[i]`.
pub fn numbers(raw: &[String]) -> Result<Vec<String>, CpError> {
    if raw.is_empty() || raw.len() > MAX_CHECK_NUMBERS {
        return Err(invalid("numbers", format!("numbers must hold 1 to {MAX_CHECK_NUMBERS} phone numbers")));
    }
    raw.iter().enumerate().map(|(i, n)| phone_number(&format!("numbers[{i}]"), n)).collect()
}

/// A chat: a phone number or a chat JID, as its JID; errors name `field`.
pub fn chat(field: &str, raw: &str) -> Result<String, CpError> {
    recipient(raw).map_err(|_| {
        invalid(field, format!("{field} must be a phone number or a chat JID (…@s.whatsapp.net, …@g.us)"))
    })
}

/// WhatsApp message ids: 1 to [`MAX_READ_IDS`], each 1-128 printable ASCII
/// characters without spaces.
pub fn wa_message_ids(raw: &[String]) -> Result<Vec<String>, CpError> {
    if raw.is_empty() || raw.len() > MAX_READ_IDS {
        return Err(invalid("messageIds", format!("messageIds must hold 1 to {MAX_READ_IDS} message ids")));
    }
    for (i, id) in raw.iter().enumerate() {
        if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                &format!("messageIds[{i}]"),
                "a message id is 1-128 printable characters without spaces",
            ));
        }
    }
    Ok(raw.to_vec())
}

/// A presence and its chat: composing, recording and paused need a chat;
/// available and unavailable are global (the chat is dropped).
pub fn presence(state: i32, chat_id: &str) -> Result<(PresenceState, String), CpError> {
    let state = PresenceState::try_from(state).unwrap_or(PresenceState::Unspecified);
    match state {
        PresenceState::Unspecified => {
            Err(invalid("state", "state must be one of composing, recording, paused, available, unavailable"))
        }
        PresenceState::Available | PresenceState::Unavailable => Ok((state, String::new())),
        PresenceState::Composing | PresenceState::Recording | PresenceState::Paused => {
            if chat_id.trim().is_empty() {
                return Err(invalid("chatId", "chatId is required for composing, recording and paused"));
            }
            Ok((state, chat("chatId", chat_id)?))
        }
    }
}

/// A required text of a send's length (`field` names it in the error).
pub fn text(field: &str, raw: &str) -> Result<String, CpError> {
    if raw.trim().is_empty() {
        return Err(invalid(field, format!("{field} is required")));
    }
    if raw.chars().count() > MAX_TEXT {
        return Err(invalid(field, format!("{field} must be at most {MAX_TEXT} characters")));
    }
    Ok(raw.to_owned())
}

/// People a message mentions: phone numbers or JIDs, at most
/// [`MAX_MENTIONS`], as JIDs (duplicates dropped).
pub fn mentions(raw: &[String]) -> Result<Vec<String>, CpError> {
    if raw.len() > MAX_MENTIONS {
        return Err(invalid("mentions", format!("mentions has at most {MAX_MENTIONS} entries")));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, m) in raw.iter().enumerate() {
        let jid = recipient(m).map_err(|_| invalid(&format!("mentions[{i}]"), "a phone number or a JID"))?;
        if jid.ends_with("@g.us") {
            return Err(invalid(&format!("mentions[{i}]"), "a mention is a person, not a group"));
        }
        if !out.contains(&jid) {
            out.push(jid);
        }
    }
    Ok(out)
}

/// A group id: its digits (`120363…`, or the old `<phone>-<time>`) with or
/// without `@g.us` → `…@g.us`; anything else is `None` (not found).
pub fn group_id(raw: &str) -> Option<String> {
    let id = raw.trim();
    let digits = id.strip_suffix("@g.us").unwrap_or(id);
    let (a, b) = digits.split_once('-').unwrap_or((digits, "0"));
    let ok = (5..=40).contains(&a.len())
        && (1..=20).contains(&b.len())
        && a.bytes().all(|c| c.is_ascii_digit())
        && b.bytes().all(|c| c.is_ascii_digit());
    ok.then(|| format!("{digits}@g.us"))
}

/// A new group's subject: 1 to [`MAX_GROUP_SUBJECT`] printable characters.
pub fn group_subject(raw: &str) -> Result<String, CpError> {
    let s = raw.trim();
    if s.is_empty() || s.chars().count() > MAX_GROUP_SUBJECT || s.chars().any(char::is_control) {
        return Err(invalid(
            "subject",
            format!("subject must be 1 to {MAX_GROUP_SUBJECT} characters, no control characters"),
        ));
    }
    Ok(s.to_owned())
}

/// Group participants (`field` names them): phone numbers or JIDs of
/// people, at most [`MAX_GROUP_PARTICIPANTS`], as JIDs without duplicates.
pub fn participants(field: &str, raw: &[String]) -> Result<Vec<String>, CpError> {
    if raw.len() > MAX_GROUP_PARTICIPANTS {
        return Err(invalid(field, format!("{field} has at most {MAX_GROUP_PARTICIPANTS} entries")));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, p) in raw.iter().enumerate() {
        let jid = recipient(p)
            .ok()
            .filter(|j| !j.ends_with("@g.us"))
            .ok_or_else(|| invalid(&format!("{field}[{i}]"), "a phone number or a person's JID"))?;
        if !out.contains(&jid) {
            out.push(jid);
        }
    }
    Ok(out)
}

/// The REST name of a presence state (`composing`, …; `unknown` for none).
pub fn presence_name(state: i32) -> &'static str {
    match PresenceState::try_from(state).unwrap_or(PresenceState::Unspecified) {
        PresenceState::Composing => "composing",
        PresenceState::Recording => "recording",
        PresenceState::Paused => "paused",
        PresenceState::Available => "available",
        PresenceState::Unavailable => "unavailable",
        PresenceState::Unspecified => "unknown",
    }
}

/// A reaction's emoji: empty (removes the reaction) or one short run of
/// non-ASCII symbols (an emoji with its modifiers and joiners).
pub fn emoji(raw: &str) -> Result<String, CpError> {
    let e = raw.trim();
    let bad = || invalid("emoji", "emoji must be one emoji, or empty to remove the reaction");
    if e.len() > MAX_EMOJI || e.chars().count() > 10 {
        return Err(bad());
    }
    if e.chars().any(|c| c.is_ascii() || c.is_control() || c.is_whitespace()) {
        return Err(bad());
    }
    Ok(e.to_owned())
}

/// A message named by its wagate id or its WhatsApp id: printable ASCII
/// without spaces, at most 128 characters.
pub fn message_ref(raw: &str) -> Option<&str> {
    let r = raw.trim();
    (!r.is_empty() && r.len() <= 128 && r.bytes().all(|b| b.is_ascii_graphic())).then_some(r)
}

/// Checks the fields each message type requires.
pub fn content(content: Option<&MessageContent>) -> Result<MessageType, CpError> {
    let Some(c) = content else {
        return Err(invalid("message", "message content is required"));
    };
    let kind = MessageType::try_from(c.r#type).unwrap_or(MessageType::Unspecified);
    match kind {
        MessageType::Unspecified => {
            return Err(invalid(
                "type",
                "type must be one of text, image, document, audio, video, sticker, location, contact",
            ));
        }
        MessageType::Text => {
            if c.text.trim().is_empty() {
                return Err(invalid("message", "message is required for text messages"));
            }
            if c.text.chars().count() > MAX_TEXT {
                return Err(invalid("message", format!("message must be at most {MAX_TEXT} characters")));
            }
        }
        MessageType::Image
        | MessageType::Video
        | MessageType::Audio
        | MessageType::Document
        | MessageType::Sticker => {
            let url = c.media_url.as_deref().unwrap_or_default().trim();
            let media_id = c.media_id.as_deref().unwrap_or_default().trim();
            if url.is_empty() && media_id.is_empty() {
                return Err(invalid(
                    "mediaUrl",
                    "mediaUrl (or an uploaded file) is required for media messages",
                ));
            }
            if !media_id.is_empty() && lookup_id(media_id).is_none() {
                return Err(invalid("mediaId", "mediaId is not a media id"));
            }
            if !url.is_empty()
                && (url.len() > MAX_MEDIA_URL
                    || !(url.starts_with("https://") || url.starts_with("http://"))
                    || url.contains(char::is_whitespace))
            {
                return Err(invalid(
                    "mediaUrl",
                    format!("mediaUrl must be an http(s) URL of at most {MAX_MEDIA_URL} characters"),
                ));
            }
            if c.caption.as_deref().is_some_and(|s| s.chars().count() > MAX_CAPTION) {
                return Err(invalid("caption", format!("caption must be at most {MAX_CAPTION} characters")));
            }
            if c.filename.as_deref().is_some_and(|s| s.len() > MAX_FILENAME || s.contains(['/', '\\', '\0']))
            {
                return Err(invalid(
                    "filename",
                    format!("filename must be a plain file name of at most {MAX_FILENAME} bytes"),
                ));
            }
        }
        MessageType::Location => {
            match c.latitude {
                Some(lat) if lat.is_finite() && (-90.0..=90.0).contains(&lat) => {}
                Some(_) => return Err(invalid("latitude", "latitude must be between -90 and 90")),
                None => return Err(invalid("latitude", "latitude is required for location messages")),
            }
            match c.longitude {
                Some(lng) if lng.is_finite() && (-180.0..=180.0).contains(&lng) => {}
                Some(_) => return Err(invalid("longitude", "longitude must be between -180 and 180")),
                None => return Err(invalid("longitude", "longitude is required for location messages")),
            }
            if c.name.as_deref().is_some_and(|s| s.chars().count() > MAX_NAME) {
                return Err(invalid("name", format!("name must be at most {MAX_NAME} characters")));
            }
        }
        MessageType::Contact => {
            name("name", c.name.as_deref().unwrap_or_default())?;
            let phone = c.phone.as_deref().unwrap_or_default().trim();
            let vcard = c.vcard.as_deref().unwrap_or_default().trim();
            if phone.is_empty() && vcard.is_empty() {
                return Err(invalid("phone", "phone or vcard is required for contact messages"));
            }
            if !phone.is_empty() {
                phone_digits(phone)
                    .map_err(|_| invalid("phone", "phone must be a phone number in international format"))?;
            }
            if vcard.len() > MAX_VCARD {
                return Err(invalid("vcard", format!("vcard must be at most {MAX_VCARD} bytes")));
            }
        }
    }
    Ok(kind)
}

/// A worker's inbound message, checked like user input before it is stored:
/// the sender is a phone number or JID, the content obeys the limits of a
/// send (lengths, http/https media URLs, file names without paths), the
/// WhatsApp id is short and printable. Workers are not trusted.
pub fn inbound(m: &wagate_proto::v1::InboundMessage) -> Result<(), CpError> {
    if !is_sender(m.from.trim()) {
        return Err(invalid("from", "from must be a phone number or a WhatsApp JID"));
    }
    content(m.content.as_ref())?;
    if m.wa_message_id.chars().count() > 128 || m.wa_message_id.chars().any(char::is_control) {
        return Err(invalid("waMessageId", "waMessageId must be at most 128 printable characters"));
    }
    Ok(())
}

/// A sender as WhatsApp names one: a phone number, or `user@server` with a
/// short alphanumeric user part on one of WhatsApp's servers.
fn is_sender(from: &str) -> bool {
    match from.split_once('@') {
        None => phone_digits(from).is_ok(),
        Some((user, server)) => {
            !user.is_empty()
                && user.len() <= 64
                && user.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'_'))
                && matches!(
                    server.to_ascii_lowercase().as_str(),
                    "s.whatsapp.net" | "c.us" | "g.us" | "lid" | "broadcast" | "newsletter"
                )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagate_proto::error::ApiError;

    #[test]
    fn recipients_are_normalised() {
        assert_eq!(recipient("+62 812-3456-7890").unwrap(), "6281234567890@s.whatsapp.net");
        assert_eq!(recipient("6281234567890@c.us").unwrap(), "6281234567890@s.whatsapp.net");
        assert_eq!(recipient("6281234567890@s.whatsapp.net").unwrap(), "6281234567890@s.whatsapp.net");
        assert_eq!(recipient("120363-1234@g.us").unwrap(), "120363-1234@g.us");
        for bad in ["", "abc", "123", "+0812345678", "62812@evil.com", "628123456789012345", "62a81234567"] {
            assert!(recipient(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_to_check() {
        assert_eq!(numbers(&["+62 812-3456-7890".into()]).unwrap(), vec!["6281234567890".to_owned()]);
        assert!(numbers(&[]).is_err());
        assert!(numbers(&vec!["6281234567890".to_owned(); MAX_CHECK_NUMBERS + 1]).is_err());
        let err = ApiError::from(numbers(&["6281234567890".into(), "abc".into()]).unwrap_err());
        assert_eq!(err.field.as_deref(), Some("numbers[1]"));
    }

    #[test]
    fn emojis() {
        assert_eq!(emoji("").unwrap(), "");
        assert_eq!(emoji(" 👍 ").unwrap(), "👍");
        assert_eq!(emoji("👍🏽").unwrap(), "👍🏽");
        assert_eq!(emoji("👨‍👩‍👧").unwrap(), "👨‍👩‍👧");
        for bad in ["a", ":+1:", "👍 👍", "\u{7}", &"😀".repeat(11)] {
            assert!(emoji(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(email(" A@Example.COM ").unwrap(), "a@example.com");
        for bad in ["", "a", "a@b", "@b.c", "a@.b", "a b@c.d", "a@b..c", "a@b.c."] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn content_rules_per_type() {
        let text = |t: &str| MessageContent {
            r#type: MessageType::Text as i32,
            text: t.into(),
            ..Default::default()
        };
        assert!(content(Some(&text("hi"))).is_ok());
        assert!(content(Some(&text("  "))).is_err());
        assert!(content(None).is_err());
        let img = MessageContent {
            r#type: MessageType::Image as i32,
            media_url: Some("ftp://x".into()),
            ..Default::default()
        };
        assert!(content(Some(&img)).is_err());
        let loc = MessageContent {
            r#type: MessageType::Location as i32,
            latitude: Some(91.0),
            longitude: Some(0.0),
            ..Default::default()
        };
        assert!(content(Some(&loc)).is_err());
        let contact = MessageContent {
            r#type: MessageType::Contact as i32,
            name: Some("Ann".into()),
            phone: Some("+6281234567".into()),
            ..Default::default()
        };
        assert!(content(Some(&contact)).is_ok());
    }
}
