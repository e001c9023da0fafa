//! `WebhookService`: a session's webhook (put, get, delete, test, rotate
//! the secret), its delivery log, redelivery and replay. Every call is
//! scoped to the caller's own sessions: another user's session id is
//! NOT_FOUND, like every other session resource.

use chrono::Utc;
use tonic::{Request, Response, Status};
use wagate_proto::error::ErrorCode;
use wagate_proto::time::{from_proto, opt_to_proto, to_proto};
use wagate_proto::v1::{self, WebhookDeliveryStatus, webhook_service_server::WebhookService};

use super::config::WebhookRow;
use super::payload::{self, EventType};
use super::{ROTATION_OVERLAP, dispatcher, signing, ssrf};
use crate::auth::AuthUser;
use crate::error::{CpResult, api, invalid};
use crate::limits::Rate;
use crate::persistence::webhooks::DeliveryRow;
use crate::persistence::{sessions, webhooks};
use crate::state::SharedState;
use crate::validation;

/// The limiter rule of `POST /sessions/{id}/webhook/test` (per session).
const RULE_WEBHOOK_TEST: &str = "webhook_test";

pub struct WebhookApi {
    state: SharedState,
}

/// A webhook call's credential.
enum Caller {
    User(AuthUser),
    /// A session's API key: its own session's webhook only.
    Key {
        session_id: String,
    },
}

