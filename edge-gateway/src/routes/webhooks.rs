//! A session's webhook (→ `wagate.v1.WebhookService`), with the owner's JWT:
//!
//! - `PUT|GET|DELETE /sessions/{id}/webhook`
//! - `POST /sessions/{id}/webhook/test`, `POST …/webhook/rotate-secret`
//! - `GET /sessions/{id}/webhook/deliveries?status=&cursor=&limit=`
//! - `POST …/webhook/deliveries/{deliveryId}/redeliver`, `POST …/webhook/replay?since=`
//!
//! Routes, DTOs, the OpenAPI operations and the event payload schemas all
//! live here (one file, to port as a whole).
#![allow(dead_code)]

use http::Method;
use serde::{Deserialize, Serialize};
use wagate_proto::error::{ApiError, ErrorCode};
use wagate_proto::v1;

use crate::dto::Ts;
use crate::envelope::Reply;
use crate::grpc::call_failed;
use crate::json::{Field, JsonBody, Kind, check_content_type, discard, parse, read_body};
use crate::openapi::{Envelope, ErrorEnvelope};
use crate::query::Query;
use crate::router::{Ctx, RequestBody};
use crate::routes::incomplete_reply;

/// The part of a path after `/sessions/{id}/webhook`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WebhookRoute<'a> {
    Root,
    Test,
    RotateSecret,
    Deliveries,
    Redeliver(&'a str),
    Replay,
}

/// `tail`: what follows `webhook` (empty for the webhook itself).
pub(crate) fn resolve(tail: &str) -> Option<WebhookRoute<'_>> {
    let mut s = tail.split('/');
    let parts = [s.next(), s.next(), s.next(), s.next()];
    Some(match parts {
        [None | Some(""), None, ..] => WebhookRoute::Root,
        [Some("test"), None, ..] => WebhookRoute::Test,
        [Some("rotate-secret"), None, ..] => WebhookRoute::RotateSecret,
        [Some("deliveries"), None, ..] => WebhookRoute::Deliveries,
        [Some("deliveries"), Some(d), Some("redeliver"), None] if !d.is_empty() => WebhookRoute::Redeliver(d),
        [Some("replay"), None, ..] => WebhookRoute::Replay,
        _ => return None,
    })
}

pub(crate) fn allow(route: WebhookRoute<'_>) -> &'static str {
    match route {
        WebhookRoute::Root => "GET, HEAD, PUT, DELETE, OPTIONS",
        WebhookRoute::Deliveries => "GET, HEAD, OPTIONS",
        _ => "POST, OPTIONS",
    }
}

pub(crate) async fn dispatch<B: RequestBody>(
    ctx: &Ctx,
    method: &Method,
    session_id: &str,
    route: WebhookRoute<'_>,
    body: B,
) -> Result<Reply, ApiError> {
    let get = *method == Method::GET || *method == Method::HEAD;
    match route {
        WebhookRoute::Root if *method == Method::PUT => put(ctx, session_id, body).await,
        other => {
            discard(&ctx.headers, body).await;
            match other {
                WebhookRoute::Root if get => get_webhook(ctx, session_id).await,
                WebhookRoute::Root if *method == Method::DELETE => delete(ctx, session_id).await,
                WebhookRoute::Test if *method == Method::POST => test(ctx, session_id).await,
                WebhookRoute::RotateSecret if *method == Method::POST => rotate(ctx, session_id).await,
                WebhookRoute::Deliveries if get => deliveries(ctx, session_id).await,
                WebhookRoute::Redeliver(d) if *method == Method::POST => redeliver(ctx, session_id, d).await,
                WebhookRoute::Replay if *method == Method::POST => replay(ctx, session_id).await,
                other => Ok(Reply::method_not_allowed(allow(other))),
            }
        }
    }
}

fn session(id: &str) -> v1::GetSessionRequest {
    v1::GetSessionRequest { session_id: id.to_owned() }
}

// ---------------------------------------------------------------- bodies and DTOs

/// `PUT /sessions/{id}/webhook`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookBody {
    /// http(s) URL; must not resolve to a private, loopback, link-local,
    /// CGNAT or metadata address (unless the operator allows it).
    pub url: String,
    /// Event types: message.received, message.status, session.status,
    /// session.qr. Absent or empty: all of them.
    pub events: Option<Vec<String>>,
    /// `whsec_` + base64 of 24-64 bytes; generated (and shown once) when absent.
    pub secret: Option<String>,
    /// Default true; true re-enables a disabled webhook.
    pub is_active: Option<bool>,
}

