//! A session's webhook (→ `wagate.v1.WebhookService`), with the owner's JWT:
//!
//! - `PUT|GET|DELETE /sessions/{sessionId}/webhook`
//! - `POST /sessions/{sessionId}/webhook/test`, `POST …/webhook/rotate-secret`
//! - `GET /sessions/{sessionId}/webhook/deliveries?status=&cursor=&limit=`
//! - `POST …/webhook/deliveries/{deliveryId}/redeliver`, `POST …/webhook/replay?since=`
//!
//! Also the schemas of the events POSTed to the webhook (documentation only):
//! the contract's types ([`wagate_proto::contract::events`]).

use std::sync::Arc;

use axum::extract::State;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{ComponentsBuilder, OpenApiBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::contract::events::{self, EventType};
use wagate_proto::contract::limits::MAX_WEBHOOK_EVENTS;
use wagate_proto::error::{ApiError, ErrorCode};
use wagate_proto::v1;

use super::{Answer, AppState, CallContext, Reply, incomplete_reply};
use crate::json::{Json, Validate, require};
use crate::model::Ts;
use crate::names;
use crate::openapi::{Envelope, ErrorEnvelope};
use crate::params::{Names, PathIds, Query, SessionId, one_of, positive, text, time};

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(event_schemas())
        .routes(routes!(put, get, delete))
        .routes(routes!(test))
        .routes(routes!(rotate_secret))
        .routes(routes!(deliveries))
        .routes(routes!(redeliver))
        .routes(routes!(replay))
}

/// The events, documented as components (no route returns them): one
/// `{Variant}Event` schema per event type and its payload, from the contract.
fn event_schemas() -> utoipa::openapi::OpenApi {
    OpenApiBuilder::new()
        .components(Some(ComponentsBuilder::new().schemas_from_iter(events::openapi_schemas()).build()))
        .build()
}

/// `events` of a webhook: the subscribable event types.
fn events_schema() -> Schema {
    let names = EventType::SUBSCRIBABLE.iter().map(|t| t.as_str());
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .description(Some(format!(
            "Event types: {}. Absent or empty: all of them.",
            EventType::list(EventType::SUBSCRIBABLE)
        )))
        .items(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(names)))
        .max_items(Some(MAX_WEBHOOK_EVENTS))
        .into()
}

fn session(session_id: String) -> v1::GetSessionRequest {
    v1::GetSessionRequest { session_id }
}

// ---------------------------------------------------------------- bodies and DTOs

/// `PUT /sessions/{sessionId}/webhook`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"url": "https://example.com/hooks/wagate", "events": ["message.received", "message.status"]}))]
pub struct WebhookBody {
    /// http(s) URL; must not resolve to a private, loopback, link-local,
    /// CGNAT or metadata address (unless the operator allows it).
    #[schema(min_length = 1, max_length = 2048, pattern = "^[Hh][Tt][Tt][Pp][Ss]?://")]
    pub url: String,
    /// The subscribable event types; absent or empty: all of them.
    #[schema(schema_with = events_schema)]
    pub events: Option<Vec<String>>,
    /// `whsec_` + base64 of 24-64 bytes; generated (and shown once) when absent.
    #[schema(min_length = 38, max_length = 94, pattern = "^whsec_[A-Za-z0-9+/]{30,88}={0,2}$")]
    pub secret: Option<String>,
    /// Default true; true re-enables a disabled webhook.
    pub is_active: Option<bool>,
}

