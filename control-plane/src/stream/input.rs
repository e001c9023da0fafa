//! What workers report, checked like client input before anything is
//! stored or passed on: workers are not trusted (a compromised or buggy
//! worker must not write `<script>` into an owner's session, a NUL into
//! PostgreSQL, or megabytes into a webhook).
//!
//! - every message on a worker's stream: no string may hold a NUL (the
//!   generated walk of `wagate_proto::text`): the message is dropped;
//! - `Hello`: endpoint and version bounded and printable, else the stream is
//!   refused (INVALID_ARGUMENT naming the field);
//! - events: a phone number is digits with an optional leading `+`, a reason
//!   or QR code is bounded and free of control characters; an invalid value is
//!   dropped (the rest of the event applies) or, when the value is the event
//!   (a QR code), the event is refused;
//! - command results: the WhatsApp message id, error code and message, and a
//!   reported session state are checked the same way; an invalid value is
//!   replaced by nothing (or a neutral error text), never stored.
//!
//! Every refusal is logged with the worker and the field, and counted in
//! `wagate_cp_worker_events_refused_total{kind}` (a fixed set of kinds).

use wagate_proto::text::NulFree;
use wagate_proto::v1;

/// Longest phone number digits (E.164: 15; a little slack for prefixes).
const MAX_PHONE_DIGITS: usize = 20;
/// Shortest phone number digits.
const MIN_PHONE_DIGITS: usize = 5;
pub const MAX_REASON: usize = 500;
pub const MAX_QR: usize = 4096;
pub const MAX_WA_ID: usize = 128;
pub const MAX_ERROR_CODE: usize = 64;
pub const MAX_ERROR_MESSAGE: usize = 500;
const MAX_ENDPOINT: usize = 512;
const MAX_VERSION: usize = 64;

/// Counts and logs one refused worker value.
pub fn refused(kind: &'static str, worker_id: &str, field: &str, why: &str) {
    ::metrics::counter!("wagate_cp_worker_events_refused_total", "kind" => kind).increment(1);
    tracing::warn!(worker_id, kind, field, why, "worker input refused");
}

/// A phone number as a worker may report it: an optional `+` and digits only.
pub fn is_phone(raw: &str) -> bool {
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    (MIN_PHONE_DIGITS..=MAX_PHONE_DIGITS).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// At most `max` characters, none of them a control character.
pub fn is_printable(raw: &str, max: usize) -> bool {
    raw.chars().count() <= max && !raw.chars().any(char::is_control)
}

/// Text that may span lines (error messages): at most `max` characters,
/// no control characters but tab and newlines.
fn is_text(raw: &str, max: usize) -> bool {
    raw.chars().count() <= max && !raw.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// The stream message, unless a string in it holds a NUL (then dropped). A
/// command result is kept (its caller waits for it): [`command_result`]
/// replaces each of its invalid values, NULs included.
pub fn stream_message(worker_id: &str, msg: v1::WorkerMessage) -> Option<v1::WorkerMessage> {
    if matches!(msg.kind, Some(v1::worker_message::Kind::Result(_))) {
        return Some(msg);
    }
    match msg.nul_field() {
        None => Some(msg),
        Some(field) => {
            refused("nul", worker_id, &field, "NUL character");
            None
        }
    }
}

/// Checks what a `Hello` says about the worker (the id and capacity are
/// checked by the handshake itself).
pub fn hello(hello: &v1::Hello) -> Result<(), wagate_proto::error::ApiError> {
    use wagate_proto::error::ApiError;
    if let Some(field) = hello.nul_field() {
        return Err(wagate_proto::text::nul_error(&field));
    }
    if hello.endpoint.len() > MAX_ENDPOINT
        || hello.endpoint.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::invalid(
            "endpoint",
            format!("endpoint must be at most {MAX_ENDPOINT} bytes, without spaces or control characters"),
        ));
    }
    if hello.version.len() > MAX_VERSION || hello.version.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "version",
            format!("version must be at most {MAX_VERSION} bytes, without control characters"),
        ));
    }
    if hello.commands.len() > MAX_COMMANDS || hello.commands.iter().any(|c| !is_command_name(c)) {
        return Err(ApiError::invalid(
            "commands",
            format!("commands must be at most {MAX_COMMANDS} names of lowercase letters, digits and '_'"),
        ));
    }
    Ok(())
}

/// At most this many names in `Hello.commands` (a newer worker may name
/// commands this build does not know: those are skipped, not refused).
const MAX_COMMANDS: usize = 256;

fn is_command_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The phone number of a status event or session state: kept if valid,
/// dropped (with a warning) if not.
pub fn phone(kind: &'static str, worker_id: &str, raw: Option<String>) -> Option<String> {
    let raw = raw.filter(|p| !p.is_empty())?;
    if is_phone(&raw) {
        Some(raw)
    } else {
        refused(kind, worker_id, "phone_number", "not a phone number (digits, optional leading +)");
        None
    }
}