impl JsonBody for WebhookBody {
    const FIELDS: &'static [Field] = &[
        Field::required("url", Kind::String),
        Field::optional("secret", Kind::String),
        Field::optional("isActive", Kind::Bool),
    ];
    fn validate(&self) -> Result<(), ApiError> {
        crate::json::require("url", &self.url)?;
        if self.events.as_ref().is_some_and(|e| e.len() > 16) {
            return Err(ApiError::invalid("events", "events has at most 16 entries"));
        }
        Ok(())
    }
}

/// A session's webhook (never its secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDto {
    pub id: String,
    pub session_id: String,
    pub url: String,
    pub events: Vec<String>,
    pub is_active: bool,
    /// Consecutive deliveries that failed after their last attempt.
    pub failure_count: i32,
    pub last_delivery: Option<Ts>,
    /// Why the webhook was disabled (HTTP 410, too many failures).
    pub disabled_reason: Option<String>,
    /// Until when the previous secret signs too, after a rotation.
    pub previous_secret_expires_at: Option<Ts>,
    pub created_at: Option<Ts>,
    pub updated_at: Option<Ts>,
}

impl From<&v1::Webhook> for WebhookDto {
    fn from(w: &v1::Webhook) -> Self {
        WebhookDto {
            id: w.id.clone(),
            session_id: w.session_id.clone(),
            url: w.url.clone(),
            events: w.events.clone(),
            is_active: w.is_active,
            failure_count: w.failure_count,
            last_delivery: Ts::from_proto(w.last_delivery.as_ref()),
            disabled_reason: w.disabled_reason.clone(),
            previous_secret_expires_at: Ts::from_proto(w.previous_secret_expires_at.as_ref()),
            created_at: Ts::from_proto(w.created_at.as_ref()),
            updated_at: Ts::from_proto(w.updated_at.as_ref()),
        }
    }
}

/// A created or replaced webhook; `secret` only when it was generated (shown once).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutWebhookDto {
    #[serde(flatten)]
    pub webhook: WebhookDto,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created: bool,
}

/// A new secret, shown once; the previous one keeps signing for 24 hours.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedSecretDto {
    #[serde(flatten)]
    pub webhook: WebhookDto,
    pub secret: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedWebhookDto {
    pub session_id: String,
    pub deleted: bool,
}

/// One event's delivery to the webhook.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDto {
    /// The event id (the `webhook-id` header, the same on every attempt).
    pub id: String,
    /// message.received, message.status, session.status, session.qr or webhook.test.
    pub event_type: String,
    /// PENDING, DELIVERED, FAILED or RETRYING.
    pub status: &'static str,
    pub attempts: i32,
    pub response_code: Option<i32>,
    /// The receiver's answer, truncated to 1 KiB.
    pub response_body: Option<String>,
    pub last_error: Option<String>,
    pub next_retry: Option<Ts>,
    pub created_at: Option<Ts>,
    pub delivered_at: Option<Ts>,
    /// The event as POSTed (JSON).
    pub payload: serde_json::Value,
}

fn delivery_status(s: i32) -> &'static str {
    match v1::WebhookDeliveryStatus::try_from(s).unwrap_or(v1::WebhookDeliveryStatus::Unspecified) {
        v1::WebhookDeliveryStatus::Pending | v1::WebhookDeliveryStatus::Unspecified => "PENDING",
        v1::WebhookDeliveryStatus::Delivered => "DELIVERED",
        v1::WebhookDeliveryStatus::Failed => "FAILED",
        v1::WebhookDeliveryStatus::Retrying => "RETRYING",
    }
}