impl Validate for WebhookBody {
    fn validate(&self) -> Result<(), ApiError> {
        require("url", &self.url)?;
        if self.events.as_ref().is_some_and(|e| e.len() > MAX_WEBHOOK_EVENTS) {
            return Err(ApiError::invalid(
                "events",
                format!("events has at most {MAX_WEBHOOK_EVENTS} entries"),
            ));
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

names!(
    /// The state of a delivery.
    DeliveryStatus { Pending = "PENDING", Delivered = "DELIVERED", Failed = "FAILED", Retrying = "RETRYING" }
);

/// One event's delivery to the webhook.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDto {
    /// The event id (the `webhook-id` header, the same on every attempt).
    pub id: String,
    /// The event type.
    #[schema(value_type = EventType)]
    pub event_type: String,
    /// PENDING, DELIVERED, FAILED or RETRYING.
    #[schema(schema_with = DeliveryStatus::schema)]
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
    let status =
        match v1::WebhookDeliveryStatus::try_from(s).unwrap_or(v1::WebhookDeliveryStatus::Unspecified) {
            v1::WebhookDeliveryStatus::Pending | v1::WebhookDeliveryStatus::Unspecified => {
                DeliveryStatus::Pending
            }
            v1::WebhookDeliveryStatus::Delivered => DeliveryStatus::Delivered,
            v1::WebhookDeliveryStatus::Failed => DeliveryStatus::Failed,
            v1::WebhookDeliveryStatus::Retrying => DeliveryStatus::Retrying,
        };
    status.name()
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

impl From<&v1::ListWebhookDeliveriesResponse> for DeliveryListDto {
    fn from(r: &v1::ListWebhookDeliveriesResponse) -> Self {
        DeliveryListDto {
            deliveries: r.deliveries.iter().map(DeliveryDto::from).collect(),
            next_cursor: r.next_cursor.clone(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayDto {
    /// Events queued again.
    pub requeued: u64,
}

// ---------------------------------------------------------------- query strings

/// `limit`: a positive integer, at most 100.
fn limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let n = positive(d)?;
    if n.is_some_and(|n| n > 100) {
        return Err(de::Error::custom("must be between 1 and 100"));
    }
    Ok(n)
}

/// `?status=&cursor=&limit=` of the delivery log.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesParams {
    /// PENDING, DELIVERED, FAILED or RETRYING (any case).
    #[serde(default, deserialize_with = "one_of")]
    #[param(schema_with = DeliveryStatus::schema)]
    pub status: Option<DeliveryStatus>,
    /// nextCursor of the previous page.
    #[serde(default, deserialize_with = "text::<_, 64>")]
    #[param(max_length = 64)]
    pub cursor: Option<String>,
    /// 1-100, default 50.
    #[serde(default, deserialize_with = "limit")]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// `?since=` of a replay.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplayParams {
    /// RFC 3339 time.
    #[serde(default, deserialize_with = "time")]
    #[param(value_type = String, format = DateTime, required = true)]
    pub since: Option<prost_types::Timestamp>,
}

// ---------------------------------------------------------------- handlers

#[utoipa::path(put, path = "/sessions/{sessionId}/webhook", tag = "webhooks",
    summary = "Create or replace the session's webhook (a generated secret is shown once)",
    description = "Events are POSTed as JSON (the schemas named …Event, one per event type, e.g. \
    MessageReceivedEvent), signed with the Standard Webhooks headers webhook-id, webhook-timestamp and \
    webhook-signature. Only 2xx counts as delivered; failures are retried (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, \
    then every 10 h, about 3 days); 410 disables the webhook. Events of one session are delivered in order: a later \
    event waits while an earlier one is retrying.",
    security(("bearer" = []), ("apiKey" = [])), params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64)),
    request_body = WebhookBody,
    responses((status = 200, description = "replaced", body = Envelope<PutWebhookDto>),
        (status = 201, description = "created", body = Envelope<PutWebhookDto>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn put(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    SessionId(session_id): SessionId,
    Json(body): Json<WebhookBody>,
) -> Answer {
    call.require_api_key()?;
    let request = v1::PutWebhookRequest {
        session_id,
        url: body.url,
        events: body.events.unwrap_or_default(),
        secret: body.secret,
        is_active: body.is_active,
    };
    let r = call
        .unary("WebhookService.PutWebhook", state.control_plane.webhooks().put_webhook(call.request(request)))
        .await?;
    let w = r.webhook.as_ref().ok_or_else(|| incomplete_reply("WebhookService.PutWebhook"))?;
    let dto = PutWebhookDto { webhook: w.into(), secret: r.secret.clone(), created: r.created };
    Ok(if r.created { Reply::created(&dto) } else { Reply::ok(&dto) })
}

#[utoipa::path(get, path = "/sessions/{sessionId}/webhook", tag = "webhooks",
    summary = "The session's webhook (never its secret)",
    security(("bearer" = []), ("apiKey" = [])), params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64)),
    responses((status = 200, body = Envelope<WebhookDto>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn get(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let request = session(ids.session()?);
    call.require_api_key()?;
    let w = call
        .unary("WebhookService.GetWebhook", state.control_plane.webhooks().get_webhook(call.request(request)))
        .await?;
    Ok(Reply::ok(&WebhookDto::from(&w)))
}

#[utoipa::path(delete, path = "/sessions/{sessionId}/webhook", tag = "webhooks",
    summary = "Delete the webhook and its delivery log",
    security(("bearer" = []), ("apiKey" = [])), params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64)),
    responses((status = 200, body = Envelope<DeletedWebhookDto>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn delete(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let request = session(ids.session()?);
    call.require_api_key()?;
    let r = call
        .unary(
            "WebhookService.DeleteWebhook",
            state.control_plane.webhooks().delete_webhook(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&DeletedWebhookDto { session_id: r.session_id, deleted: r.deleted }))
}

#[utoipa::path(post, path = "/sessions/{sessionId}/webhook/test", tag = "webhooks",
    summary = "Send a webhook.test event now (one attempt) and return its delivery",
    security(("bearer" = []), ("apiKey" = [])), params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64)),
    responses((status = 200, body = Envelope<DeliveryDto>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "WEBHOOK_NOT_CONFIGURED: the session has no webhook (PUT one first)", body = ErrorEnvelope)))]
pub(crate) async fn test(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let request = session(ids.session()?);
    call.require_api_key()?;
    let d = call
        .unary(
            "WebhookService.TestWebhook",
            state.control_plane.webhooks().test_webhook(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&DeliveryDto::from(&d)))
}

#[utoipa::path(post, path = "/sessions/{sessionId}/webhook/rotate-secret", tag = "webhooks",
    summary = "New secret (shown once); the previous one keeps signing too for 24 hours",
    security(("bearer" = []), ("apiKey" = [])), params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64)),
    responses((status = 200, body = Envelope<RotatedSecretDto>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "WEBHOOK_NOT_CONFIGURED: the session has no webhook (PUT one first)", body = ErrorEnvelope)))]
