//! Events a driver reports about its sessions (QR code, status, inbound
//! messages, message status, auth-state snapshots).
//!
//! An [`EventSink`] is a cheap `Clone` handle onto a bounded queue owned by
//! the worker's run loop. The queue survives reconnects: events emitted while
//! the stream is down wait in it and are sent once the stream is back.
//! [`EventSink::emit`] waits when the queue is full (backpressure);
//! [`EventSink::try_emit`] does not.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use wagate_proto::v1::{self, event::Kind};

/// Default capacity of the worker's event queue.
pub const DEFAULT_EVENT_QUEUE_CAPACITY: usize = 4096;

/// Why an event could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// The queue is full (only from [`EventSink::try_emit`]).
    #[error("event queue is full")]
    Full,
    /// The worker (the queue's reader) is gone.
    #[error("event queue is closed")]
    Closed,
}

/// Handle a driver uses to emit [`v1::Event`]s.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::Sender<v1::Event>,
    /// Stores received files (set by a running worker).
    media: Option<std::sync::Arc<crate::media::MediaUploader>>,
}

impl EventSink {
    /// A sink and the receiving end of its queue (what the worker run loop
    /// reads; also handy in tests of a driver).
    pub fn channel(capacity: usize) -> (EventSink, mpsc::Receiver<v1::Event>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (EventSink { tx, media: None }, rx)
    }

    /// This sink, able to store received files through `uploader`.
    pub fn with_media(mut self, uploader: crate::media::MediaUploader) -> Self {
        self.media = Some(std::sync::Arc::new(uploader));
        self
    }

    /// Streams a received file to the control plane (see [`crate::media`]);
    /// emit the inbound message with the returned id as `media_id` after.
    pub async fn upload_media<S>(
        &self,
        file: crate::media::InboundFile,
        bytes: S,
    ) -> Result<v1::MediaInfo, crate::media::MediaUploadError>
    where
        S: futures::Stream<Item = bytes::Bytes> + Send + 'static,
    {
        let uploader = self.media.as_ref().ok_or(crate::media::MediaUploadError::NoUploader)?;
        uploader.upload(file, bytes).await
    }

    /// Streams the bytes of a stored file a send names (`media_id`).
    pub async fn download_media(
        &self,
        media_id: &str,
    ) -> Result<
        impl futures::Stream<Item = Result<bytes::Bytes, crate::media::MediaUploadError>> + use<>,
        crate::media::MediaUploadError,
    > {
        let uploader = self.media.as_ref().ok_or(crate::media::MediaUploadError::NoUploader)?;
        uploader.download(media_id).await
    }

    /// Whether this sink can upload and download files (made by a running worker).
    pub fn has_media(&self) -> bool {
        self.media.is_some()
    }

    /// Queues an event, waiting while the queue is full.
    pub async fn emit(&self, event: v1::Event) -> Result<(), EmitError> {
        self.tx.send(event).await.map_err(|_| EmitError::Closed)
    }

    /// Queues an event if there is room right now.
    pub fn try_emit(&self, event: v1::Event) -> Result<(), EmitError> {
        self.tx.try_send(event).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => EmitError::Full,
            mpsc::error::TrySendError::Closed(_) => EmitError::Closed,
        })
    }

    /// Whether the reading end is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Free slots in the queue right now.
    pub fn capacity(&self) -> usize {
        self.tx.capacity()
    }

    /// A new QR code to show to the user.
    pub async fn qr(
        &self,
        session_id: &str,
        generation: u64,
        code: impl Into<String>,
    ) -> Result<(), EmitError> {
        self.emit(qr_event(session_id, generation, code)).await
    }

    /// The session's status changed.
    pub async fn status(
        &self,
        session_id: &str,
        generation: u64,
        status: v1::SessionStatus,
        phone: Option<String>,
        reason: Option<String>,
    ) -> Result<(), EmitError> {
        self.emit(status_event(session_id, generation, status, phone, reason)).await
    }

    /// A sent message moved on (SENT, DELIVERED, READ, FAILED with `error`).
    pub async fn message_status(
        &self,
        session_id: &str,
        generation: u64,
        message_id: &str,
        status: v1::MessageStatus,
        error: Option<String>,
    ) -> Result<(), EmitError> {
        self.emit(message_status_event(session_id, generation, message_id, status, error)).await
    }

    /// A message arrived for the session.
    pub async fn inbound(
        &self,
        session_id: &str,
        generation: u64,
        wa_message_id: impl Into<String>,
        from: impl Into<String>,
        content: v1::MessageContent,
        timestamp_ms: i64,
    ) -> Result<(), EmitError> {
        self.emit(inbound_event(session_id, generation, wa_message_id, from, content, timestamp_ms)).await
    }

    /// A new snapshot of the session's credentials (stored encrypted by the
    /// control plane and handed back in `StartSession.auth_state`).
    pub async fn auth_state(
        &self,
        session_id: &str,
        generation: u64,
        data: Vec<u8>,
    ) -> Result<(), EmitError> {
        self.emit(auth_state_event(session_id, generation, data)).await
    }
}