impl WebhookApi {
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }

    /// Who calls: the session owner's token, or a session's own API key.
    async fn caller(&self, md: &tonic::metadata::MetadataMap) -> CpResult<Caller> {
        match crate::services::session_key(&self.state, md).await? {
            Some(key) => Ok(Caller::Key { session_id: key.session_id }),
            None => Ok(Caller::User(self.state.auth.user(md).await?)),
        }
    }

    /// The caller's session id, or NOT_FOUND (also for other users' ids and
    /// for another session's key).
    async fn owned(&self, caller: &Caller, session_id: &str) -> CpResult<String> {
        let not_found = || api(ErrorCode::SessionNotFound, "session not found");
        let id = validation::lookup_id(session_id).ok_or_else(not_found)?;
        let mine = match caller {
            Caller::User(user) => sessions::owned_by(&self.state.db, id, &user.id).await?,
            Caller::Key { session_id } => session_id == id,
        };
        if !mine {
            return Err(not_found());
        }
        Ok(id.to_owned())
    }

    async fn hook(&self, user: &Caller, session_id: &str) -> CpResult<WebhookRow> {
        let id = self.owned(user, session_id).await?;
        let db = &self.state.db;
        WebhookRow::by_session(&db.conn, db, &id)
            .await?
            .ok_or_else(|| api(ErrorCode::NotFound, "this session has no webhook"))
    }

    /// The webhook an action (test, rotate, replay) needs: the session exists,
    /// its webhook does not → 409 `WEBHOOK_NOT_CONFIGURED` (PUT one first).
    async fn configured(&self, user: &Caller, session_id: &str) -> CpResult<WebhookRow> {
        let id = self.owned(user, session_id).await?;
        let db = &self.state.db;
        WebhookRow::by_session(&db.conn, db, &id).await?.ok_or_else(|| {
            api(ErrorCode::WebhookNotConfigured, "this session has no webhook: PUT …/webhook configures one")
        })
    }

    async fn put(&self, user: Caller, req: v1::PutWebhookRequest) -> CpResult<v1::PutWebhookResponse> {
        self.state.ensure_running()?;
        let session_id = self.owned(&user, &req.session_id).await?;
        let settings = &self.state.webhooks.settings;
        if req.url.trim().is_empty() {
            return Err(invalid("url", "url is required"));
        }
        let url = ssrf::check_url(&req.url, settings.allow_private)
            .await
            .map_err(|e| invalid("url", e.to_string()))?;
        let mut events: Vec<String> = Vec::new();
        for e in &req.events {
            let e = e.trim();
            match EventType::parse(e) {
                Some(t) if t.is_subscribable() => {
                    if !events.iter().any(|x| x == e) {
                        events.push(e.to_owned());
                    }
                }
                _ => {
                    return Err(invalid(
                        "events",
                        format!(
                            "unknown event type {e:?}; expected {}",
                            EventType::list(EventType::SUBSCRIBABLE)
                        ),
                    ));
                }
            }
        }
        if events.is_empty() {
            events = EventType::SUBSCRIBABLE.iter().map(|t| t.as_str().to_owned()).collect();
        }
        if let Some(s) = &req.secret
            && signing::parse_secret(s).is_none()
        {
            return Err(invalid("secret", "secret must be whsec_ followed by base64 of 24 to 64 bytes"));
        }
        let is_active = req.is_active.unwrap_or(true);
        let events_json = serde_json::to_string(&events).unwrap_or_else(|_| "[]".into());
        let db = &self.state.db;
        let now = Utc::now();
        let existing = WebhookRow::by_session(&db.conn, db, &session_id).await?;
        let (generated, created, written) = match existing {
            Some(h) => {
                // A given secret replaces the current one at once (no overlap).
                let config = webhooks::HookConfig {
                    url: url.as_str(),
                    events_json,
                    is_active,
                    secret: req.secret.clone(),
                };
                if webhooks::update(db, &h.id, config, now).await? == 0 {
                    return Err(api(ErrorCode::NotFound, "this session has no webhook"));
                }
                // What the update wrote (see `webhooks::update`).
                let replaced = req.secret.is_some();
                let written = WebhookRow {
                    url: url.to_string(),
                    events: events.clone(),
                    is_active,
                    secret: req.secret.clone().or(h.secret.clone()),
                    previous_secret: if replaced { None } else { h.previous_secret.clone() },
                    previous_secret_expires_at: if replaced { None } else { h.previous_secret_expires_at },
                    failure_count: if is_active { 0 } else { h.failure_count },
                    disabled_reason: None,
                    updated_at: now,
                    ..h
                };
                (None, false, written)
            }
            None => {
                let generated = req.secret.is_none().then(signing::generate_secret);
                let secret = req.secret.clone().or_else(|| generated.clone());
                let config = webhooks::HookConfig {
                    url: url.as_str(),
                    events_json,
                    is_active,
                    secret: secret.clone(),
                };
                let id = format!("wh_{}", uuid::Uuid::new_v4().simple());
                webhooks::insert(db, id.clone(), &session_id, config, now).await.map_err(|e| {
                    if crate::error::is_unique_violation(&e) {
                        api(ErrorCode::AlreadyExists, "the webhook was created concurrently; retry")
                    } else {
                        e.into()
                    }
                })?;
                let written = WebhookRow {
                    id,
                    session_id: session_id.clone(),
                    url: url.to_string(),
                    events: events.clone(),
                    secret,
                    previous_secret: None,
                    previous_secret_expires_at: None,
                    is_active,
                    last_delivery: None,
                    failure_count: 0,
                    disabled_reason: None,
                    created_at: now,
                    updated_at: now,
                };
                (generated, true, written)
            }
        };
        // Committed: nothing below may fail the call (a generated secret is shown once).
        crate::auth::invalidation::webhook(&self.state, &session_id).await;
        if is_active {
            self.state.webhooks.committed();
        }
        let row = self.read_back(written).await?;
        tracing::info!(session_id, webhook_id = row.id, created, "webhook configured");
        Ok(v1::PutWebhookResponse { webhook: Some(to_webhook(&row)), secret: generated, created })
    }

    async fn delete(&self, user: Caller, session_id: &str) -> CpResult<v1::DeleteWebhookResponse> {
        let hook = self.hook(&user, session_id).await?;
        let db = &self.state.db;
        webhooks::delete(db, hook.id).await?;
        crate::auth::invalidation::webhook(&self.state, &hook.session_id).await;
        Ok(v1::DeleteWebhookResponse { session_id: hook.session_id, deleted: true })
    }

    /// One attempt of a `webhook.test` event, now; logged as a delivery.
    /// Limited per session (`WAGATE_LIMIT_WEBHOOK_TEST`, sliding): each
    /// test is an outbound request to a URL the caller chose.
    async fn test(&self, user: Caller, session_id: &str) -> CpResult<v1::WebhookDelivery> {
        self.state.ensure_running()?;
        let hook = self.configured(&user, session_id).await?;
        if let Some(rate) = self.state.config.limits.webhook_test.map(Rate::sliding) {
            let d = self.state.limiter.check(RULE_WEBHOOK_TEST, &hook.session_id, rate, 1).await;
            if !d.allowed {
                tracing::info!(
                    session_id = hook.session_id,
                    retry_after = d.retry_after_secs(),
                    "webhook test refused: limit"
                );
                return Err(d
                    .refusal(format!(
                        "Too many webhook tests for this session ({}), retry in {} s",
                        rate.describe(),
                        d.retry_after_secs()
                    ))
                    .into());
            }
        }
        let now = Utc::now();
        let id = payload::new_event_id();
        let body = payload::render(
            &id,
            EventType::WebhookTest,
            &hook.session_id,
            now,
            &payload::WebhookTestData { message: "a test event from wagate".to_owned() },
        );
        let attempt = dispatcher::send(&self.state, &hook, &id, &body).await;
        let status = if attempt.ok() { "DELIVERED" } else { "FAILED" };
        let db = &self.state.db;
        let done = Utc::now();
        let delivery = webhooks::TestDelivery {
            id: id.clone(),
            webhook_id: hook.id.clone(),
            session_id: hook.session_id.clone(),
            event: EventType::WebhookTest.as_str(),
            payload: body,
            status,
            response_code: attempt.status.map(i32::from),
            response_body: attempt.body.clone(),
            last_error: attempt
                .error
                .clone()
                .or_else(|| attempt.status.filter(|_| !attempt.ok()).map(|s| format!("HTTP {s}"))),
            created_at: now,
            delivered_at: attempt.ok().then_some(done),
            updated_at: done,
        };
        webhooks::insert_test(db, delivery).await?;
        self.delivery(&hook.id, &id).await
    }

    async fn rotate(&self, user: Caller, session_id: &str) -> CpResult<v1::RotateWebhookSecretResponse> {
        self.state.ensure_running()?;
        let hook = self.configured(&user, session_id).await?;
        let secret = signing::generate_secret();
        let now = Utc::now();
        let until = now
            + chrono::Duration::from_std(ROTATION_OVERLAP).unwrap_or_else(|_| chrono::Duration::hours(24));
        let db = &self.state.db;
        webhooks::rotate_secret(db, &hook.id, &secret, until, now).await?;
        // Committed: nothing below may fail the call (the new secret is shown once).
        crate::auth::invalidation::webhook(&self.state, &hook.session_id).await;
        let written = WebhookRow {
            previous_secret: hook.secret.clone(),
            previous_secret_expires_at: Some(until),
            secret: Some(secret.clone()),
            updated_at: now,
            ..hook
        };
        let row = self.read_back(written).await?;
        Ok(v1::RotateWebhookSecretResponse { webhook: Some(to_webhook(&row)), secret })
    }

    /// The webhook as stored after a committed write, or as `written` when
    /// it cannot be read back now (the write stands; its answer must not be
    /// lost to a failed read). Gone meanwhile: NOT_FOUND.
    async fn read_back(&self, written: WebhookRow) -> CpResult<WebhookRow> {
        let db = &self.state.db;
        match WebhookRow::by_id(&db.conn, db, &written.id).await {
            Ok(Some(row)) => Ok(row),
            Ok(None) => Err(api(ErrorCode::NotFound, "this session has no webhook")),
            Err(err) => {
                tracing::warn!(webhook_id = written.id, error = %err, "webhook not read back: answering what was written");
                Ok(written)
            }
        }
    }

    async fn delivery(&self, webhook_id: &str, id: &str) -> CpResult<v1::WebhookDelivery> {
        let row = webhooks::delivery(&self.state.db, id, webhook_id)
            .await?
            .ok_or_else(|| api(ErrorCode::NotFound, "delivery not found"))?;
        Ok(to_delivery(&row))
    }

    async fn list(
        &self,
        user: Caller,
        req: v1::ListWebhookDeliveriesRequest,
    ) -> CpResult<v1::ListWebhookDeliveriesResponse> {
        let hook = self.hook(&user, &req.session_id).await?;
        let limit = if req.limit == 0 { 50 } else { req.limit.min(100) };
        let status =
            WebhookDeliveryStatus::try_from(req.status).unwrap_or(WebhookDeliveryStatus::Unspecified);
        let cursor = req.cursor.trim();
        if !cursor.is_empty() && !valid_delivery_id(cursor) {
            return Err(invalid("cursor", "cursor is not a nextCursor of this list"));
        }
        let cursor = (!cursor.is_empty()).then_some(cursor);
        let rows =
            webhooks::deliveries(&self.state.db, &hook.id, status_name(status), cursor, i64::from(limit + 1))
                .await?;
        let mut deliveries: Vec<_> = rows.iter().map(to_delivery).collect();
        let next_cursor = if deliveries.len() > limit as usize {
            deliveries.truncate(limit as usize);
            deliveries.last().map(|d| d.id.clone())
        } else {
            None
        };
        Ok(v1::ListWebhookDeliveriesResponse { deliveries, next_cursor })
    }

    async fn redeliver(
        &self,
        user: Caller,
        req: v1::RedeliverWebhookDeliveryRequest,
    ) -> CpResult<v1::WebhookDelivery> {
        self.state.ensure_running()?;
        let hook = self.hook(&user, &req.session_id).await?;
        let id = req.delivery_id.trim();
        if !valid_delivery_id(id) {
            return Err(api(ErrorCode::NotFound, "delivery not found"));
        }
        if webhooks::redeliver(&self.state.db, id, &hook.id, Utc::now()).await? == 0 {
            // Unknown, or being delivered right now.
            let d = self.delivery(&hook.id, id).await?;
            return Ok(d);
        }
        self.state.webhooks.committed();
        self.delivery(&hook.id, id).await
    }

    async fn replay(
        &self,
        user: Caller,
        req: v1::ReplayWebhookRequest,
    ) -> CpResult<v1::ReplayWebhookResponse> {
        self.state.ensure_running()?;
        let since = req
            .since
            .as_ref()
            .and_then(from_proto)
            .ok_or_else(|| invalid("since", "since is required (RFC 3339 time)"))?;
        let hook = self.configured(&user, &req.session_id).await?;
        let requeued = webhooks::replay(&self.state.db, &hook.id, since, Utc::now()).await?;
        self.state.webhooks.committed();
        Ok(v1::ReplayWebhookResponse { requeued })
    }
}

