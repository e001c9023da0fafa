//! Text that enters the system: no string may hold a NUL character
//! (PostgreSQL refuses it in `text` columns, and no legitimate input needs
//! it). The walk over every string field of every `wagate.v1` message is
//! generated from the descriptor set by `build_text.rs`, so a new field is
//! covered without anyone listing it:
//!
//! - [`NulFree::nul_field`]: the path (`content.text`, `items[2].name`) of
//!   the first string holding a NUL, if any;
//! - [`Incoming`]: whether a message is a request a server decodes (the
//!   input of a unary or server-streaming method); [`crate::codec::CheckedCodec`]
//!   refuses those with INVALID_ARGUMENT naming the field. Stream messages
//!   (`WorkerMessage`) are checked by the control plane per message instead,
//!   so one bad event does not end a worker's stream.
//! - [`GRPC_METHODS`]: every method path, the fixed label set of metrics.

/// True when `s` holds a NUL character.
#[inline]
pub fn has_nul(s: &str) -> bool {
    s.as_bytes().contains(&0)
}

/// The string fields of a message, walked for NUL characters.
pub trait NulFree {
    /// Path of the first string field holding a NUL (proto field names,
    /// `.` into messages, `[i]` / `[key]` into repeated fields and maps).
    fn nul_field(&self) -> Option<String>;
}

/// What a server checks in a message it decodes.
pub trait Incoming: NulFree {
    /// The message is the request of a unary or server-streaming method.
    const REQUEST: bool;

    /// The field a server refuses this message for, if any (`None` for
    /// messages that are not requests: replies are never refused).
    fn refused_field(&self) -> Option<String> {
        if Self::REQUEST { self.nul_field() } else { None }
    }
}

/// The refusal of a request whose `field` holds a NUL.
pub fn nul_error(field: &str) -> crate::error::ApiError {
    crate::error::ApiError::invalid(field, format!("{field} must not contain NUL characters"))
}

#[allow(clippy::all, clippy::pedantic, unused_variables)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/wagate_text.rs"));
}

pub use generated::GRPC_METHODS;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;

    #[test]
    fn every_string_field_is_walked() {
        let send = v1::SendRequest::default();
        assert_eq!(send.nul_field(), None);
        let mut content = v1::MessageContent { text: "hi\0".into(), ..Default::default() };
        let req = v1::SendRequest { content: Some(content.clone()), ..Default::default() };
        assert_eq!(req.nul_field().as_deref(), Some("content.text"));
        content.text = "hi".into();
        content.caption = Some("a\0b".into());
        let req = v1::SendRequest { content: Some(content), ..Default::default() };
        assert_eq!(req.nul_field().as_deref(), Some("content.caption"));
        assert_eq!(req.refused_field().as_deref(), Some("content.caption"));
        let login = v1::LoginRequest { email: "a\0@b.c".into(), ..Default::default() };
        assert_eq!(login.refused_field().as_deref(), Some("email"));
        // a oneof inside a stream message
        let ev = v1::Event {
            session_id: "s".into(),
            kind: Some(v1::event::Kind::Status(v1::StatusChanged {
                phone_number: Some("62\0".into()),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(ev.nul_field().as_deref(), Some("status.phone_number"));
        let msg = v1::WorkerMessage { kind: Some(v1::worker_message::Kind::Event(ev)) };
        assert_eq!(msg.nul_field().as_deref(), Some("event.status.phone_number"));
        // stream messages are not refused by the codec, replies neither
        assert_eq!(msg.refused_field(), None);
        const { assert!(!<v1::AuthResponse as Incoming>::REQUEST) };
    }

    /// What the control plane's check costs a send (the walk of a decoded
    /// `SendRequest`): `cargo test -p wagate-proto --lib -- request_check_cost --nocapture`.
    #[test]
    fn request_check_cost() {
        for (name, text) in
            [("short text", "hello from the benchmark".to_owned()), ("4096-char text", "x".repeat(4096))]
        {
            let req = v1::SendRequest {
                session_id: "bench-session-1".into(),
                to: "6281234567890".into(),
                content: Some(v1::MessageContent { text, ..Default::default() }),
            };
            let rounds = 200_000u32;
            let started = std::time::Instant::now();
            for _ in 0..rounds {
                assert!(std::hint::black_box(&req).refused_field().is_none());
            }
            println!("request check of a send with a {name}: {:?} per request", started.elapsed() / rounds);
        }
    }

    #[test]
    fn method_list_is_complete() {
        assert!(GRPC_METHODS.contains(&"/wagate.v1.MessageService/Send"));
        assert!(GRPC_METHODS.contains(&"/wagate.v1.WorkerService/Connect"));
        assert!(GRPC_METHODS.len() > 40, "{}", GRPC_METHODS.len());
    }
}
