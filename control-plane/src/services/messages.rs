//! MessageService.Send: the hot path.
//!
//! API key → session (in-memory cache, else one indexed join) → validate → message row PENDING
//! (durable before dispatch) → SendMessage on the owning worker's stream →
//! ack → SENT (batched, see `persistence::status_writer`) or FAILED with
//! the reason (see `send_dispatch`). Later status events from the
//! worker move the row to DELIVERED / READ.

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use tonic::{Request, Response, Status};
use tracing::Instrument;
use wagate_proto::contract::limits::MAX_IDEMPOTENCY_KEY;
use wagate_proto::error::ErrorCode;
use wagate_proto::time::to_proto;
use wagate_proto::v1::{self, message_service_server::MessageService};

use crate::auth::{api_keys, identity};
use crate::convert;
use crate::error::{CpError, CpResult, api, invalid, is_unique_violation};
use crate::limits::Decision;
use crate::limits::layer::{DeferredIpCheck, check_deferred};
use crate::limits::quota;
use crate::persistence::entities::message;
use crate::persistence::enums::{MessageDirection, MessageStatus, MessageType, SessionStatus};
use crate::persistence::message_inserter::LedgerRow;
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
        let key = identity::api_key(md)
            .ok_or_else(|| api(ErrorCode::Unauthenticated, "session API key required"))?;
        let invalid_key = || api(ErrorCode::InvalidApiKey, "invalid or revoked API key");
        if !api_keys::looks_like_key(key) {
            return Err(invalid_key());
        }
        let hash = api_keys::hash(key);
        let cache = &self.state.key_cache;
        let entry = match cache.get(&hash) {
            Some(e) => e,
            None => {
                let ticket = cache.ticket();
                let e = crate::persistence::api_keys::lookup(&self.state.db, &hash)
                    .await?
                    .ok_or_else(invalid_key)?;
                cache.insert(ticket, hash, e.clone());
                e
            }
        };
        if !entry.key_active || !entry.user_active || entry.expires_at.is_some_and(|e| e <= Utc::now()) {
            return Err(invalid_key());
        }
        self.state.key_usage.touch(&entry.key_id);
        self.state.usage.api_call(&entry.user_id, &entry.session_id, &entry.key_id);
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
            return Err(api(ErrorCode::Forbidden, "this API key does not belong to this session"));
        }
        let to = validation::recipient(&req.to)?;
        let kind = validation::content(req.content.as_ref())?;
        let content = req.content.unwrap_or_default();
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

        // The owner's tier quota and the client-IP limit (one atomic check,
        // shared by every replica); a repeated idempotent send above was not
        // counted against the quota again.
        let quota = quota::take(&self.state, &ks.owner, 1, ip_check).await?;

        let inserted = Inserted { id: uuid::Uuid::now_v7().to_string(), created_at: Utc::now() };
        let row = new_row(&inserted, &ks.session_id, &to, kind, &content, idempotency_key.clone());
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

    async fn find_idempotent(&self, session_id: &str, key: &str) -> CpResult<Option<message::Model>> {
        Ok(message::Entity::find()
            .filter(message::Column::SessionId.eq(session_id))
            .filter(message::Column::IdempotencyKey.eq(key))
            .one(&self.state.db.conn)
            .await?)
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

fn response(m: &message::Model) -> v1::SendResponse {
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
    idempotency_key: Option<String>,
) -> message::ActiveModel {
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
        _ => (c.caption.clone().unwrap_or_default(), None),
    };
    message::ActiveModel {
        id: Set(inserted.id.clone()),
        session_id: Set(session_id.to_owned()),
        direction: Set(MessageDirection::Outbound),
        from_number: Set(None),
        to_number: Set(to.to_owned()),
        message_type: Set(message_type),
        content: Set(body),
        media_url: Set(c.media_url.clone()),
        filename: Set(c.filename.clone()),
        caption: Set(c.caption.clone()),
        status: Set(MessageStatus::Pending),
        error_message: Set(None),
        sent_at: Set(None),
        delivered_at: Set(None),
        read_at: Set(None),
        created_at: Set(inserted.created_at),
        wa_message_id: Set(None),
        idempotency_key: Set(idempotency_key),
        metadata: Set(metadata),
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