/// The reason of a status event: kept if printable and bounded.
pub fn reason(worker_id: &str, raw: Option<String>) -> Option<String> {
    let raw = raw.filter(|r| !r.is_empty())?;
    if is_text(&raw, MAX_REASON) {
        Some(raw)
    } else {
        refused("status", worker_id, "reason", "too long or control characters");
        None
    }
}

/// A reaction event: a message id, a sender and an emoji (or none), all
/// printable and short, else the event is refused.
pub fn reaction(worker_id: &str, r: &v1::ReactionReceived) -> bool {
    let ok = is_printable(&r.wa_message_id, MAX_WA_ID)
        && !r.wa_message_id.is_empty()
        && is_printable(&r.from, MAX_WA_ID)
        && (r.emoji.is_empty() || is_text(&r.emoji, wagate_proto::contract::limits::MAX_EMOJI));
    if !ok {
        refused("reaction", worker_id, "reaction", "empty ids, too long or control characters");
    }
    ok
}

/// An edit or a deletion of a message: a chat and a message id, printable
/// and short; an edit's text printable and at most a send's. Else refused.
pub fn chat_message(
    worker_id: &str,
    kind: &'static str,
    chat_id: &str,
    wa_id: &str,
    text: Option<&str>,
) -> bool {
    let ok = !chat_id.is_empty()
        && is_printable(chat_id, MAX_WA_ID)
        && !wa_id.is_empty()
        && is_printable(wa_id, MAX_WA_ID)
        && text.is_none_or(|t| is_text(t, wagate_proto::contract::limits::MAX_TEXT));
    if !ok {
        refused(kind, worker_id, kind, "empty ids, too long or control characters");
    }
    ok
}

/// A read receipt: a chat, a reader and 1 to 100 message ids.
pub fn read_receipt(worker_id: &str, r: &v1::MessagesRead) -> bool {
    let ok = !r.chat_id.is_empty()
        && is_printable(&r.chat_id, MAX_WA_ID)
        && is_printable(&r.reader, MAX_WA_ID)
        && (1..=wagate_proto::contract::limits::MAX_READ_IDS).contains(&r.wa_message_ids.len())
        && r.wa_message_ids.iter().all(|id| !id.is_empty() && is_printable(id, MAX_WA_ID));
    if !ok {
        refused("read", worker_id, "read", "empty ids, too many, too long or control characters");
    }
    ok
}

/// A group change: a group id, a known action, 1 to 256 participants.
pub fn group_participants(worker_id: &str, g: &v1::GroupParticipantsChanged) -> bool {
    let ok = g.group_id.ends_with("@g.us")
        && is_printable(&g.group_id, MAX_WA_ID)
        && ["add", "remove", "promote", "demote"].contains(&g.action.as_str())
        && (1..=256).contains(&g.participants.len())
        && g.participants.iter().all(|p| !p.is_empty() && is_printable(p, MAX_WA_ID))
        && g.by.as_deref().is_none_or(|b| is_printable(b, MAX_WA_ID));
    if !ok {
        refused(
            "group_participants",
            worker_id,
            "group_participants",
            "bad group id, action or participants",
        );
    }
    ok
}

/// A presence: a sender, a chat and a known state.
pub fn presence(worker_id: &str, p: &v1::PresenceUpdate) -> bool {
    let ok = !p.from.is_empty()
        && is_printable(&p.from, MAX_WA_ID)
        && is_printable(&p.chat_id, MAX_WA_ID)
        && crate::validation::presence_name(p.state) != "unknown";
    if !ok {
        refused(
            "presence",
            worker_id,
            "presence",
            "empty sender, unknown state, too long or control characters",
        );
    }
    ok
}

/// A QR code: printable and bounded, else the event is refused.
pub fn qr(worker_id: &str, code: &str) -> bool {
    let ok = !code.is_empty() && is_printable(code, MAX_QR);
    if !ok {
        refused("qr", worker_id, "code", "empty, too long or control characters");
    }
    ok
}

/// Replaces what a command result says that must not be stored or shown.
pub fn command_result(worker_id: &str, r: &mut v1::CommandResult) {
    if !r.error_code.is_empty()
        && (r.error_code.len() > MAX_ERROR_CODE
            || !r.error_code.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))
    {
        refused("result", worker_id, "error_code", "not a short code");
        r.error_code = "WORKER_ERROR".to_owned();
    }
    if !is_text(&r.error_message, MAX_ERROR_MESSAGE) {
        refused("result", worker_id, "error_message", "too long or control characters");
        r.error_message = "the worker reported an error (its message was refused)".to_owned();
    }
    match &mut r.payload {
        Some(v1::command_result::Payload::SendReceipt(receipt))
            if !is_printable(&receipt.wa_message_id, MAX_WA_ID) =>
        {
            refused("result", worker_id, "wa_message_id", "too long or control characters");
            receipt.wa_message_id.clear();
        }
        Some(v1::command_result::Payload::SendReceipt(_)) => {}
        Some(v1::command_result::Payload::SessionState(s)) => {
            s.phone_number = phone("result", worker_id, s.phone_number.take());
            if s.qr_code.as_deref().is_some_and(|q| !q.is_empty() && !qr(worker_id, q)) {
                s.qr_code = None;
            }
        }
        Some(v1::command_result::Payload::NumberChecks(checks)) => {
            // One answer per number asked (at most 50), each a plausible JID.
            if checks.numbers.len() > MAX_NUMBER_CHECKS {
                refused("result", worker_id, "numbers", "more answers than numbers asked");
                checks.numbers.truncate(MAX_NUMBER_CHECKS);
            }
            for check in &mut checks.numbers {
                if !is_printable(&check.number, MAX_WA_ID) {
                    check.number.clear();
                }
                if check.jid.as_deref().is_some_and(|j| !is_printable(j, MAX_WA_ID)) {
                    refused("result", worker_id, "jid", "too long or control characters");
                    check.jid = None;
                }
            }
        }
        Some(v1::command_result::Payload::GroupInfo(g)) => group_info(worker_id, g),
        Some(v1::command_result::Payload::GroupList(list)) => {
            if list.groups.len() > MAX_GROUPS {
                refused("result", worker_id, "groups", "too many groups");
                list.groups.truncate(MAX_GROUPS);
            }
            list.groups.iter_mut().for_each(|g| group_info(worker_id, g));
        }
        None => {}
    }
}

