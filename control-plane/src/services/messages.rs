//! MessageService.Send: the hot path.
//!
//! API key → session (in-memory cache, else one indexed join) → validate → message row PENDING
//! (durable before dispatch) → SendMessage on the owning worker's stream →
//! ack → SENT (batched, see `persistence::status_writer`) or FAILED with
//! the reason (see `send_dispatch`). Later status events from the
//! worker move the row to DELIVERED / READ.

use chrono::Utc;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use wagate_proto::contract::limits::MAX_IDEMPOTENCY_KEY;
use wagate_proto::error::ErrorCode;
use wagate_proto::time::to_proto;
use wagate_proto::v1::{self, message_service_server::MessageService};

use crate::auth::identity;
use crate::convert;
use crate::error::{CpError, CpResult, api, invalid, is_unique_violation};
use crate::limits::Decision;
use crate::limits::layer::{DeferredIpCheck, check_deferred};
use crate::limits::quota;
use crate::persistence::enums::{MessageDirection, MessageStatus, MessageType, SessionStatus};
use crate::persistence::media::{self as media_rows, MediaRow};
use crate::persistence::message_inserter::LedgerRow;
use crate::persistence::messages::{self as message_rows, Message};
use crate::send::dispatch::{self, SendOutcome, Unreached};
use crate::send::tracker::InFlight;
use crate::state::SharedState;
use crate::validation;

pub struct MessageApi {
    state: SharedState,
}

/// The session an API key unlocks.
struct KeySession {
    key_id: String,
    owner: quota::Owner,
    session_id: String,
    status: SessionStatus,
    worker_id: Option<String>,
    generation: i64,
}