fn event(session_id: &str, generation: u64, kind: Kind) -> v1::Event {
    v1::Event { session_id: session_id.to_owned(), generation, kind: Some(kind) }
}

/// A `QrCode` event.
pub fn qr_event(session_id: &str, generation: u64, code: impl Into<String>) -> v1::Event {
    event(session_id, generation, Kind::Qr(v1::QrCode { code: code.into() }))
}

/// A `StatusChanged` event.
pub fn status_event(
    session_id: &str,
    generation: u64,
    status: v1::SessionStatus,
    phone: Option<String>,
    reason: Option<String>,
) -> v1::Event {
    event(
        session_id,
        generation,
        Kind::Status(v1::StatusChanged { status: status as i32, phone_number: phone, reason }),
    )
}

/// A `MessageStatusUpdate` event.
pub fn message_status_event(
    session_id: &str,
    generation: u64,
    message_id: &str,
    status: v1::MessageStatus,
    error: Option<String>,
) -> v1::Event {
    event(
        session_id,
        generation,
        Kind::MessageStatus(v1::MessageStatusUpdate {
            message_id: message_id.to_owned(),
            status: status as i32,
            error,
        }),
    )
}

/// An `InboundMessage` event.
pub fn inbound_event(
    session_id: &str,
    generation: u64,
    wa_message_id: impl Into<String>,
    from: impl Into<String>,
    content: v1::MessageContent,
    timestamp_ms: i64,
) -> v1::Event {
    event(
        session_id,
        generation,
        Kind::InboundMessage(v1::InboundMessage {
            wa_message_id: wa_message_id.into(),
            from: from.into(),
            content: Some(content),
            timestamp_ms,
        }),
    )
}

/// An `AuthStateSnapshot` event.
pub fn auth_state_event(session_id: &str, generation: u64, data: Vec<u8>) -> v1::Event {
    event(session_id, generation, Kind::AuthState(v1::AuthStateSnapshot { data }))
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn helpers_build_the_right_events() {
        let (sink, mut rx) = EventSink::channel(8);
        sink.qr("s1", 3, "2@abc").await.unwrap();
        sink.status("s1", 3, v1::SessionStatus::Connected, Some("628123".into()), None).await.unwrap();
        sink.message_status("s1", 3, "m1", v1::MessageStatus::Delivered, None).await.unwrap();
        sink.auth_state("s1", 3, vec![1, 2, 3]).await.unwrap();

        let qr = rx.recv().await.unwrap();
        assert_eq!((qr.session_id.as_str(), qr.generation), ("s1", 3));
        assert_eq!(qr.kind, Some(Kind::Qr(v1::QrCode { code: "2@abc".into() })));
        match rx.recv().await.unwrap().kind {
            Some(Kind::Status(s)) => {
                assert_eq!(s.status(), v1::SessionStatus::Connected);
                assert_eq!(s.phone_number.as_deref(), Some("628123"));
            }
            other => panic!("unexpected {other:?}"),
        }
        match rx.recv().await.unwrap().kind {
            Some(Kind::MessageStatus(m)) => {
                assert_eq!(m.message_id, "m1");
                assert_eq!(m.status(), v1::MessageStatus::Delivered);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            rx.recv().await.unwrap().kind,
            Some(Kind::AuthState(v1::AuthStateSnapshot { data: vec![1, 2, 3] }))
        );
    }

    #[tokio::test]
    async fn try_emit_reports_full_and_closed() {
        let (sink, rx) = EventSink::channel(1);
        sink.try_emit(qr_event("s", 1, "a")).unwrap();
        assert_eq!(sink.try_emit(qr_event("s", 1, "b")), Err(EmitError::Full));
        drop(rx);
        assert!(sink.is_closed());
        assert_eq!(sink.try_emit(qr_event("s", 1, "c")), Err(EmitError::Closed));
        assert_eq!(sink.emit(qr_event("s", 1, "d")).await, Err(EmitError::Closed));
    }
}
