//! Events from workers: QR codes, session status, message status, inbound
//! messages. Every write is fenced: it only applies when the session is
//! still placed on the sending worker with the same generation.

use crate::persistence::DbErr;
use chrono::Utc;
use wagate_proto::v1::{self, event};

use crate::convert;
use crate::persistence::enums::{MessageStatus, SessionStatus};
use crate::persistence::messages::InboundMessage;
use crate::persistence::sessions::{self, Fence, FencedWrite};
use crate::persistence::status_writer::{EventKind, StatusUpdate};
use crate::state::SharedState;
use crate::webhooks::{EventType, outbox, payload};

pub async fn handle(state: &SharedState, worker_id: &str, ev: v1::Event) {
    let session_id = ev.session_id.clone();
    let result = match ev.kind {
        Some(event::Kind::Qr(qr)) => on_qr(state, worker_id, &ev.session_id, ev.generation, qr).await,
        Some(event::Kind::Status(st)) => on_status(state, worker_id, &ev.session_id, ev.generation, st).await,
        Some(event::Kind::MessageStatus(ms)) => on_message_status(state, worker_id, &ev.session_id, ms).await,
        Some(event::Kind::InboundMessage(m)) => {
            on_inbound(state, worker_id, &ev.session_id, ev.generation, m).await
        }
        Some(event::Kind::AuthState(snap)) => {
            on_auth_state(state, worker_id, &ev.session_id, ev.generation, snap).await
        }
        Some(event::Kind::Reaction(r)) => {
            on_reaction(state, worker_id, &ev.session_id, ev.generation, r).await
        }
        Some(event::Kind::Edited(e)) => {
            on_chat_event(state, worker_id, &ev.session_id, ev.generation, ChatEvent::Edited(e)).await
        }
        Some(event::Kind::Deleted(e)) => {
            on_chat_event(state, worker_id, &ev.session_id, ev.generation, ChatEvent::Deleted(e)).await
        }
        Some(event::Kind::Read(e)) => {
            on_chat_event(state, worker_id, &ev.session_id, ev.generation, ChatEvent::Read(e)).await
        }
        Some(event::Kind::GroupParticipants(e)) => {
            on_chat_event(state, worker_id, &ev.session_id, ev.generation, ChatEvent::Group(e)).await
        }
        Some(event::Kind::Presence(e)) => {
            on_chat_event(state, worker_id, &ev.session_id, ev.generation, ChatEvent::Presence(e)).await
        }
        None => Ok(0),
    };
    match result {
        Ok(0) => {
            tracing::debug!(session_id, "event ignored (stale generation, unknown session or no change)")
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(session_id, error = %err, "event write failed"),
    }
}

async fn on_qr(
    state: &SharedState,
    worker_id: &str,
    session_id: &str,
    generation: u64,
    qr: v1::QrCode,
) -> Result<u64, DbErr> {
    if !crate::stream::input::qr(worker_id, &qr.code) {
        return Ok(0);
    }
    // `qr_since` starts the QR timeout's clock unless it already runs.
    let fence = Fence::of_event(session_id, worker_id, generation);
    let write = FencedWrite::Qr { code: qr.code.clone(), at: Utc::now() };
    let affected = outbox::execute_with_event(state, EventType::SessionQr, &fence, &write, || {
        payload::SessionQrData { qr_code: qr.code }
    })
    .await?;
    if affected > 0 {
        crate::auth::invalidation::session_soon(state, session_id);
    }
    Ok(affected)
}

async fn on_status(
    state: &SharedState,
    worker_id: &str,
    session_id: &str,
    generation: u64,
    st: v1::StatusChanged,
) -> Result<u64, DbErr> {
    let Some(status) =
        v1::SessionStatus::try_from(st.status).ok().and_then(convert::session_status_from_proto)
    else {
        return Ok(0);
    };
    // Checked like client input: an invalid phone number or reason is dropped, never stored.
    let phone = crate::stream::input::phone("status", worker_id, st.phone_number);
    let reason = crate::stream::input::reason(worker_id, st.reason);
    // The phone unlinked the device: its credentials are dead.
    let logged_out = status == SessionStatus::Disconnected
        && reason.as_deref().is_some_and(|r| r.eq_ignore_ascii_case("logged_out"));
    let fence = Fence::of_event(session_id, worker_id, generation);
    // What the session leaves, read only for a drop (the owner's
    // notification names that row as the incident).
    let left = if status == SessionStatus::Disconnected {
        sessions::by_id(&state.db.conn, session_id)
            .await?
            .filter(|s| matches!(s.status, SessionStatus::Connected | SessionStatus::Reconnecting))
            .map(|s| s.updated_at)
    } else {
        None
    };
    let notify_reason = reason.clone();
    let write = FencedWrite::Status { status, phone: phone.clone(), at: Utc::now() };
    let affected = outbox::execute_with_event(state, EventType::SessionStatus, &fence, &write, || {
        payload::SessionStatusData { status: status.db_value(), reason, phone_number: phone }
    })
    .await?;
    if let (Some(left_at), true) = (left, affected > 0) {
        crate::email::notify::session_down(state, session_id, left_at, "DISCONNECTED", notify_reason);
    }
    if affected > 0 {
        // The session's status is part of what its key lookup returns.
        crate::auth::invalidation::session_soon(state, session_id);
    }
    if logged_out && affected > 0 {
        match crate::stream::custody::wipe(&state.db, session_id).await {
            Ok(_) => tracing::info!(session_id, worker_id, "logged out on the phone: credentials wiped"),
            Err(err) => {
                tracing::warn!(session_id, error = %err, "credentials of a logged-out session not wiped")
            }
        }
    }
    if status == SessionStatus::Connected && affected > 0 {
        // Sends accepted while the session moved, or in flight on a lost
        // worker, go out now.
        crate::fleet::failover::spawn_redispatch(state, session_id);
    }
    Ok(affected)
}

/// A reaction from the other side: the `message.reaction` webhook event,
/// naming the wagate message when wagate knows it.
async fn on_reaction(
    state: &SharedState,
    worker_id: &str,
    session_id: &str,
    generation: u64,
    r: v1::ReactionReceived,
) -> Result<u64, DbErr> {
    if !crate::stream::input::reaction(worker_id, &r) {
        return Ok(0);
    }
    let db = &state.db;
    if !sessions::fence_holds(db, &Fence::of_event(session_id, worker_id, generation)).await? {
        return Ok(0);
    }
    let message_id = crate::persistence::messages::by_ref_in_session(db, &r.wa_message_id, session_id)
        .await?
        .map(|m| m.id);
    let data = payload::MessageReactionData {
        message_id,
        wa_message_id: r.wa_message_id,
        from: r.from,
        emoji: r.emoji,
    };
    if outbox::event(&db.conn, state, session_id, EventType::MessageReaction, &data).await? {
        state.webhooks.committed();
    }
    Ok(1)
}

/// The worker events that only become an event of the session (webhook and
/// live log): nothing else changes.
enum ChatEvent {
    Edited(v1::MessageEdited),
    Deleted(v1::MessageDeleted),
    Read(v1::MessagesRead),
    Group(v1::GroupParticipantsChanged),
    Presence(v1::PresenceUpdate),
}

/// Checks a [`ChatEvent`] (refused if malformed), its fence, names the
/// wagate messages it is about, and records its event.
async fn on_chat_event(
    state: &SharedState,
    worker_id: &str,
    session_id: &str,
    generation: u64,
    e: ChatEvent,
) -> Result<u64, DbErr> {
    use crate::stream::input;
    let ok = match &e {
        ChatEvent::Edited(m) => {
            input::chat_message(worker_id, "edited", &m.chat_id, &m.wa_message_id, Some(&m.text))
        }
        ChatEvent::Deleted(m) => {
            input::chat_message(worker_id, "deleted", &m.chat_id, &m.wa_message_id, None)
        }
        ChatEvent::Read(r) => input::read_receipt(worker_id, r),
        ChatEvent::Group(g) => input::group_participants(worker_id, g),
        ChatEvent::Presence(p) => input::presence(worker_id, p),
    };
    if !ok {
        return Ok(0);
    }
    let db = &state.db;
    if !sessions::fence_holds(db, &Fence::of_event(session_id, worker_id, generation)).await? {
        return Ok(0);
    }
    let wagate_id = |wa: String| async move {
        crate::persistence::messages::by_ref_in_session(db, &wa, session_id).await.map(|m| m.map(|m| m.id))
    };
    let recorded = match e {
        ChatEvent::Edited(m) => {
            let data = payload::MessageEditedData {
                message_id: wagate_id(m.wa_message_id.clone()).await?,
                wa_message_id: m.wa_message_id,
                chat_id: m.chat_id,
                from_me: m.from_me,
                text: m.text,
            };
            outbox::event(&db.conn, state, session_id, EventType::MessageEdited, &data).await?
        }
        ChatEvent::Deleted(m) => {
            let data = payload::MessageDeletedData {
                message_id: wagate_id(m.wa_message_id.clone()).await?,
                wa_message_id: m.wa_message_id,
                chat_id: m.chat_id,
                from_me: m.from_me,
            };
            outbox::event(&db.conn, state, session_id, EventType::MessageDeleted, &data).await?
        }
        ChatEvent::Read(r) => {
            let mut message_ids = Vec::with_capacity(r.wa_message_ids.len());
            for wa in &r.wa_message_ids {
                if let Some(id) = wagate_id(wa.clone()).await? {
                    message_ids.push(id);
                }
            }
            let at = chrono::DateTime::from_timestamp_millis(r.timestamp_ms).unwrap_or_else(Utc::now);
            let data = payload::MessageReadData {
                chat_id: r.chat_id,
                reader: r.reader,
                wa_message_ids: r.wa_message_ids,
                message_ids,
                timestamp: payload::rfc3339(at),
            };
            outbox::event(&db.conn, state, session_id, EventType::MessageRead, &data).await?
        }
        ChatEvent::Group(g) => {
            let data = payload::GroupParticipantsData {
                group_id: g.group_id,
                action: g.action,
                participants: g.participants,
                by: g.by.filter(|b| !b.is_empty()),
            };
            outbox::event(&db.conn, state, session_id, EventType::GroupParticipants, &data).await?
        }
        ChatEvent::Presence(p) => {
            let data = payload::PresenceData {
                chat_id: p.chat_id,
                from: p.from,
                state: crate::validation::presence_name(p.state).to_owned(),
            };
            outbox::event(&db.conn, state, session_id, EventType::Presence, &data).await?
        }
    };
    if recorded {
        state.webhooks.committed();
    }
    Ok(1)
}

async fn on_auth_state(
    state: &SharedState,
    worker_id: &str,
    session_id: &str,
    generation: u64,
    snap: v1::AuthStateSnapshot,
) -> Result<u64, DbErr> {
    if snap.data.is_empty() || snap.data.len() > 1024 * 1024 {
        return Ok(0);
    }
    let db = &state.db;
    if !sessions::fence_holds(db, &Fence::of_event(session_id, worker_id, generation)).await? {
        return Ok(0);
    }
    match crate::stream::custody::store(db, &state.vault, session_id, generation, &snap.data).await {
        Ok(n) => Ok(n),
        Err(crate::stream::custody::CustodyError::Db(e)) => Err(e),
        Err(e) => {
            tracing::error!(session_id, error = %e, "auth-state snapshot not stored");
            Ok(0)
        }
    }
}

async fn on_message_status(
    state: &SharedState,
    worker_id: &str,
    session_id: &str,
    ms: v1::MessageStatusUpdate,
) -> Result<u64, DbErr> {
    let Some(status) =
        v1::MessageStatus::try_from(ms.status).ok().and_then(convert::message_status_from_proto)
    else {
        return Ok(0);
    };
    // Status only moves forward; FAILED only replaces PENDING/SENT. Written
    // in batches by the status writer, so this stream's reader (and the
    // command results behind this event) never waits on the database.
    let kind = match status {
        MessageStatus::Pending => return Ok(0),
        MessageStatus::Sent => EventKind::Sent,
        MessageStatus::Delivered => EventKind::Delivered,
        MessageStatus::Read => EventKind::Read,
        MessageStatus::Failed => EventKind::Failed,
    };
    state
        .status_writer
        .submit(StatusUpdate::Event {
            kind,
            id: ms.message_id,
            session_id: session_id.to_owned(),
            worker_id: worker_id.to_owned(),
            at: Utc::now(),
        })
        .await?;
    Ok(1)
}

async fn on_inbound(
    state: &SharedState,
    worker_id: &str,
    session_id: &str,
    generation: u64,
    m: v1::InboundMessage,
) -> Result<u64, DbErr> {
    if let Err(e) = crate::validation::inbound(&m) {
        // Refused and counted, never stored.
        ::metrics::counter!("wagate_cp_worker_events_refused_total", "kind" => "inbound").increment(1);
        tracing::warn!(worker_id, session_id, error = %wagate_proto::error::ApiError::from(e), "inbound message refused");
        return Ok(0);
    }
    let mut content = m.content.unwrap_or_default();
    // A received file the worker stored first (MediaService.Upload): only a
    // media row of this very session is believed.
    let media = match content.media_id.as_deref() {
        Some(id) => {
            crate::persistence::media::by_id(&state.db, id).await?.filter(|r| r.session_id == session_id)
        }
        None => None,
    };
    if content.media_id.is_some() && media.is_none() {
        ::metrics::counter!("wagate_cp_worker_events_refused_total", "kind" => "inbound").increment(1);
        tracing::warn!(worker_id, session_id, "inbound message names media of another session or none");
        content.media_id = None;
    }
    let kind = v1::MessageType::try_from(content.r#type)
        .ok()
        .and_then(convert::message_type_from_proto)
        .unwrap_or(crate::persistence::enums::MessageType::Text);
    let created = chrono::DateTime::from_timestamp_millis(m.timestamp_ms)
        .filter(|_| m.timestamp_ms > 0)
        .unwrap_or_else(Utc::now);
    let message_id = uuid::Uuid::now_v7().to_string();
    let from: String = m.from.chars().take(128).collect();
    let wa_message_id: String = m.wa_message_id.chars().take(128).collect();
    let text: String = content.text.chars().take(65_536).collect();
    let fence = Fence::of_event(session_id, worker_id, generation);
    let write = FencedWrite::Inbound(InboundMessage {
        id: message_id.clone(),
        from: from.clone(),
        kind,
        text: text.clone(),
        media_url: content.media_url.clone(),
        filename: content.filename.clone(),
        caption: content.caption.clone(),
        created_at: created,
        wa_message_id: wa_message_id.clone(),
        metadata: media.as_ref().map(|m| crate::media::service::metadata(m).to_string()),
    });
    outbox::execute_with_event(state, EventType::MessageReceived, &fence, &write, || {
        let mut data = inbound_payload(message_id, wa_message_id, from, kind, text, content, created);
        data.media = media.as_ref().map(|m| payload::EventMedia {
            id: m.id.clone(),
            mime_type: m.mime_type.clone(),
            size: u64::try_from(m.size_bytes).unwrap_or_default(),
            sha256: m.sha256.clone(),
            url: format!("/api/v1/media/{}", m.id),
        });
        data
    })
    .await
}

/// The `message.received` payload of an inbound message.
fn inbound_payload(
    message_id: String,
    wa_message_id: String,
    from: String,
    kind: crate::persistence::enums::MessageType,
    text: String,
    content: v1::MessageContent,
    at: chrono::DateTime<Utc>,
) -> payload::MessageReceivedData {
    use crate::persistence::enums::MessageType;
    let location = match (kind, content.latitude, content.longitude) {
        (MessageType::Location, Some(latitude), Some(longitude)) => {
            Some(payload::EventLocation { latitude, longitude, name: content.name.clone() })
        }
        _ => None,
    };
    let contact = (kind == MessageType::Contact).then(|| payload::EventContact {
        name: content.name.clone(),
        phone: content.phone.clone(),
        vcard: content.vcard.clone(),
    });
    payload::MessageReceivedData {
        message_id,
        wa_message_id,
        from,
        kind: kind.db_value(),
        text: (!text.is_empty()).then_some(text),
        caption: content.caption,
        media_url: content.media_url,
        filename: content.filename,
        location,
        contact,
        media: None,
        timestamp: payload::rfc3339(at),
    }
}