impl MessageApi {
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }

    async fn authenticate(&self, md: &tonic::metadata::MetadataMap) -> CpResult<KeySession> {
        let entry = crate::services::session_key(&self.state, md)
            .await?
            .ok_or_else(|| api(ErrorCode::Unauthenticated, "session API key required"))?;
        Ok(KeySession {
            owner: quota::Owner {
                user_id: entry.user_id,
                tier: entry.tier,
                custom_quota: entry.message_quota,
            },
            key_id: entry.key_id,
            session_id: entry.session_id,
            status: entry.status,
            worker_id: entry.worker_id,
            generation: entry.generation,
        })
    }

    async fn send(
        &self,
        md: tonic::metadata::MetadataMap,
        req: v1::SendRequest,
        ip_check: &mut Option<DeferredIpCheck>,
    ) -> CpResult<(v1::SendResponse, Option<Decision>)> {
        self.state.ensure_running()?;
        let ks = self.authenticate(&md).await?;
        if ks.session_id != req.session_id {
            return Err(api(ErrorCode::SessionNotFound, "session not found"));
        }
        let to = validation::recipient(&req.to)?;
        let kind = validation::content(req.content.as_ref())?;
        let mut content = req.content.unwrap_or_default();
        content.mentions = validation::mentions(&content.mentions)?;
        let media = self.attach_media(&ks, &mut content).await?;
        let idempotency_key = md
            .get(wagate_proto::metadata::IDEMPOTENCY_KEY)
            .map(|v| v.to_str().map(str::trim).map(str::to_owned))
            .transpose()
            .map_err(|_| invalid("Idempotency-Key", "Idempotency-Key must be printable ASCII"))?
            .filter(|k| !k.is_empty());
        if idempotency_key.as_ref().is_some_and(|k| k.len() > MAX_IDEMPOTENCY_KEY) {
            return Err(invalid(
                "Idempotency-Key",
                format!("Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY} characters"),
            ));
        }
        if let Some(k) = &idempotency_key
            && let Some(existing) = self.find_idempotent(&ks.session_id, k).await?
        {
            return Ok((response(&existing), None));
        }
        // A paired session moving to another worker (RECONNECTING) queues the
        // send: it goes out once the session is CONNECTED again.
        let queue_only = ks.status == SessionStatus::Reconnecting;
        if ks.status != SessionStatus::Connected && !queue_only {
            return Err(api(
                ErrorCode::SessionNotConnected,
                format!("session is not connected (status {})", status_name(ks.status)),
            ));
        }
        let worker_id = ks.worker_id.clone().unwrap_or_default();
        if worker_id.is_empty() && !queue_only {
            return Err(api(ErrorCode::WorkerUnavailable, "session has no worker"));
        }
        if let Some(reference) = content.quoted_message_id.take().filter(|q| !q.trim().is_empty()) {
            let (wa_id, participant) = self.quoted(&ks.session_id, &reference).await?;
            content.quoted_message_id = Some(wa_id);
            content.quoted_participant = participant;
        }

        // The owner's tier quota and the client-IP limit (one atomic check,
        // shared by every replica); a repeated idempotent send above was not
        // counted against the quota again.
        let quota = quota::take(&self.state, &ks.owner, 1, ip_check).await?;

        let inserted = Inserted { id: uuid::Uuid::now_v7().to_string(), created_at: Utc::now() };
        let row =
            new_row(&inserted, &ks.session_id, &to, kind, &content, media.as_ref(), idempotency_key.clone());
        let ledger = LedgerRow {
            id: inserted.id.clone(),
            session_id: ks.session_id.clone(),
            created_at: inserted.created_at,
            attempts: if queue_only { 0 } else { 1 },
            dispatched_at: (!queue_only).then_some(inserted.created_at),
        };
        // Tracked before its ledger row is visible: no re-dispatch can pick
        // it up while this request owns it. The guard ends the entry on
        // every path out of here (including this future being dropped).
        let guard = if queue_only { None } else { self.state.send_tracker.begin(&inserted.id) };
        // Group commit: returns once the row is durable (see `persistence::message_inserter`).
        match self.state.message_inserter.insert(row, Some(ledger)).await {
            Ok(()) => {}
            Err(e) if is_unique_violation(&e) && idempotency_key.is_some() => {
                drop(guard);
                quota::give_back(&self.state, &ks.owner, 1).await;
                // A concurrent request with the same key won the race.
                let k = idempotency_key.unwrap_or_default();
                let existing = self.find_idempotent(&ks.session_id, &k).await?.ok_or(CpError::Db(e))?;
                return Ok((response(&existing), None));
            }
            Err(e) => {
                drop(guard);
                quota::give_back(&self.state, &ks.owner, 1).await;
                return Err(e.into());
            }
        }

        self.state.usage.message(&ks.owner.user_id, &ks.session_id, &ks.key_id, kind);
        let reply = self.dispatch(&ks, &worker_id, &inserted, to, content, guard).await?;
        Ok((reply, quota))
    }

    /// Dispatches the durable row on the session's worker under its tracker
    /// entry (none: the session reconnects, the row stays queued).
    async fn dispatch(
        &self,
        ks: &KeySession,
        worker_id: &str,
        inserted: &Inserted,
        to: String,
        content: v1::MessageContent,
        guard: Option<InFlight>,
    ) -> CpResult<v1::SendResponse> {
        let Some(guard) = guard else {
            return Ok(pending(inserted, to));
        };
        let send = v1::SendMessage {
            session_id: ks.session_id.clone(),
            generation: u64::try_from(ks.generation).unwrap_or_default(),
            message_id: inserted.id.clone(),
            to: to.clone(),
            content: Some(content),
            attempt: 1,
        };
        match dispatch::dispatch_tracked(&self.state, worker_id, send, Unreached::Fail, guard).await {
            SendOutcome::Sent => Ok(v1::SendResponse {
                message_id: inserted.id.clone(),
                status: v1::MessageStatus::Sent as i32,
                to,
                error: None,
                created_at: Some(to_proto(inserted.created_at)),
            }),
            SendOutcome::Failed { reason, error: None } => Ok(v1::SendResponse {
                message_id: inserted.id.clone(),
                status: v1::MessageStatus::Failed as i32,
                to,
                error: Some(reason),
                created_at: Some(to_proto(inserted.created_at)),
            }),
            SendOutcome::Failed { error: Some(e), .. } => Err(CpError::Dispatch(e)),
            // Re-dispatched on the session's new worker after failover.
            SendOutcome::Lost(_) => Ok(pending(inserted, to)),
            // Outcome unknown: the worker may still send it; its status
            // events settle the row, or the sweep dispatches it again.
            SendOutcome::TimedOut(e) | SendOutcome::NotReached(e) => Err(CpError::Api(
                wagate_proto::error::ApiError::from(e)
                    .with_message_suffix(&format!("; message {} is pending", inserted.id)),
            )),
        }
    }

    /// The uploaded file a media send names (`mediaId`), of this session and
    /// still kept: its type and size go to the worker with the message.
    async fn attach_media(
        &self,
        ks: &KeySession,
        content: &mut v1::MessageContent,
    ) -> CpResult<Option<MediaRow>> {
        let Some(id) = content.media_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let now = Utc::now();
        let row = media_rows::of_user(&self.state.db, id, &ks.owner.user_id)
            .await?
            .filter(|m| m.session_id == ks.session_id && m.expires_at > now)
            .ok_or_else(|| {
                CpError::Api(wagate_proto::error::ApiError {
                    field: Some("mediaId".into()),
                    ..wagate_proto::error::ApiError::new(ErrorCode::NotFound, "media not found")
                })
            })?;
        content.media_id = Some(row.id.clone());
        content.mime_type = Some(row.mime_type.clone());
        content.media_size = u64::try_from(row.size_bytes).ok();
        content.media_sha256 = Some(row.sha256.clone());
        if content.filename.is_none() {
            content.filename = row.filename.clone();
        }
        Ok(Some(row))
    }

    async fn find_idempotent(&self, session_id: &str, key: &str) -> CpResult<Option<Message>> {
        Ok(message_rows::by_idempotency_key(&self.state.db, session_id, key).await?)
    }
}