fn valid_delivery_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn status_name(s: WebhookDeliveryStatus) -> Option<&'static str> {
    match s {
        WebhookDeliveryStatus::Unspecified => None,
        WebhookDeliveryStatus::Pending => Some("PENDING"),
        WebhookDeliveryStatus::Delivered => Some("DELIVERED"),
        WebhookDeliveryStatus::Failed => Some("FAILED"),
        WebhookDeliveryStatus::Retrying => Some("RETRYING"),
    }
}

fn status_from_name(s: &str) -> WebhookDeliveryStatus {
    match s {
        "PENDING" => WebhookDeliveryStatus::Pending,
        "DELIVERED" => WebhookDeliveryStatus::Delivered,
        "FAILED" => WebhookDeliveryStatus::Failed,
        "RETRYING" => WebhookDeliveryStatus::Retrying,
        _ => WebhookDeliveryStatus::Unspecified,
    }
}

pub fn to_webhook(h: &WebhookRow) -> v1::Webhook {
    v1::Webhook {
        id: h.id.clone(),
        session_id: h.session_id.clone(),
        url: h.url.clone(),
        events: h.events.clone(),
        is_active: h.is_active,
        failure_count: h.failure_count,
        last_delivery: opt_to_proto(h.last_delivery),
        created_at: Some(to_proto(h.created_at)),
        updated_at: Some(to_proto(h.updated_at)),
        disabled_reason: h.disabled_reason.clone(),
        previous_secret_expires_at: opt_to_proto(h.previous_secret_expires_at.filter(|t| *t > Utc::now())),
    }
}