pub(crate) async fn rotate_secret(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    ids: PathIds,
) -> Answer {
    let request = session(ids.session()?);
    call.require_api_key()?;
    let r = call
        .unary(
            "WebhookService.RotateWebhookSecret",
            state.control_plane.webhooks().rotate_webhook_secret(call.request(request)),
        )
        .await?;
    let w = r.webhook.as_ref().ok_or_else(|| incomplete_reply("WebhookService.RotateWebhookSecret"))?;
    Ok(Reply::ok(&RotatedSecretDto { webhook: w.into(), secret: r.secret.clone() }))
}

#[utoipa::path(get, path = "/sessions/{sessionId}/webhook/deliveries", tag = "webhooks",
    summary = "The delivery log, newest first, cursor-paged",
    security(("bearer" = []), ("apiKey" = [])),
    params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64), DeliveriesParams),
    responses((status = 200, body = Envelope<DeliveryListDto>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn deliveries(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    ids: PathIds,
    Query(q): Query<DeliveriesParams>,
) -> Answer {
    let session_id = ids.session()?;
    let status = match q.status {
        None => v1::WebhookDeliveryStatus::Unspecified,
        Some(DeliveryStatus::Pending) => v1::WebhookDeliveryStatus::Pending,
        Some(DeliveryStatus::Delivered) => v1::WebhookDeliveryStatus::Delivered,
        Some(DeliveryStatus::Failed) => v1::WebhookDeliveryStatus::Failed,
        Some(DeliveryStatus::Retrying) => v1::WebhookDeliveryStatus::Retrying,
    };
    call.require_api_key()?;
    let request = v1::ListWebhookDeliveriesRequest {
        session_id,
        status: status as i32,
        cursor: q.cursor.unwrap_or_default(),
        limit: q.limit.unwrap_or(0),
    };
    let r = call
        .unary(
            "WebhookService.ListWebhookDeliveries",
            state.control_plane.webhooks().list_webhook_deliveries(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&DeliveryListDto::from(&r)))
}

/// `{deliveryId}`: one that cannot exist (1..=64 of `[A-Za-z0-9_-]`) is 404.
fn delivery_id(ids: &PathIds) -> Result<String, ApiError> {
    ids.id("deliveryId", "delivery")
        .ok()
        .filter(|d| !d.contains('.'))
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "delivery not found"))
}