/// What the send needs of its inserted row.
struct Inserted {
    id: String,
    created_at: chrono::DateTime<Utc>,
}

fn status_name(s: SessionStatus) -> &'static str {
    match s {
        SessionStatus::Init => "INIT",
        SessionStatus::QrRequired => "QR_REQUIRED",
        SessionStatus::Connected => "CONNECTED",
        SessionStatus::Disconnected => "DISCONNECTED",
        SessionStatus::Reconnecting => "RECONNECTING",
        SessionStatus::Error => "ERROR",
    }
}

/// Accepted and durable, not yet acknowledged by a worker.
fn pending(m: &Inserted, to: String) -> v1::SendResponse {
    v1::SendResponse {
        message_id: m.id.clone(),
        status: v1::MessageStatus::Pending as i32,
        to,
        error: None,
        created_at: Some(to_proto(m.created_at)),
    }
}

fn response(m: &Message) -> v1::SendResponse {
    v1::SendResponse {
        message_id: m.id.clone(),
        status: convert::message_status_to_proto(m.status) as i32,
        to: m.to_number.clone(),
        error: m.error_message.clone(),
        created_at: Some(to_proto(m.created_at)),
    }
}

fn new_row(
    inserted: &Inserted,
    session_id: &str,
    to: &str,
    kind: v1::MessageType,
    c: &v1::MessageContent,
    media: Option<&MediaRow>,
    idempotency_key: Option<String>,
) -> Message {
    let message_type = convert::message_type_from_proto(kind).unwrap_or(MessageType::Text);
    let (body, metadata) = match message_type {
        MessageType::Text => (c.text.clone(), None),
        MessageType::Location => (
            c.name.clone().unwrap_or_else(|| {
                format!("{},{}", c.latitude.unwrap_or_default(), c.longitude.unwrap_or_default())
            }),
            Some(
                serde_json::json!({ "latitude": c.latitude, "longitude": c.longitude, "name": c.name })
                    .to_string(),
            ),
        ),
        MessageType::Contact => (
            c.name.clone().unwrap_or_default(),
            Some(serde_json::json!({ "name": c.name, "phone": c.phone, "vcard": c.vcard }).to_string()),
        ),
        _ => (
            c.caption.clone().unwrap_or_default(),
            media.map(|m| crate::media::service::metadata(m).to_string()),
        ),
    };
    let metadata = convert::with_reply_fields(metadata, c);
    Message {
        id: inserted.id.clone(),
        session_id: session_id.to_owned(),
        direction: MessageDirection::Outbound,
        from_number: None,
        to_number: to.to_owned(),
        message_type,
        content: body,
        media_url: c.media_url.clone(),
        filename: c.filename.clone(),
        caption: c.caption.clone(),
        status: MessageStatus::Pending,
        error_message: None,
        sent_at: None,
        delivered_at: None,
        read_at: None,
        created_at: inserted.created_at,
        wa_message_id: None,
        idempotency_key,
        metadata,
        edited_at: None,
        deleted_at: None,
    }
}