impl From<&v1::WebhookDelivery> for DeliveryDto {
    fn from(d: &v1::WebhookDelivery) -> Self {
        DeliveryDto {
            id: d.id.clone(),
            event_type: d.event_type.clone(),
            status: delivery_status(d.status),
            attempts: d.attempts,
            response_code: d.response_code,
            response_body: d.response_body.clone(),
            last_error: d.last_error.clone(),
            next_retry: Ts::from_proto(d.next_retry.as_ref()),
            created_at: Ts::from_proto(d.created_at.as_ref()),
            delivered_at: Ts::from_proto(d.delivered_at.as_ref()),
            payload: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryListDto {
    pub deliveries: Vec<DeliveryDto>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayDto {
    /// Events queued again.
    pub requeued: u64,
}

// ---------------------------------------------------------------- handlers

async fn put<B: RequestBody>(ctx: &Ctx, id: &str, body: B) -> Result<Reply, ApiError> {
    if let Err(e) = check_content_type(&ctx.headers) {
        discard(&ctx.headers, body).await;
        return Err(e);
    }
    let bytes = read_body(&ctx.headers, body, ctx.config().body_limit_bytes).await?;
    let b = parse::<WebhookBody>(&bytes)?;
    ctx.require_authorization()?;
    let r = ctx
        .control_plane()
        .webhooks()
        .put_webhook(ctx.call.request(v1::PutWebhookRequest {
            session_id: id.to_owned(),
            url: b.url,
            events: b.events.unwrap_or_default(),
            secret: b.secret,
            is_active: b.is_active,
        }))
        .await
        .map_err(|s| call_failed("WebhookService.PutWebhook", &s))?
        .into_inner();
    let w = r.webhook.as_ref().ok_or_else(|| incomplete_reply("WebhookService.PutWebhook"))?;
    let dto = PutWebhookDto { webhook: w.into(), secret: r.secret, created: r.created };
    Ok(if r.created { Reply::created(&dto) } else { Reply::ok(&dto) })
}

async fn get_webhook(ctx: &Ctx, id: &str) -> Result<Reply, ApiError> {
    ctx.require_authorization()?;
    let w = ctx
        .control_plane()
        .webhooks()
        .get_webhook(ctx.call.request(session(id)))
        .await
        .map_err(|s| call_failed("WebhookService.GetWebhook", &s))?
        .into_inner();
    Ok(Reply::ok(&WebhookDto::from(&w)))
}

async fn delete(ctx: &Ctx, id: &str) -> Result<Reply, ApiError> {
    ctx.require_authorization()?;
    let r = ctx
        .control_plane()
        .webhooks()
        .delete_webhook(ctx.call.request(session(id)))
        .await
        .map_err(|s| call_failed("WebhookService.DeleteWebhook", &s))?
        .into_inner();
    Ok(Reply::ok(&DeletedWebhookDto { session_id: r.session_id, deleted: r.deleted }))
}

async fn test(ctx: &Ctx, id: &str) -> Result<Reply, ApiError> {
    ctx.require_authorization()?;
    let d = ctx
        .control_plane()
        .webhooks()
        .test_webhook(ctx.call.request(session(id)))
        .await
        .map_err(|s| call_failed("WebhookService.TestWebhook", &s))?
        .into_inner();
    Ok(Reply::ok(&DeliveryDto::from(&d)))
}

async fn rotate(ctx: &Ctx, id: &str) -> Result<Reply, ApiError> {
    ctx.require_authorization()?;
    let r = ctx
        .control_plane()
        .webhooks()
        .rotate_webhook_secret(ctx.call.request(session(id)))
        .await
        .map_err(|s| call_failed("WebhookService.RotateWebhookSecret", &s))?
        .into_inner();
    let w = r.webhook.as_ref().ok_or_else(|| incomplete_reply("WebhookService.RotateWebhookSecret"))?;
    Ok(Reply::ok(&RotatedSecretDto { webhook: w.into(), secret: r.secret }))
}

const STATUSES: [&str; 4] = ["PENDING", "DELIVERED", "FAILED", "RETRYING"];

async fn deliveries(ctx: &Ctx, id: &str) -> Result<Reply, ApiError> {
    let q = Query::parse(ctx.query.as_deref())?;
    let limit = q.positive("limit")?;
    if limit > 100 {
        return Err(ApiError::invalid("limit", "limit must be between 1 and 100"));
    }
    let status = match q.one_of("status", &STATUSES)? {
        None => v1::WebhookDeliveryStatus::Unspecified,
        Some(0) => v1::WebhookDeliveryStatus::Pending,
        Some(1) => v1::WebhookDeliveryStatus::Delivered,
        Some(2) => v1::WebhookDeliveryStatus::Failed,
        Some(_) => v1::WebhookDeliveryStatus::Retrying,
    };
    let cursor = q.text("cursor", 64)?.unwrap_or_default();
    ctx.require_authorization()?;
    let r = ctx
        .control_plane()
        .webhooks()
        .list_webhook_deliveries(ctx.call.request(v1::ListWebhookDeliveriesRequest {
            session_id: id.to_owned(),
            status: status as i32,
            cursor,
            limit,
        }))
        .await
        .map_err(|s| call_failed("WebhookService.ListWebhookDeliveries", &s))?
        .into_inner();
    Ok(Reply::ok(&DeliveryListDto {
        deliveries: r.deliveries.iter().map(DeliveryDto::from).collect(),
        next_cursor: r.next_cursor,
    }))
}

async fn redeliver(ctx: &Ctx, id: &str, delivery: &str) -> Result<Reply, ApiError> {
    let delivery = crate::query::decode(delivery)
        .filter(|d| {
            (1..=64).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
        })
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "delivery not found"))?;
    ctx.require_authorization()?;
    let d = ctx
        .control_plane()
        .webhooks()
        .redeliver_webhook_delivery(ctx.call.request(v1::RedeliverWebhookDeliveryRequest {
            session_id: id.to_owned(),
            delivery_id: delivery,
        }))
        .await
        .map_err(|s| call_failed("WebhookService.RedeliverWebhookDelivery", &s))?
        .into_inner();
    Ok(Reply::ok(&DeliveryDto::from(&d)))
}

async fn replay(ctx: &Ctx, id: &str) -> Result<Reply, ApiError> {
    let q = Query::parse(ctx.query.as_deref())?;
    let since =
        q.time("since")?.ok_or_else(|| ApiError::invalid("since", "since is required (RFC 3339 time)"))?;
    ctx.require_authorization()?;
    let r = ctx
        .control_plane()
        .webhooks()
        .replay_webhook(
            ctx.call.request(v1::ReplayWebhookRequest { session_id: id.to_owned(), since: Some(since) }),
        )
        .await
        .map_err(|s| call_failed("WebhookService.ReplayWebhook", &s))?
        .into_inner();
    Ok(Reply::ok(&ReplayDto { requeued: r.requeued }))
}

// ---------------------------------------------------------------- event payloads (documentation)

/// Event envelopes: `{"id", "type", "sessionId", "timestamp", "data"}`.
/// Headers of every webhook request (Standard Webhooks): `webhook-id` (the
/// event id), `webhook-timestamp` (Unix seconds of the attempt) and
/// `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
/// keyed by the base64 part of the `whsec_` secret; two, space-separated,
/// while a rotated secret still signs).
macro_rules! event_schema {
    ($name:ident, $data:ty, $doc:literal) => {
        #[doc = $doc]
        #[derive(Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// Unique event id (`evt_…`), also the `webhook-id` header.
            pub id: String,
            /// The event type.
            #[serde(rename = "type")]
            pub kind: String,
            pub session_id: String,
            pub timestamp: Ts,
            pub data: $data,
        }
    };
}

event_schema!(MessageReceivedEvent, MessageReceivedData, "`message.received`: an inbound message.");
event_schema!(
    MessageStatusEvent,
    MessageStatusData,
    "`message.status`: SENT, DELIVERED, READ or FAILED (with reason)."
);
event_schema!(
    SessionStatusEvent,
    SessionStatusData,
    "`session.status`: every change of the session's state, with its reason."
);
event_schema!(SessionQrEvent, SessionQrData, "`session.qr`: a new QR code to scan.");
event_schema!(WebhookTestEvent, WebhookTestData, "`webhook.test`: sent by POST …/webhook/test.");

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventLocation {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventContact {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub vcard: Option<String>,
}

/// `message.received`: an inbound message.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageReceivedData {
    pub message_id: String,
    pub wa_message_id: String,
    pub from: String,
    /// TEXT, IMAGE, DOCUMENT, AUDIO, VIDEO, STICKER, LOCATION or CONTACT.
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
    pub caption: Option<String>,
    pub media_url: Option<String>,
    pub filename: Option<String>,
    pub location: Option<EventLocation>,
    pub contact: Option<EventContact>,
    pub timestamp: Ts,
}

/// `message.status`: an outbound message moved forward.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageStatusData {
    pub message_id: String,
    /// SENT, DELIVERED, READ or FAILED.
    pub status: String,
    pub wa_message_id: Option<String>,
    pub to: String,
    /// Why it failed (FAILED only).
    pub reason: Option<String>,
    pub timestamp: Ts,
}

