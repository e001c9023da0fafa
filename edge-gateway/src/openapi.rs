//! The OpenAPI 3 document of the REST API, generated with utoipa from the
//! gateway's own request and response types ([`crate::dto`],
//! [`crate::resources`]). Each operation below documents one entry of
//! [`crate::router::ROUTES`]; a test keeps the two in step.
#![allow(dead_code)]

use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{OpenApi, ToSchema};

use crate::dto::*;
use crate::resources::*;

/// `{"success": true, "data": …}`.
#[derive(Serialize, ToSchema)]
pub struct Envelope<T: ToSchema> {
    /// Always true.
    pub success: bool,
    pub data: T,
}

/// `{"success": false, "error": "…", "code": "…", "field": "…"}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// Always false.
    pub success: bool,
    /// Human-readable message.
    pub error: String,
    /// Machine-readable code, e.g. VALIDATION_ERROR, INVALID_TOKEN, FORBIDDEN, NOT_FOUND.
    pub code: String,
    /// The request field a VALIDATION_ERROR is about.
    pub field: Option<String>,
}

#[utoipa::path(get, path = "/health", tag = "health", summary = "Edge liveness",
    responses((status = 200, body = Envelope<HealthDto>)))]
fn health() {}

#[utoipa::path(get, path = "/health/ready", tag = "health", summary = "Readiness (control plane SERVING)",
    responses((status = 200, body = Envelope<HealthDto>), (status = 503, body = ErrorEnvelope)))]
fn ready() {}

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", summary = "Create an account (USER, BASIC)",
    request_body = RegisterBody,
    responses((status = 201, body = Envelope<AuthDto>), (status = 400, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
fn register() {}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", summary = "Log in, get a JWT",
    request_body = LoginBody,
    responses((status = 200, body = Envelope<AuthDto>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
fn login() {}

#[utoipa::path(get, path = "/api/v1/me", tag = "account", summary = "The caller's account",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<UserDto>), (status = 401, body = ErrorEnvelope)))]
fn get_me() {}

#[utoipa::path(patch, path = "/api/v1/me", tag = "account",
    summary = "Change name, email or password (role and tier are refused)",
    security(("bearer" = [])), request_body = UpdateMeBody,
    responses((status = 200, body = Envelope<UserDto>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
fn update_me() {}

#[utoipa::path(delete, path = "/api/v1/me", tag = "account",
    summary = "Delete the account, its sessions (stopped on the workers), keys and messages",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<DeletedUserDto>), (status = 401, body = ErrorEnvelope)))]
fn delete_me() {}

#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions", summary = "Create a session (API key shown once)",
    security(("bearer" = [])), request_body = CreateSessionBody,
    responses((status = 201, body = Envelope<CreatedSessionDto>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope)))]
fn create_session() {}