#[tonic::async_trait]
impl MessageService for MessageApi {
    async fn send(&self, request: Request<v1::SendRequest>) -> Result<Response<v1::SendResponse>, Status> {
        let request_id = identity::request_id(request.metadata());
        let (md, extensions, req) = request.into_parts();
        let mut ip_check = extensions.get::<DeferredIpCheck>().cloned();
        let span = tracing::debug_span!("send", session_id = %req.session_id, request_id);
        let mut result = self.send(md, req, &mut ip_check).instrument(span).await;
        // A send that ended before its limits were checked (refused, or an
        // idempotent repeat) still counts against its client IP.
        if let Some(ip) = ip_check {
            match check_deferred(&self.state, &ip).await {
                Err(refusal) => result = Err(CpError::Api(refusal)),
                Ok(d) => {
                    if let Ok((_, applied)) = &mut result {
                        applied.get_or_insert(d);
                    }
                }
            }
        }
        crate::telemetry::metrics::send_outcome(send_outcome(&result));
        let (reply, quota) = result?;
        let mut response = Response::new(reply);
        if let Some(d) = quota {
            d.info().write(response.metadata_mut());
        }
        Ok(response)
    }

    async fn check_numbers(
        &self,
        request: Request<v1::CheckNumbersRequest>,
    ) -> Result<Response<v1::CheckNumbersResponse>, Status> {
        let request_id = identity::request_id(request.metadata());
        let (md, _, req) = request.into_parts();
        let span = tracing::debug_span!("check_numbers", session_id = %req.session_id, request_id);
        Ok(Response::new(self.check_numbers(md, req).instrument(span).await?))
    }

    async fn mark_read(
        &self,
        request: Request<v1::MarkReadRequest>,
    ) -> Result<Response<v1::MarkReadResponse>, Status> {
        let request_id = identity::request_id(request.metadata());
        let (md, _, req) = request.into_parts();
        let span = tracing::debug_span!("mark_read", session_id = %req.session_id, request_id);
        Ok(Response::new(self.mark_read(md, req).instrument(span).await?))
    }

    async fn send_presence(
        &self,
        request: Request<v1::SendPresenceRequest>,
    ) -> Result<Response<v1::SendPresenceResponse>, Status> {
        let request_id = identity::request_id(request.metadata());
        let (md, _, req) = request.into_parts();
        let span = tracing::debug_span!("send_presence", session_id = %req.session_id, request_id);
        Ok(Response::new(self.send_presence(md, req).instrument(span).await?))
    }

    async fn react(&self, request: Request<v1::ReactRequest>) -> Result<Response<v1::ReactResponse>, Status> {
        let request_id = identity::request_id(request.metadata());
        let (md, _, req) = request.into_parts();
        let span = tracing::debug_span!("react", session_id = %req.session_id, request_id);
        Ok(Response::new(self.react(md, req).instrument(span).await?))
    }

    async fn edit_message(
        &self,
        request: Request<v1::EditMessageRequest>,
    ) -> Result<Response<v1::EditMessageResponse>, Status> {
        let request_id = identity::request_id(request.metadata());
        let (md, _, req) = request.into_parts();
        let span = tracing::debug_span!("edit_message", session_id = %req.session_id, request_id);
        Ok(Response::new(self.edit(md, req).instrument(span).await?))
    }