/// Groups one answer lists at most (WhatsApp caps an account's groups well below).
const MAX_GROUPS: usize = 10_000;

/// A group as a worker describes it: printable, bounded; what is not is dropped.
fn group_info(worker_id: &str, g: &mut v1::GroupInfo) {
    if !is_printable(&g.id, MAX_WA_ID) {
        refused("result", worker_id, "group_id", "too long or control characters");
        g.id.clear();
    }
    if !is_text(&g.subject, wagate_proto::contract::limits::MAX_GROUP_SUBJECT * 4) {
        refused("result", worker_id, "subject", "too long or control characters");
        g.subject.clear();
    }
    if g.owner.as_deref().is_some_and(|o| !is_printable(o, MAX_WA_ID)) {
        g.owner = None;
    }
    if g.participants.len() > 4096 {
        refused("result", worker_id, "participants", "too many participants");
        g.participants.truncate(4096);
    }
    g.participants.retain(|p| !p.jid.is_empty() && is_printable(&p.jid, MAX_WA_ID));
}

/// The most answers one number check carries (its request holds at most as many).
const MAX_NUMBER_CHECKS: usize = crate::validation::MAX_CHECK_NUMBERS;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        for ok in ["6281234567890", "+6281234567890", "12345"] {
            assert!(is_phone(ok), "{ok}");
        }
        for bad in [
            "<script>alert(1)</script>",
            "",
            "+",
            "62 812",
            "62812345678901234567890",
            "++62812345",
            "6281\u{0}",
        ] {
            assert!(!is_phone(bad), "{bad}");
        }
        assert_eq!(phone("status", "w", Some("<script>1</script>".into())), None);
        assert_eq!(phone("status", "w", Some("+6281234567".into())).as_deref(), Some("+6281234567"));
    }

    #[test]
    fn hello_fields() {
        let ok = v1::Hello {
            worker_id: "w".into(),
            endpoint: "sim://w".into(),
            version: "1.0".into(),
            ..Default::default()
        };
        assert!(hello(&ok).is_ok());
        let bad = v1::Hello { endpoint: "sim://w\u{7}".into(), ..ok.clone() };
        assert_eq!(hello(&bad).unwrap_err().field.as_deref(), Some("endpoint"));
        let bad = v1::Hello { version: "1\n2".into(), ..ok.clone() };
        assert_eq!(hello(&bad).unwrap_err().field.as_deref(), Some("version"));
        let mut bad = ok.clone();
        bad.labels.insert("zone".into(), "a\0".into());
        assert_eq!(hello(&bad).unwrap_err().field.as_deref(), Some("labels[zone]"));
    }

    #[test]
    fn command_results_are_cleaned() {
        let mut r = v1::CommandResult {
            ok: false,
            error_code: "<b>".into(),
            error_message: "x\u{1b}[31m".into(),
            payload: Some(v1::command_result::Payload::SessionState(v1::SessionState {
                phone_number: Some("<script>".into()),
                qr_code: Some("q\u{0}".into()),
                ..Default::default()
            })),
            ..Default::default()
        };
        command_result("w", &mut r);
        assert_eq!(r.error_code, "WORKER_ERROR");
        assert!(!r.error_message.contains('\u{1b}'));
        let Some(v1::command_result::Payload::SessionState(s)) = &r.payload else { panic!("payload") };
        assert_eq!((s.phone_number.as_deref(), s.qr_code.as_deref()), (None, None));
        let mut r = v1::CommandResult {
            ok: true,
            payload: Some(v1::command_result::Payload::SendReceipt(v1::SendReceipt {
                wa_message_id: "x".repeat(500),
            })),
            ..Default::default()
        };
        command_result("w", &mut r);
        let Some(v1::command_result::Payload::SendReceipt(s)) = &r.payload else { panic!("payload") };
        assert!(s.wa_message_id.is_empty());
    }
}