#[utoipa::path(post, path = "/sessions/{sessionId}/webhook/deliveries/{deliveryId}/redeliver", tag = "webhooks",
    summary = "Queue one delivery again now (same event id, full retry schedule)",
    security(("bearer" = []), ("apiKey" = [])),
    params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64),
        ("deliveryId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64)),
    responses((status = 200, body = Envelope<DeliveryDto>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(crate) async fn redeliver(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let session_id = ids.session()?;
    let delivery_id = delivery_id(&ids)?;
    call.require_api_key()?;
    let request = v1::RedeliverWebhookDeliveryRequest { session_id, delivery_id };
    let d = call
        .unary(
            "WebhookService.RedeliverWebhookDelivery",
            state.control_plane.webhooks().redeliver_webhook_delivery(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&DeliveryDto::from(&d)))
}

#[utoipa::path(post, path = "/sessions/{sessionId}/webhook/replay", tag = "webhooks",
    summary = "Queue again every event since a time that was not delivered (after an outage)",
    security(("bearer" = []), ("apiKey" = [])),
    params(("sessionId" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$", max_length = 64), ReplayParams),
    responses((status = 200, body = Envelope<ReplayDto>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "WEBHOOK_NOT_CONFIGURED: the session has no webhook (PUT one first)", body = ErrorEnvelope)))]
pub(crate) async fn replay(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    ids: PathIds,
    Query(q): Query<ReplayParams>,
) -> Answer {
    let session_id = ids.session()?;
    let since = q.since.ok_or_else(|| ApiError::invalid("since", "since is required (RFC 3339 time)"))?;
    call.require_api_key()?;
    let request = v1::ReplayWebhookRequest { session_id, since: Some(since) };
    let r = call
        .unary(
            "WebhookService.ReplayWebhook",
            state.control_plane.webhooks().replay_webhook(call.request(request)),
        )
        .await?;
    Ok(Reply::ok(&ReplayDto { requeued: r.requeued }))
}

#[cfg(test)]
mod tests {
    use wagate_proto::contract::limits::MAX_WEBHOOK_URL;

    use super::*;
    use crate::json::parse;

    #[test]
    fn body_validation() {
        let b =
            parse::<WebhookBody>(br#"{"url":"https://example.com/h","events":["message.status"]}"#).unwrap();
        assert_eq!(b.events.as_deref(), Some(&["message.status".to_owned()][..]));
        let e = parse::<WebhookBody>(br#"{"events":[]}"#).unwrap_err();
        assert_eq!((e.field.as_deref(), e.message.as_str()), (Some("url"), "url is required"));
        let e = parse::<WebhookBody>(br#"{"url":"  "}"#).unwrap_err();
        assert_eq!(e.message, "url is required");
        let many =
            serde_json::json!({"url": "https://x.example", "events": vec!["session.qr"; 17]}).to_string();
        let e = parse::<WebhookBody>(many.as_bytes()).unwrap_err();
        assert_eq!(
            (e.field.as_deref(), e.message.as_str()),
            (Some("events"), "events has at most 16 entries")
        );
        let e = parse::<WebhookBody>(br#"{"url":"https://x.example","isActive":"yes"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("isActive"));
    }

    #[test]
    fn query_validation() {
        let q = Query::<DeliveriesParams>::parse(Some("status=failed&limit=100&cursor=abc")).unwrap();
        assert_eq!(
            (q.status, q.limit, q.cursor.as_deref()),
            (Some(DeliveryStatus::Failed), Some(100), Some("abc"))
        );
        for (query, message) in [
            ("limit=101", "limit must be between 1 and 100"),
            ("limit=0", "limit must be a positive integer"),
            ("status=LOST", "status must be one of PENDING, DELIVERED, FAILED, RETRYING"),
            (&format!("cursor={}", "c".repeat(65)), "cursor must be at most 64 characters"),
        ] {
            let e = Query::<DeliveriesParams>::parse(Some(query)).unwrap_err();
            assert_eq!(e.message, message, "{query}");
        }
        assert!(Query::<ReplayParams>::parse(None).unwrap().since.is_none());
        let e = Query::<ReplayParams>::parse(Some("since=yesterday")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("since"));
        assert!(Query::<ReplayParams>::parse(Some("since=2026-01-15T10:30:00Z")).unwrap().since.is_some());
    }

    #[test]
    fn delivery_json() {
        let d = v1::WebhookDelivery {
            id: "evt_1".into(),
            event_type: "webhook.test".into(),
            status: v1::WebhookDeliveryStatus::Retrying as i32,
            payload: r#"{"type":"webhook.test"}"#.into(),
            ..Default::default()
        };
        let v = serde_json::to_value(DeliveryDto::from(&d)).unwrap();
        assert_eq!(v["status"], "RETRYING");
        assert_eq!(v["eventType"], "webhook.test");
        assert_eq!(v["payload"]["type"], "webhook.test");
        assert!(v["nextRetry"].is_null());
    }

    #[test]
    fn document_shows_the_constraints() {
        let doc: serde_json::Value = serde_json::from_str(&crate::openapi::json()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let body = &schemas["WebhookBody"]["properties"];
        assert_eq!(body["events"]["maxItems"], 16);
        assert_eq!(body["events"]["maxItems"], MAX_WEBHOOK_EVENTS);
        assert_eq!(body["events"]["items"]["enum"].as_array().unwrap().len(), EventType::SUBSCRIBABLE.len());
        // utoipa takes only literals: the document says what the contract says.
        assert_eq!(body["url"]["maxLength"], MAX_WEBHOOK_URL);
        for name in [
            "MessageReceivedEvent",
            "MessageStatusEvent",
            "SessionStatusEvent",
            "SessionQrEvent",
            "WebhookTestEvent",
        ] {
            assert!(schemas[name].is_object(), "{name}");
        }
        // One envelope per event type of the contract, its `type` the one wire name.
        for t in EventType::ALL {
            let event = &schemas[format!("{t:?}Event")];
            assert_eq!(event["properties"]["type"]["enum"][0], t.as_str(), "{t}");
            assert_eq!(event["properties"]["data"]["$ref"], format!("#/components/schemas/{t:?}Data"));
            assert!(schemas[format!("{t:?}Data")].is_object(), "{t:?}Data");
        }
        assert_eq!(
            schemas["DeliveryDto"]["properties"]["eventType"]["$ref"],
            "#/components/schemas/EventType"
        );
        assert_eq!(schemas["EventType"]["enum"].as_array().unwrap().len(), EventType::ALL.len());
        let paths = &doc["paths"];
        let put = &paths["/api/v1/sessions/{sessionId}/webhook"]["put"];
        for status in ["200", "201", "400", "401", "404", "415"] {
            assert!(put["responses"][status].is_object(), "PUT webhook: no {status}");
        }
        assert!(put["description"].as_str().unwrap().contains("webhook-signature"));
        let list = &paths["/api/v1/sessions/{sessionId}/webhook/deliveries"]["get"]["parameters"];
        let limit = list.as_array().unwrap().iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(limit["schema"]["maximum"], 100);
        let replay = &paths["/api/v1/sessions/{sessionId}/webhook/replay"]["post"]["parameters"];
        let since = replay.as_array().unwrap().iter().find(|p| p["name"] == "since").unwrap();
        assert_eq!(since["required"], true);
        assert_eq!(since["schema"]["format"], "date-time");
    }

    /// Ids that cannot exist are 404 before any credential check or call.
    #[tokio::test]
    async fn impossible_ids_are_not_found() {
        use axum::body::Body;
        use tower::ServiceExt;

        use crate::config::EdgeConfig;
        use crate::cors::Cors;
        use crate::grpc::ControlPlane;

        let config = EdgeConfig { control_plane_url: "http://127.0.0.1:1".into(), ..EdgeConfig::default() };
        let state = Arc::new(AppState {
            control_plane: ControlPlane::new(&config.control_plane_url, 1).unwrap(),
            cors: Cors::new(&config.cors_origins),
            config,
        });
        let app = crate::app::service(state);
        for (method, uri, message) in [
            ("POST", "/api/v1/sessions/s1/webhook/deliveries/a.b/redeliver", "delivery not found"),
            ("GET", "/api/v1/sessions/a.b/webhook", "session not found"),
            ("POST", "/api/v1/sessions/s1/webhook/replay", "since is required (RFC 3339 time)"),
            (
                "GET",
                "/api/v1/sessions/s1/webhook",
                "missing API key: send Authorization: Bearer <key> or X-API-Key: <key>",
            ),
        ] {
            let request = http::Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(v["error"].as_str().unwrap().eq_ignore_ascii_case(message), "{uri}: {status} {v}");
            assert!(matches!(status, 400 | 401 | 404), "{uri}: {status}");
        }
    }
}