fn to_delivery(r: &DeliveryRow) -> v1::WebhookDelivery {
    v1::WebhookDelivery {
        id: r.id.clone(),
        event_type: r.event.clone(),
        status: status_from_name(&r.status) as i32,
        attempts: r.attempts,
        response_code: r.response_code,
        response_body: r.response_body.clone(),
        last_error: r.last_error.clone(),
        next_retry: opt_to_proto(r.next_retry),
        created_at: Some(to_proto(r.created_at)),
        delivered_at: opt_to_proto(r.delivered_at),
        payload: r.payload.clone(),
    }
}

#[tonic::async_trait]
impl WebhookService for WebhookApi {
    async fn put_webhook(
        &self,
        request: Request<v1::PutWebhookRequest>,
    ) -> Result<Response<v1::PutWebhookResponse>, Status> {
        let user = self.caller(request.metadata()).await?;
        Ok(Response::new(self.put(user, request.into_inner()).await?))
    }

    async fn get_webhook(
        &self,
        request: Request<v1::GetSessionRequest>,
    ) -> Result<Response<v1::Webhook>, Status> {
        let user = self.caller(request.metadata()).await?;
        let hook = self.hook(&user, &request.get_ref().session_id).await?;
        Ok(Response::new(to_webhook(&hook)))
    }