    async fn delete_message(
        &self,
        request: Request<v1::DeleteMessageRequest>,
    ) -> Result<Response<v1::DeleteMessageResponse>, Status> {
        let request_id = identity::request_id(request.metadata());
        let (md, _, req) = request.into_parts();
        let span = tracing::debug_span!("delete_message", session_id = %req.session_id, request_id);
        Ok(Response::new(self.delete(md, req).instrument(span).await?))
    }
    async fn list_groups(
        &self,
        request: Request<v1::ListGroupsRequest>,
    ) -> Result<Response<v1::GroupList>, Status> {
        let request_id = identity::request_id(request.metadata());
        let (md, _, req) = request.into_parts();
        let span = tracing::debug_span!("list_groups", session_id = %req.session_id, request_id);
        Ok(Response::new(MessageApi::list_groups(self, md, req).instrument(span).await?))
    }

    async fn get_group(&self, request: Request<v1::GroupRequest>) -> Result<Response<v1::GroupInfo>, Status> {
        let request_id = identity::request_id(request.metadata());
        let (md, _, req) = request.into_parts();
        let span = tracing::debug_span!("get_group", session_id = %req.session_id, request_id);
        Ok(Response::new(MessageApi::get_group(self, md, req).instrument(span).await?))
    }

    async fn create_group(
        &self,
        request: Request<v1::CreateGroupRequest>,
    ) -> Result<Response<v1::GroupInfo>, Status> {
        let request_id = identity::request_id(request.metadata());
        let (md, _, req) = request.into_parts();
        let span = tracing::debug_span!("create_group", session_id = %req.session_id, request_id);
        Ok(Response::new(MessageApi::create_group(self, md, req).instrument(span).await?))
    }

    async fn update_group_participants(
        &self,
        request: Request<v1::UpdateGroupParticipantsRequest>,
    ) -> Result<Response<v1::GroupInfo>, Status> {
        let request_id = identity::request_id(request.metadata());
        let (md, _, req) = request.into_parts();
        let span =
            tracing::debug_span!("update_group_participants", session_id = %req.session_id, request_id);
        Ok(Response::new(MessageApi::update_group_participants(self, md, req).instrument(span).await?))
    }

    async fn leave_group(
        &self,
        request: Request<v1::GroupRequest>,
    ) -> Result<Response<v1::LeaveGroupResponse>, Status> {
        let request_id = identity::request_id(request.metadata());
        let (md, _, req) = request.into_parts();
        let span = tracing::debug_span!("leave_group", session_id = %req.session_id, request_id);
        Ok(Response::new(MessageApi::leave_group(self, md, req).instrument(span).await?))
    }
}

/// The session commands other than a send: the session's API key, its
/// session CONNECTED, then one command on its worker through the table.
impl MessageApi {
    /// The key's session, CONNECTED, and its worker.
    async fn connected_session(
        &self,
        md: &tonic::metadata::MetadataMap,
        session_id: &str,
    ) -> CpResult<(KeySession, String)> {
        self.state.ensure_running()?;
        let ks = self.authenticate(md).await?;
        if ks.session_id != session_id {
            return Err(api(ErrorCode::SessionNotFound, "session not found"));
        }
        if ks.status != SessionStatus::Connected {
            return Err(api(
                ErrorCode::SessionNotConnected,
                format!("session is not connected (status {})", status_name(ks.status)),
            ));
        }
        let worker_id = ks.worker_id.clone().unwrap_or_default();
        Ok((ks, worker_id))
    }

    /// Which numbers are on WhatsApp, asked of the session's worker.
    async fn check_numbers(
        &self,
        md: tonic::metadata::MetadataMap,
        req: v1::CheckNumbersRequest,
    ) -> CpResult<v1::CheckNumbersResponse> {
        let numbers = validation::numbers(&req.numbers)?;
        let (ks, worker_id) = self.connected_session(&md, &req.session_id).await?;
        // Answers of the last `number_check_cache` are reused; the phone is
        // asked only about the rest.
        let cache = &self.state.number_checks;
        let cached = !self.state.config.number_check_cache.is_zero();
        let key = |n: &str| (ks.session_id.clone(), n.to_owned());
        let missing: Vec<String> =
            numbers.iter().filter(|n| !cached || !cache.contains_key(&key(n))).cloned().collect();
        let mut fresh = Vec::new();
        if !missing.is_empty() {
            let cmd = v1::CheckNumbers {
                session_id: ks.session_id.clone(),
                generation: generation(ks.generation),
                numbers: missing,
            };
            fresh = self.state.dispatcher.run_for(&worker_id, cmd).await?.numbers;
            if cached {
                for c in &fresh {
                    cache.insert(key(&c.number), c.clone());
                }
            }
        }
        let answers = numbers
            .iter()
            .map(|n| {
                fresh
                    .iter()
                    .find(|c| &c.number == n)
                    .cloned()
                    .or_else(|| cache.get(&key(n)))
                    .unwrap_or_else(|| v1::NumberCheck { number: n.clone(), exists: false, jid: None })
            })
            .collect();
        Ok(v1::CheckNumbersResponse { numbers: answers })
    }