#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", summary = "The caller's sessions",
    security(("bearer" = [])),
    params(("page" = Option<u32>, Query, description = "1-based page"), ("limit" = Option<u32>, Query, description = "1-100, default 20")),
    responses((status = 200, body = Envelope<SessionListDto>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
fn list_sessions() {}

#[utoipa::path(get, path = "/api/v1/sessions/{sessionId}", tag = "sessions", summary = "One session",
    security(("bearer" = [])), params(("sessionId" = String, Path)),
    responses((status = 200, body = Envelope<SessionDto>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
fn get_session() {}

#[utoipa::path(delete, path = "/api/v1/sessions/{sessionId}", tag = "sessions",
    summary = "Stop and delete a session (its key and messages with it)",
    security(("bearer" = [])), params(("sessionId" = String, Path)),
    responses((status = 200, body = Envelope<DeletedDto>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
fn delete_session() {}

#[utoipa::path(get, path = "/api/v1/sessions/{sessionId}/qr", tag = "sessions", summary = "The QR code to scan",
    security(("bearer" = [])), params(("sessionId" = String, Path)),
    responses((status = 200, body = Envelope<QrDto>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
fn get_qr() {}

#[utoipa::path(post, path = "/api/v1/sessions/{sessionId}/send", tag = "messages",
    summary = "Send a message with the session's API key (Idempotency-Key honoured)",
    security(("apiKey" = []), ("bearer" = [])),
    params(("sessionId" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = SendBody,
    responses((status = 200, body = Envelope<SendDto>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)))]
fn send() {}

#[utoipa::path(get, path = "/api/v1/sessions/{sessionId}/api-key", tag = "api keys",
    summary = "The session key's metadata (prefix, lastUsed, expiry; never the key)",
    security(("bearer" = [])), params(("sessionId" = String, Path)),
    responses((status = 200, body = Envelope<ApiKeyDto>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
fn get_key() {}

#[utoipa::path(delete, path = "/api/v1/sessions/{sessionId}/api-key", tag = "api keys",
    summary = "Revoke the session's key at once",
    security(("bearer" = [])), params(("sessionId" = String, Path)),
    responses((status = 200, body = Envelope<ApiKeyDto>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
fn revoke_key() {}

#[utoipa::path(post, path = "/api/v1/sessions/{sessionId}/api-key/rotate", tag = "api keys",
    summary = "Issue a new key (shown once); the old one stops working at once",
    security(("bearer" = [])), params(("sessionId" = String, Path)),
    request_body(content = Option<RotateKeyBody>, description = "optional"),
    responses((status = 200, body = Envelope<RotatedKeyDto>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
fn rotate_key() {}

#[utoipa::path(get, path = "/api/v1/sessions/{sessionId}/messages", tag = "messages",
    summary = "Message history, newest first, cursor-paged",
    security(("bearer" = [])),
    params(("sessionId" = String, Path),
        ("limit" = Option<u32>, Query, description = "1-100, default 50"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page"),
        ("direction" = Option<String>, Query, description = "INBOUND or OUTBOUND"),
        ("status" = Option<String>, Query, description = "PENDING, SENT, DELIVERED, READ or FAILED"),
        ("type" = Option<String>, Query, description = "TEXT, IMAGE, DOCUMENT, AUDIO, VIDEO, STICKER, LOCATION or CONTACT"),
        ("peer" = Option<String>, Query, description = "phone number or JID of the other party"),
        ("from" = Option<String>, Query, description = "RFC 3339, inclusive"),
        ("to" = Option<String>, Query, description = "RFC 3339, inclusive")),
    responses((status = 200, body = Envelope<MessageListDto>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
fn list_messages() {}

#[utoipa::path(get, path = "/api/v1/sessions/{sessionId}/messages/{messageId}", tag = "messages", summary = "One message",
    security(("bearer" = [])), params(("sessionId" = String, Path), ("messageId" = String, Path)),
    responses((status = 200, body = Envelope<MessageDto>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
fn get_message() {}

#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", summary = "Users (search name/email)",
    security(("bearer" = [])),
    params(("page" = Option<u32>, Query), ("limit" = Option<u32>, Query, description = "1-100, default 20"),
        ("search" = Option<String>, Query, description = "case-insensitive substring of name or email")),
    responses((status = 200, body = Envelope<UserListDto>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
fn list_users() {}

#[utoipa::path(get, path = "/api/v1/admin/users/{userId}", tag = "admin", summary = "One user",
    security(("bearer" = [])), params(("userId" = String, Path)),
    responses((status = 200, body = Envelope<UserDto>), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
fn get_user() {}

#[utoipa::path(patch, path = "/api/v1/admin/users/{userId}", tag = "admin",
    summary = "Change tier, role, isActive (deactivation stops tokens and keys at once)",
    security(("bearer" = [])), params(("userId" = String, Path)), request_body = UpdateUserBody,
    responses((status = 200, body = Envelope<UserDto>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
fn update_user() {}

#[utoipa::path(delete, path = "/api/v1/admin/users/{userId}", tag = "admin", summary = "Delete a user and all they own",
    security(("bearer" = [])), params(("userId" = String, Path)),
    responses((status = 200, body = Envelope<DeletedUserDto>), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
fn delete_user() {}

#[utoipa::path(get, path = "/api/v1/admin/workers", tag = "admin", summary = "Workers with their live stream state",
    security(("bearer" = [])), params(("page" = Option<u32>, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, body = Envelope<WorkerListDto>), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
fn list_workers() {}

#[utoipa::path(post, path = "/api/v1/admin/workers", tag = "admin",
    summary = "Pre-register a worker; its stream token is shown once",
    security(("bearer" = [])), request_body = CreateWorkerBody,
    responses((status = 201, body = Envelope<CreatedWorkerDto>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
fn create_worker() {}

#[utoipa::path(get, path = "/api/v1/admin/workers/{workerId}", tag = "admin", summary = "A worker, its sessions and recent metrics",
    security(("bearer" = [])), params(("workerId" = String, Path)),
    responses((status = 200, body = Envelope<WorkerDetailDto>), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
fn get_worker() {}

#[utoipa::path(patch, path = "/api/v1/admin/workers/{workerId}", tag = "admin",
    summary = "Change maxSessions, description, status (MAINTENANCE / ONLINE)",
    security(("bearer" = [])), params(("workerId" = String, Path)), request_body = UpdateWorkerBody,
    responses((status = 200, body = Envelope<WorkerDto>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
fn update_worker() {}

#[utoipa::path(delete, path = "/api/v1/admin/workers/{workerId}", tag = "admin",
    summary = "Delete a worker (409 while it holds sessions, unless force=true detaches them)",
    security(("bearer" = [])), params(("workerId" = String, Path), ("force" = Option<bool>, Query)),
    responses((status = 200, body = Envelope<DeletedWorkerDto>), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
fn delete_worker() {}

#[utoipa::path(get, path = "/api/v1/admin/workers/{workerId}/metrics", tag = "admin", summary = "A worker's metrics over a time range",
    security(("bearer" = [])),
    params(("workerId" = String, Path), ("timeRange" = Option<String>, Query, description = "1h, 24h (default), 7d or 30d")),
    responses((status = 200, body = Envelope<WorkerMetricsDto>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
fn worker_metrics() {}

#[utoipa::path(post, path = "/api/v1/admin/workers/{workerId}/drain", tag = "fleet",
    summary = "Drain a worker: MAINTENANCE, then move each session (start on the new worker with its auth state, stop on the old)",
    security(("bearer" = [])), params(("workerId" = String, Path)),
    responses((status = 200, body = Envelope<crate::routes::fleet::DrainDto>), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
fn drain_worker() {}

#[utoipa::path(get, path = "/api/v1/admin/fleet", tag = "fleet",
    summary = "Fleet capacity, waiting sessions and the recommended worker count (autoscaling signal)",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<crate::routes::fleet::FleetDto>), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope)))]
fn fleet() {}

#[utoipa::path(post, path = "/api/v1/admin/rebalance", tag = "fleet",
    summary = "Move up to maxMoves sessions from the busiest to the idlest workers (never one mid-send)",
    security(("bearer" = [])), params(("maxMoves" = Option<u32>, Query, description = "1..1000; default from config")),
    responses((status = 200, body = Envelope<crate::routes::fleet::RebalanceDto>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
fn rebalance() {}

#[utoipa::path(get, path = "/api/v1/admin/analytics", tag = "admin", summary = "System analytics",
    security(("bearer" = [])), params(("timeRange" = Option<String>, Query, description = "1h, 24h (default), 7d or 30d")),
    responses((status = 200, body = Envelope<AnalyticsDto>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
fn analytics() {}

#[utoipa::path(get, path = "/api/v1/admin/logs", tag = "admin", summary = "Audit and system logs, newest first",
    security(("bearer" = [])),
    params(("page" = Option<u32>, Query), ("limit" = Option<u32>, Query),
        ("level" = Option<String>, Query, description = "ERROR, WARN, INFO or DEBUG"),
        ("service" = Option<String>, Query, description = "auth, users, api_keys, admin, workers, …"),
        ("userId" = Option<String>, Query), ("from" = Option<String>, Query, description = "RFC 3339"),
        ("to" = Option<String>, Query, description = "RFC 3339")),
    responses((status = 200, body = Envelope<LogListDto>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
fn logs() {}

#[utoipa::path(get, path = "/api-docs", tag = "docs", summary = "This documentation (HTML)",
    responses((status = 200, description = "HTML page", content_type = "text/html")))]
fn docs_page() {}

#[utoipa::path(get, path = "/api-docs/openapi.json", tag = "docs", summary = "This OpenAPI document",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
fn docs_json() {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wagate",
        description = "WhatsApp gateway PaaS: REST API. Every path under /api/v1 is also served under /api. \
        Answers are wrapped as {\"success\":true,\"data\":…} or {\"success\":false,\"error\":…,\"code\":…}."
    ),
    paths(
        health,
        ready,
        register,
        login,
        get_me,
        update_me,
        delete_me,
        create_session,
        list_sessions,
        get_session,
        delete_session,
        get_qr,
        send,
        get_key,
        revoke_key,
        rotate_key,
        list_messages,
        get_message,
        list_users,
        get_user,
        update_user,
        delete_user,
        list_workers,
        create_worker,
        get_worker,
        update_worker,
        delete_worker,
        worker_metrics,
        drain_worker,
        fleet,
        rebalance,
        analytics,
        logs,
        docs_page,
        docs_json,
        crate::routes::webhooks::put_webhook_doc,
        crate::routes::webhooks::get_webhook_doc,
        crate::routes::webhooks::delete_webhook_doc,
        crate::routes::webhooks::test_webhook_doc,
        crate::routes::webhooks::rotate_secret_doc,
        crate::routes::webhooks::list_deliveries_doc,
        crate::routes::webhooks::redeliver_doc,
        crate::routes::webhooks::replay_doc
    ),
    components(schemas(
        ErrorEnvelope,
        crate::routes::webhooks::MessageReceivedEvent,
        crate::routes::webhooks::MessageStatusEvent,
        crate::routes::webhooks::SessionStatusEvent,
        crate::routes::webhooks::SessionQrEvent,
        crate::routes::webhooks::WebhookTestEvent
    ))
)]
struct ApiDoc;

/// The document as JSON text.
pub fn json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    if let Some(components) = doc.components.as_mut() {
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT or wag_ key").build(),
            ),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
    doc.to_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "openapi serialization failed");
        "{}".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::router::{ROUTES, resolve};

    #[test]
    fn every_route_is_documented_and_every_documented_path_is_routed() {
        let doc: serde_json::Value = serde_json::from_str(&super::json()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "post", "patch", "delete", "put"].contains(&method.as_str()) {
                    documented.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        let routed: BTreeSet<(String, String)> =
            ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
        assert_eq!(documented, routed, "router table and OpenAPI document differ");
        // Every table entry really resolves, with its method allowed, on both prefixes.
        for (method, path) in ROUTES {
            let concrete = path
                .replace("{sessionId}", "s1")
                .replace("{messageId}", "m1")
                .replace("{userId}", "u1")
                .replace("{workerId}", "w1")
                .replace("{deliveryId}", "d1");
            let mut variants = vec![concrete.clone()];
            if let Some(rest) = concrete.strip_prefix("/api/v1/") {
                variants.push(format!("/api/{rest}"));
            }
            for p in variants {
                let route = resolve(&p).unwrap_or_else(|| panic!("{p} does not resolve"));
                assert!(route.allow().contains(method), "{method} {p} not allowed ({})", route.allow());
            }
        }
        // Schemas come from the gateway's own types.
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in ["UserDto", "SendBody", "MessageDto", "WorkerDto", "AnalyticsDto", "ErrorEnvelope"] {
            assert!(schemas.contains_key(name), "schema {name} missing");
        }
    }
}