    async fn delete_webhook(
        &self,
        request: Request<v1::GetSessionRequest>,
    ) -> Result<Response<v1::DeleteWebhookResponse>, Status> {
        let user = self.caller(request.metadata()).await?;
        Ok(Response::new(self.delete(user, &request.get_ref().session_id).await?))
    }

    async fn test_webhook(
        &self,
        request: Request<v1::GetSessionRequest>,
    ) -> Result<Response<v1::WebhookDelivery>, Status> {
        let user = self.caller(request.metadata()).await?;
        Ok(Response::new(self.test(user, &request.get_ref().session_id).await?))
    }

    async fn rotate_webhook_secret(
        &self,
        request: Request<v1::GetSessionRequest>,
    ) -> Result<Response<v1::RotateWebhookSecretResponse>, Status> {
        let user = self.caller(request.metadata()).await?;
        Ok(Response::new(self.rotate(user, &request.get_ref().session_id).await?))
    }

    async fn list_webhook_deliveries(
        &self,
        request: Request<v1::ListWebhookDeliveriesRequest>,
    ) -> Result<Response<v1::ListWebhookDeliveriesResponse>, Status> {
        let user = self.caller(request.metadata()).await?;
        Ok(Response::new(self.list(user, request.into_inner()).await?))
    }

    async fn redeliver_webhook_delivery(
        &self,
        request: Request<v1::RedeliverWebhookDeliveryRequest>,
    ) -> Result<Response<v1::WebhookDelivery>, Status> {
        let user = self.caller(request.metadata()).await?;
        Ok(Response::new(self.redeliver(user, request.into_inner()).await?))
    }

    async fn replay_webhook(
        &self,
        request: Request<v1::ReplayWebhookRequest>,
    ) -> Result<Response<v1::ReplayWebhookResponse>, Status> {
        let user = self.caller(request.metadata()).await?;
        Ok(Response::new(self.replay(user, request.into_inner()).await?))
    }
}