    async fn mark_read(
        &self,
        md: tonic::metadata::MetadataMap,
        req: v1::MarkReadRequest,
    ) -> CpResult<v1::MarkReadResponse> {
        let chat_id = validation::chat("chatId", &req.chat_id)?;
        let message_ids = validation::wa_message_ids(&req.message_ids)?;
        let (ks, worker_id) = self.connected_session(&md, &req.session_id).await?;
        let marked = u32::try_from(message_ids.len()).unwrap_or(u32::MAX);
        let cmd = v1::MarkRead {
            session_id: ks.session_id,
            generation: generation(ks.generation),
            chat_id: chat_id.clone(),
            message_ids,
        };
        self.state.dispatcher.run_for(&worker_id, cmd).await?;
        Ok(v1::MarkReadResponse { chat_id, marked })
    }

    async fn send_presence(
        &self,
        md: tonic::metadata::MetadataMap,
        req: v1::SendPresenceRequest,
    ) -> CpResult<v1::SendPresenceResponse> {
        let (state, chat_id) = validation::presence(req.state, &req.chat_id)?;
        let (ks, worker_id) = self.connected_session(&md, &req.session_id).await?;
        let cmd = v1::SendPresence {
            session_id: ks.session_id,
            generation: generation(ks.generation),
            chat_id: chat_id.clone(),
            state: state as i32,
        };
        self.state.dispatcher.run_for(&worker_id, cmd).await?;
        Ok(v1::SendPresenceResponse { chat_id, state: state as i32 })
    }
}

impl MessageApi {
    /// Reacts to one of the session's messages (wagate id or WhatsApp id).
    async fn react(
        &self,
        md: tonic::metadata::MetadataMap,
        req: v1::ReactRequest,
    ) -> CpResult<v1::ReactResponse> {
        let emoji = validation::emoji(&req.emoji)?;
        let (ks, worker_id) = self.connected_session(&md, &req.session_id).await?;
        let not_found = || api(ErrorCode::NotFound, "message not found");
        let reference = validation::message_ref(&req.message_id).ok_or_else(not_found)?;
        let m = crate::persistence::messages::by_ref_in_session(&self.state.db, reference, &ks.session_id)
            .await?
            .ok_or_else(not_found)?;
        let Some(wa_message_id) = m.wa_message_id.clone().filter(|w| !w.is_empty()) else {
            return Err(api(
                ErrorCode::MessageNotSent,
                "the message has not reached WhatsApp (no WhatsApp id yet): nothing to react to",
            ));
        };
        let from_me = m.direction == MessageDirection::Outbound;
        let peer = if from_me { m.to_number.clone() } else { m.from_number.clone().unwrap_or_default() };
        let chat_id = validation::chat("messageId", &peer)?;
        let cmd = v1::SendReaction {
            session_id: ks.session_id,
            generation: generation(ks.generation),
            chat_id,
            wa_message_id,
            from_me,
            emoji: emoji.clone(),
        };
        self.state.dispatcher.run_for(&worker_id, cmd).await?;
        Ok(v1::ReactResponse { message_id: m.id, emoji })
    }

    /// The WhatsApp id (and sender, when not the session) of the message a
    /// send replies to, named by its wagate or WhatsApp id.
    async fn quoted(&self, session_id: &str, reference: &str) -> CpResult<(String, Option<String>)> {
        let not_found = || api(ErrorCode::NotFound, "quotedMessageId: no such message in the session");
        let reference = validation::message_ref(reference).ok_or_else(not_found)?;
        let m = crate::persistence::messages::by_ref_in_session(&self.state.db, reference, session_id)
            .await?
            .ok_or_else(not_found)?;
        let Some(wa_id) = m.wa_message_id.filter(|w| !w.is_empty()) else {
            return Err(api(
                ErrorCode::MessageNotSent,
                "quotedMessageId: that message has not reached WhatsApp (no WhatsApp id yet)",
            ));
        };
        let participant = (m.direction == MessageDirection::Inbound).then_some(m.from_number).flatten();
        Ok((wa_id, participant))
    }