/// `session.status`: every change of the session's state.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatusData {
    /// INIT, QR_REQUIRED, CONNECTED, DISCONNECTED, RECONNECTING or ERROR.
    pub status: String,
    pub reason: Option<String>,
    pub phone_number: Option<String>,
}

/// `session.qr`: a new QR code to scan.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionQrData {
    pub qr_code: String,
}

/// `webhook.test`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookTestData {
    pub message: String,
}

// ---------------------------------------------------------------- OpenAPI operations

#[utoipa::path(put, path = "/api/v1/sessions/{sessionId}/webhook", tag = "webhooks",
    summary = "Create or replace the session's webhook (a generated secret is shown once)",
    description = "Events are POSTed as JSON (schemas MessageReceivedEvent, MessageStatusEvent, SessionStatusEvent, \
    SessionQrEvent, WebhookTestEvent), signed with the Standard Webhooks headers webhook-id, webhook-timestamp and \
    webhook-signature. Only 2xx counts as delivered; failures are retried (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, \
    then every 10 h, about 3 days); 410 disables the webhook. Events of one session are delivered in order: a later \
    event waits while an earlier one is retrying.",
    security(("bearer" = [])), params(("sessionId" = String, Path)), request_body = WebhookBody,
    responses((status = 200, body = Envelope<PutWebhookDto>), (status = 201, body = Envelope<PutWebhookDto>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) fn put_webhook_doc() {}

#[utoipa::path(get, path = "/api/v1/sessions/{sessionId}/webhook", tag = "webhooks",
    summary = "The session's webhook (never its secret)",
    security(("bearer" = [])), params(("sessionId" = String, Path)),
    responses((status = 200, body = Envelope<WebhookDto>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) fn get_webhook_doc() {}

#[utoipa::path(delete, path = "/api/v1/sessions/{sessionId}/webhook", tag = "webhooks",
    summary = "Delete the webhook and its delivery log",
    security(("bearer" = [])), params(("sessionId" = String, Path)),
    responses((status = 200, body = Envelope<DeletedWebhookDto>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) fn delete_webhook_doc() {}

#[utoipa::path(post, path = "/api/v1/sessions/{sessionId}/webhook/test", tag = "webhooks",
    summary = "Send a webhook.test event now (one attempt) and return its delivery",
    security(("bearer" = [])), params(("sessionId" = String, Path)),
    responses((status = 200, body = Envelope<DeliveryDto>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) fn test_webhook_doc() {}

#[utoipa::path(post, path = "/api/v1/sessions/{sessionId}/webhook/rotate-secret", tag = "webhooks",
    summary = "New secret (shown once); the previous one keeps signing too for 24 hours",
    security(("bearer" = [])), params(("sessionId" = String, Path)),
    responses((status = 200, body = Envelope<RotatedSecretDto>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) fn rotate_secret_doc() {}

#[utoipa::path(get, path = "/api/v1/sessions/{sessionId}/webhook/deliveries", tag = "webhooks",
    summary = "The delivery log, newest first, cursor-paged",
    security(("bearer" = [])),
    params(("sessionId" = String, Path),
        ("status" = Option<String>, Query, description = "PENDING, DELIVERED, FAILED or RETRYING"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page"),
        ("limit" = Option<u32>, Query, description = "1-100, default 50")),
    responses((status = 200, body = Envelope<DeliveryListDto>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) fn list_deliveries_doc() {}

#[utoipa::path(post, path = "/api/v1/sessions/{sessionId}/webhook/deliveries/{deliveryId}/redeliver", tag = "webhooks",
    summary = "Queue one delivery again now (same event id, full retry schedule)",
    security(("bearer" = [])), params(("sessionId" = String, Path), ("deliveryId" = String, Path)),
    responses((status = 200, body = Envelope<DeliveryDto>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) fn redeliver_doc() {}

#[utoipa::path(post, path = "/api/v1/sessions/{sessionId}/webhook/replay", tag = "webhooks",
    summary = "Queue again every event since a time that was not delivered (after an outage)",
    security(("bearer" = [])),
    params(("sessionId" = String, Path), ("since" = String, Query, description = "RFC 3339 time")),
    responses((status = 200, body = Envelope<ReplayDto>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) fn replay_doc() {}
