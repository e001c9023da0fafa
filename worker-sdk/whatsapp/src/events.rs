//! whatsapp-rust events → wagate events: QR codes, status changes (with a
//! reason a customer can read), receipts and acks of sent messages, inbound
//! messages.

use wagate_proto::v1::{MessageStatus, SessionStatus};
use whatsapp_rust::types::events::Event;

/// What one library event means for wagate.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// A new QR code (status `QR_REQUIRED`).
    Qr(String),
    /// A status change, with the phone number when known and a reason.
    Status { status: SessionStatus, reason: Option<String> },
    /// Paired: the phone number is known; custody must be flushed now.
    Paired { phone: String },
    /// Logged in and online.
    Connected,
    /// Unlinked from the phone: custody is wiped and the session stops.
    LoggedOut { reason: String },
    /// Sent messages (WhatsApp ids) moved on.
    Receipts { wa_ids: Vec<String>, status: MessageStatus, error: Option<String> },
    /// Nothing wagate reports.
    Ignored,
}

/// Maps one event.
pub fn map(event: &Event) -> Mapped {
    use whatsapp_rust::types::presence::ReceiptType;
    match event {
        Event::PairingQrCode(q) => Mapped::Qr(q.code.clone()),
        Event::PairingQrCodesExhausted(_) => {
            Mapped::Status { status: SessionStatus::Disconnected, reason: Some("qr_expired".into()) }
        }
        Event::PairSuccess(p) => Mapped::Paired { phone: p.id.user.to_string() },
        Event::PairError(p) => {
            Mapped::Status { status: SessionStatus::Error, reason: Some(format!("pair_error: {}", p.error)) }
        }
        Event::Connected(_) => Mapped::Connected,
        Event::LoggedOut(l) => Mapped::LoggedOut { reason: format!("logged_out: {:?}", l.reason) },
        Event::StreamReplaced(_) => Mapped::Status {
            status: SessionStatus::Disconnected,
            reason: Some("stream_replaced: another WhatsApp Web client took over this device".into()),
        },
        Event::TemporaryBan(b) => Mapped::Status {
            status: SessionStatus::Error,
            reason: Some(format!("temporary_ban: {:?}, expires in {} s", b.code, b.expire.num_seconds())),
        },
        Event::ClientOutdated(_) => Mapped::Status {
            status: SessionStatus::Error,
            reason: Some(
                "client_outdated: WhatsApp refuses this client version; the worker needs an upgrade".into(),
            ),
        },
        Event::Disconnected(d) => Mapped::Status {
            status: SessionStatus::Reconnecting,
            reason: Some(format!("disconnected: {:?}", d.reason)),
        },
        Event::ConnectFailure(f) => Mapped::Status {
            status: SessionStatus::Reconnecting,
            reason: Some(format!("connect_failure: {:?}", f.reason)),
        },
        Event::Receipt(r) => {
            let status = match r.r#type {
                ReceiptType::Delivered => MessageStatus::Delivered,
                ReceiptType::Read | ReceiptType::Played => MessageStatus::Read,
                _ => return Mapped::Ignored,
            };
            Mapped::Receipts {
                wa_ids: r.message_ids.iter().map(ToString::to_string).collect(),
                status,
                error: None,
            }
        }
        Event::ServerAck(a) if a.class.as_deref() == Some("message") => match &a.error {
            Some(code) => Mapped::Receipts {
                wa_ids: vec![a.id.clone()],
                status: MessageStatus::Failed,
                error: Some(format!("wa_nack_{code}")),
            },
            None => Mapped::Ignored,
        },
        _ => Mapped::Ignored,
    }
}