    /// A message the session sent, reached WhatsApp, not deleted, within
    /// `window` of being sent: what an edit or a delete may touch.
    async fn own_sent_message(
        &self,
        session_id: &str,
        reference: &str,
        what: &str,
        window: chrono::Duration,
    ) -> CpResult<(Message, String)> {
        let not_found = || api(ErrorCode::NotFound, "message not found");
        let reference = validation::message_ref(reference).ok_or_else(not_found)?;
        let m = crate::persistence::messages::by_ref_in_session(&self.state.db, reference, session_id)
            .await?
            .ok_or_else(not_found)?;
        let not_editable = |why: String| api(ErrorCode::MessageNotEditable, why);
        if m.direction != MessageDirection::Outbound {
            return Err(not_editable(format!("only messages the session sent can be {what}")));
        }
        if m.deleted_at.is_some() {
            return Err(not_editable("the message was deleted for everyone".to_owned()));
        }
        let Some(wa_id) = m.wa_message_id.clone().filter(|w| !w.is_empty()) else {
            return Err(api(
                ErrorCode::MessageNotSent,
                "the message has not reached WhatsApp (no WhatsApp id yet)",
            ));
        };
        let sent_at = m.sent_at.unwrap_or(m.created_at);
        if Utc::now() - sent_at > window {
            return Err(not_editable(format!(
                "WhatsApp allows this for {} minutes after sending; this message was sent at {}",
                window.num_minutes(),
                sent_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        Ok((m, wa_id))
    }

    /// Edits a TEXT message the session sent, within WhatsApp's window.
    async fn edit(
        &self,
        md: tonic::metadata::MetadataMap,
        req: v1::EditMessageRequest,
    ) -> CpResult<v1::EditMessageResponse> {
        let text = validation::text("text", &req.text)?;
        let (ks, worker_id) = self.connected_session(&md, &req.session_id).await?;
        let window = chrono::Duration::seconds(wagate_proto::contract::limits::EDIT_WINDOW_SECS);
        let (m, wa_message_id) =
            self.own_sent_message(&ks.session_id, &req.message_id, "edited", window).await?;
        if m.message_type != MessageType::Text {
            return Err(api(ErrorCode::MessageNotEditable, "only TEXT messages can be edited"));
        }
        let cmd = v1::EditMessage {
            session_id: ks.session_id,
            generation: generation(ks.generation),
            chat_id: m.to_number.clone(),
            wa_message_id,
            text: text.clone(),
        };
        self.state.dispatcher.run_for(&worker_id, cmd).await?;
        let at = Utc::now();
        message_rows::mark_edited(&self.state.db, &m.id, &text, at).await?;
        Ok(v1::EditMessageResponse { message_id: m.id, text, edited_at: Some(to_proto(at)) })
    }

    /// The groups of the session's account.
    async fn list_groups(
        &self,
        md: tonic::metadata::MetadataMap,
        req: v1::ListGroupsRequest,
    ) -> CpResult<v1::GroupList> {
        let (ks, worker_id) = self.connected_session(&md, &req.session_id).await?;
        let cmd = v1::ListGroups { session_id: ks.session_id, generation: generation(ks.generation) };
        Ok(self.state.dispatcher.run_for(&worker_id, cmd).await?)
    }

    async fn get_group(
        &self,
        md: tonic::metadata::MetadataMap,
        req: v1::GroupRequest,
    ) -> CpResult<v1::GroupInfo> {
        let group_id = group_id(&req.group_id)?;
        let (ks, worker_id) = self.connected_session(&md, &req.session_id).await?;
        let cmd = v1::GetGroup { session_id: ks.session_id, generation: generation(ks.generation), group_id };
        Ok(self.state.dispatcher.run_for(&worker_id, cmd).await?)
    }

    async fn create_group(
        &self,
        md: tonic::metadata::MetadataMap,
        req: v1::CreateGroupRequest,
    ) -> CpResult<v1::GroupInfo> {
        let subject = validation::group_subject(&req.subject)?;
        let participants = validation::participants("participants", &req.participants)?;
        if participants.is_empty() {
            return Err(invalid("participants", "a group needs at least one participant"));
        }
        let (ks, worker_id) = self.connected_session(&md, &req.session_id).await?;
        let cmd = v1::CreateGroup {
            session_id: ks.session_id,
            generation: generation(ks.generation),
            subject,
            participants,
        };
        Ok(self.state.dispatcher.run_for(&worker_id, cmd).await?)
    }

    async fn update_group_participants(
        &self,
        md: tonic::metadata::MetadataMap,
        req: v1::UpdateGroupParticipantsRequest,
    ) -> CpResult<v1::GroupInfo> {
        let group_id = group_id(&req.group_id)?;
        let add = validation::participants("add", &req.add)?;
        let remove = validation::participants("remove", &req.remove)?;
        if add.is_empty() && remove.is_empty() {
            return Err(invalid("add", "add or remove at least one participant"));
        }
        let (ks, worker_id) = self.connected_session(&md, &req.session_id).await?;
        let cmd = v1::UpdateGroupParticipants {
            session_id: ks.session_id,
            generation: generation(ks.generation),
            group_id,
            add,
            remove,
        };
        Ok(self.state.dispatcher.run_for(&worker_id, cmd).await?)
    }

    async fn leave_group(
        &self,
        md: tonic::metadata::MetadataMap,
        req: v1::GroupRequest,
    ) -> CpResult<v1::LeaveGroupResponse> {
        let group_id = group_id(&req.group_id)?;
        let (ks, worker_id) = self.connected_session(&md, &req.session_id).await?;
        let cmd = v1::LeaveGroup {
            session_id: ks.session_id,
            generation: generation(ks.generation),
            group_id: group_id.clone(),
        };
        self.state.dispatcher.run_for(&worker_id, cmd).await?;
        Ok(v1::LeaveGroupResponse { group_id })
    }

    /// Deletes a message the session sent, for everyone, within WhatsApp's window.
    async fn delete(
        &self,
        md: tonic::metadata::MetadataMap,
        req: v1::DeleteMessageRequest,
    ) -> CpResult<v1::DeleteMessageResponse> {
        let (ks, worker_id) = self.connected_session(&md, &req.session_id).await?;
        let window = chrono::Duration::seconds(wagate_proto::contract::limits::DELETE_WINDOW_SECS);
        let (m, wa_message_id) =
            self.own_sent_message(&ks.session_id, &req.message_id, "deleted", window).await?;
        let cmd = v1::DeleteMessage {
            session_id: ks.session_id,
            generation: generation(ks.generation),
            chat_id: m.to_number.clone(),
            wa_message_id,
        };
        self.state.dispatcher.run_for(&worker_id, cmd).await?;
        let at = Utc::now();
        message_rows::mark_deleted(&self.state.db, &m.id, at).await?;
        Ok(v1::DeleteMessageResponse { message_id: m.id, deleted_at: Some(to_proto(at)) })
    }
}

/// A group id of a request: normalised, or 404 (one that cannot exist).
fn group_id(raw: &str) -> CpResult<String> {
    validation::group_id(raw).ok_or_else(|| api(ErrorCode::NotFound, "group not found"))
}

fn generation(g: i64) -> u64 {
    u64::try_from(g).unwrap_or_default()
}

/// The `outcome` label of a send: sent, failed (by the worker), pending
/// (accepted, not yet acknowledged) or refused (an error answer).
fn send_outcome(result: &CpResult<(v1::SendResponse, Option<Decision>)>) -> &'static str {
    match result {
        Ok((r, _)) if r.status == v1::MessageStatus::Failed as i32 => "failed",
        Ok((r, _)) if r.status == v1::MessageStatus::Pending as i32 => "pending",
        Ok(_) => "sent",
        Err(_) => "refused",
    }
}
