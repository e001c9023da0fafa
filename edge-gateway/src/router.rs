//! The tower service of the gateway: method + path → handler, with
//! `/api/v1/...` and `/api/...` as the same routes, a deadline per request,
//! and every answer wrapped by [`crate::headers::respond`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::FutureExt;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;
use wagate_proto::error::{ApiError, ErrorCode};

use crate::config::EdgeConfig;
use crate::envelope::{Reply, route_not_found, session_not_found};
use crate::grpc::{CallContext, ControlPlane};
use crate::headers::{self, Cors, IDEMPOTENCY_KEY, X_API_KEY};
use crate::json::discard;
use crate::routes;
use crate::server::EdgeError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body the gateway can read (hyper's `Incoming`, or any other
/// body in tests).
pub trait RequestBody: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}
impl<B> RequestBody for B where B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

/// What every request shares: the configuration and the control plane pool.
#[derive(Debug)]
pub(crate) struct AppState {
    pub config: EdgeConfig,
    pub control_plane: ControlPlane,
    pub cors: Cors,
}

/// The gateway as a `tower::Service`. Cheap to clone; one clone per
/// connection carries the peer address forwarded as `x-forwarded-for`.
#[derive(Debug, Clone)]
pub struct EdgeService {
    state: Arc<AppState>,
    forwarded_for: Option<HeaderValue>,
}

impl EdgeService {
    /// Builds the service (and its lazily connecting control plane channels).
    /// Must be called inside a Tokio runtime.
    pub fn new(config: EdgeConfig) -> Result<EdgeService, EdgeError> {
        let control_plane = ControlPlane::new(&config.control_plane_url, config.grpc_channels)
            .map_err(|source| EdgeError::ControlPlaneUrl { url: config.control_plane_url.clone(), source })?;
        let cors = Cors::new(&config.cors_origins);
        Ok(EdgeService { state: Arc::new(AppState { config, control_plane, cors }), forwarded_for: None })
    }

    /// This service for requests arriving from `peer`.
    pub fn for_peer(&self, peer: SocketAddr) -> EdgeService {
        let forwarded_for = HeaderValue::from_str(&peer.ip().to_canonical().to_string()).ok();
        EdgeService { state: self.state.clone(), forwarded_for }
    }

    pub(crate) fn config(&self) -> &EdgeConfig {
        &self.state.config
    }
}

impl<B: RequestBody> tower::Service<Request<B>> for EdgeService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let state = self.state.clone();
        let forwarded_for = self.forwarded_for.clone();
        Box::pin(async move { Ok(handle(state, forwarded_for, request).await) })
    }
}

/// One request as handlers see it.
pub(crate) struct Ctx {
    state: Arc<AppState>,
    pub headers: HeaderMap,
    pub query: Option<String>,
    pub call: CallContext,
}

impl Ctx {
    pub fn control_plane(&self) -> &ControlPlane {
        &self.state.control_plane
    }

    pub fn config(&self) -> &EdgeConfig {
        &self.state.config
    }

    /// 401 unless an `Authorization` header is present (user routes: JWT).
    pub fn require_authorization(&self) -> Result<(), ApiError> {
        if self.call.authorization.is_some() {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::Unauthenticated, "missing Authorization: Bearer <token> header"))
        }
    }

    /// 401 unless `Authorization` or `X-API-Key` is present (send: API key).
    pub fn require_api_key(&self) -> Result<(), ApiError> {
        if self.call.authorization.is_some() || self.call.api_key.is_some() {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "missing API key: send Authorization: Bearer <key> or X-API-Key: <key>",
            ))
        }
    }
}

/// Non-empty header value, if any.
fn header(headers: &HeaderMap, name: &http::HeaderName) -> Option<HeaderValue> {
    headers.get(name).filter(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace)).cloned()
}

async fn handle<B: RequestBody>(
    state: Arc<AppState>,
    forwarded_for: Option<HeaderValue>,
    request: Request<B>,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let request_id = headers::request_id(&parts.headers);
    let cors = state.cors.decide(&parts.headers);
    if parts.method == Method::OPTIONS {
        return headers::respond(Reply::empty(StatusCode::NO_CONTENT), request_id, &cors, true);
    }
    let deadline = started + state.config.request_timeout;
    let call = CallContext {
        authorization: header(&parts.headers, &http::header::AUTHORIZATION),
        api_key: header(&parts.headers, &X_API_KEY),
        request_id: request_id.clone(),
        forwarded_for,
        idempotency_key: header(&parts.headers, &IDEMPOTENCY_KEY),
        deadline,
    };
    let ctx = Ctx { state, headers: parts.headers, query: parts.uri.query().map(str::to_owned), call };
    let routed = AssertUnwindSafe(dispatch(&ctx, &parts.method, parts.uri.path(), body)).catch_unwind();
    let reply = match tokio::time::timeout_at(deadline, routed).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(_panic)) => {
            tracing::error!(method = %parts.method, path = parts.uri.path(), "handler panicked");
            Reply::error(&ApiError::new(ErrorCode::Internal, "internal server error"))
        }
        Err(_elapsed) => Reply::error(&ApiError::new(ErrorCode::DeadlineExceeded, "request timed out")),
    };
    tracing::debug!(
        method = %parts.method,
        path = parts.uri.path(),
        status = reply.status.as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    headers::respond(reply, request_id, &cors, false)
}

/// The routes of the API (path parameters borrowed from the path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    Health,
    Ready,
    Register,
    Login,
    Sessions,
    Session(&'a str),
    SessionQr(&'a str),
    SessionSend(&'a str),
    Me,
    SessionApiKey(&'a str),
    SessionApiKeyRotate(&'a str),
    SessionMessages(&'a str),
    SessionMessage(&'a str, &'a str),
    /// `/sessions/{id}/webhook…` (see `routes::webhooks`).
    SessionWebhook(&'a str, routes::webhooks::WebhookRoute<'a>),
    AdminUsers,
    AdminUser(&'a str),
    AdminWorkers,
    AdminWorker(&'a str),
    AdminWorkerMetrics(&'a str),
    AdminWorkerDrain(&'a str),
    AdminFleet,
    AdminRebalance,
    AdminAnalytics,
    AdminLogs,
    Docs,
    DocsAsset(&'a str),
    OpenApi,
}

/// Every route of the API as `(method, path template)`, the path as the
/// OpenAPI document spells it (`/api/...` is an alias of each `/api/v1/...`).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/health/ready"),
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("GET", "/api/v1/me"),
    ("PATCH", "/api/v1/me"),
    ("DELETE", "/api/v1/me"),
    ("POST", "/api/v1/sessions"),
    ("GET", "/api/v1/sessions"),
    ("GET", "/api/v1/sessions/{sessionId}"),
    ("DELETE", "/api/v1/sessions/{sessionId}"),
    ("GET", "/api/v1/sessions/{sessionId}/qr"),
    ("POST", "/api/v1/sessions/{sessionId}/send"),
    ("GET", "/api/v1/sessions/{sessionId}/api-key"),
    ("DELETE", "/api/v1/sessions/{sessionId}/api-key"),
    ("POST", "/api/v1/sessions/{sessionId}/api-key/rotate"),
    ("GET", "/api/v1/sessions/{sessionId}/messages"),
    ("GET", "/api/v1/sessions/{sessionId}/messages/{messageId}"),
    ("PUT", "/api/v1/sessions/{sessionId}/webhook"),
    ("GET", "/api/v1/sessions/{sessionId}/webhook"),
    ("DELETE", "/api/v1/sessions/{sessionId}/webhook"),
    ("POST", "/api/v1/sessions/{sessionId}/webhook/test"),
    ("POST", "/api/v1/sessions/{sessionId}/webhook/rotate-secret"),
    ("GET", "/api/v1/sessions/{sessionId}/webhook/deliveries"),
    ("POST", "/api/v1/sessions/{sessionId}/webhook/deliveries/{deliveryId}/redeliver"),
    ("POST", "/api/v1/sessions/{sessionId}/webhook/replay"),
    ("GET", "/api/v1/admin/users"),
    ("GET", "/api/v1/admin/users/{userId}"),
    ("PATCH", "/api/v1/admin/users/{userId}"),
    ("DELETE", "/api/v1/admin/users/{userId}"),
    ("GET", "/api/v1/admin/workers"),
    ("POST", "/api/v1/admin/workers"),
    ("GET", "/api/v1/admin/workers/{workerId}"),
    ("PATCH", "/api/v1/admin/workers/{workerId}"),
    ("DELETE", "/api/v1/admin/workers/{workerId}"),
    ("GET", "/api/v1/admin/workers/{workerId}/metrics"),
    ("POST", "/api/v1/admin/workers/{workerId}/drain"),
    ("GET", "/api/v1/admin/fleet"),
    ("POST", "/api/v1/admin/rebalance"),
    ("GET", "/api/v1/admin/analytics"),
    ("GET", "/api/v1/admin/logs"),
    ("GET", "/api-docs"),
    ("GET", "/api-docs/openapi.json"),
];

impl Route<'_> {
    /// The `Allow` header of the route.
    pub(crate) fn allow(self) -> &'static str {
        match self {
            Route::Health
            | Route::Ready
            | Route::SessionQr(_)
            | Route::SessionMessages(_)
            | Route::SessionMessage(..)
            | Route::AdminUsers
            | Route::AdminWorkerMetrics(_)
            | Route::AdminFleet
            | Route::AdminAnalytics
            | Route::AdminLogs
            | Route::Docs
            | Route::DocsAsset(_)
            | Route::OpenApi => "GET, HEAD, OPTIONS",
            Route::Register
            | Route::Login
            | Route::SessionSend(_)
            | Route::SessionApiKeyRotate(_)
            | Route::AdminWorkerDrain(_)
            | Route::AdminRebalance => "POST, OPTIONS",
            Route::Sessions | Route::AdminWorkers => "GET, HEAD, POST, OPTIONS",
            Route::Session(_) | Route::SessionApiKey(_) => "GET, HEAD, DELETE, OPTIONS",
            Route::Me | Route::AdminUser(_) | Route::AdminWorker(_) => "GET, HEAD, PATCH, DELETE, OPTIONS",
            Route::SessionWebhook(_, w) => routes::webhooks::allow(w),
        }
    }
}

/// Resolves a path: `/api/v1/<route>`, `/api/<route>`, and `/health[/ready]`
/// at the root. One trailing slash is ignored.
pub(crate) fn resolve(path: &str) -> Option<Route<'_>> {
    let path = if path.len() > 1 { path.strip_suffix('/').unwrap_or(path) } else { path };
    let (api, rest) = match path.strip_prefix("/api/v1/").or_else(|| path.strip_prefix("/api/")) {
        Some(rest) => (true, rest),
        None => (false, path.strip_prefix('/')?),
    };
    let mut segments = rest.split('/');
    let s = [segments.next(), segments.next(), segments.next(), segments.next(), segments.next()];
    let route = match s {
        [Some("health"), None, ..] => Route::Health,
        [Some("health"), Some("ready"), None, ..] => Route::Ready,
        [Some("api-docs"), None, ..] if !api => Route::Docs,
        [Some("api-docs"), Some("openapi.json"), None, ..] if !api => Route::OpenApi,
        [Some("api-docs"), Some(asset), None, ..] if !api => Route::DocsAsset(asset),
        _ if !api => return None,
        [Some("auth"), Some("register"), None, ..] => Route::Register,
        [Some("auth"), Some("login"), None, ..] => Route::Login,
        [Some("me"), None, ..] => Route::Me,
        [Some("sessions"), None, ..] => Route::Sessions,
        [Some("sessions"), Some(id), None, ..] => Route::Session(id),
        [Some("sessions"), Some(id), Some("webhook"), ..] => {
            let tail = rest.splitn(4, '/').nth(3).unwrap_or("");
            Route::SessionWebhook(id, routes::webhooks::resolve(tail)?)
        }
        [Some("sessions"), Some(id), Some("qr"), None, _] => Route::SessionQr(id),
        [Some("sessions"), Some(id), Some("send"), None, _] => Route::SessionSend(id),
        [Some("sessions"), Some(id), Some("api-key"), None, _] => Route::SessionApiKey(id),
        [Some("sessions"), Some(id), Some("api-key"), Some("rotate"), None] => Route::SessionApiKeyRotate(id),
        [Some("sessions"), Some(id), Some("messages"), None, _] => Route::SessionMessages(id),
        [Some("sessions"), Some(id), Some("messages"), Some(m), None] => Route::SessionMessage(id, m),
        [Some("admin"), Some("users"), None, ..] => Route::AdminUsers,
        [Some("admin"), Some("users"), Some(id), None, _] => Route::AdminUser(id),
        [Some("admin"), Some("workers"), None, ..] => Route::AdminWorkers,
        [Some("admin"), Some("workers"), Some(id), None, _] => Route::AdminWorker(id),
        [Some("admin"), Some("workers"), Some(id), Some("metrics"), None] => Route::AdminWorkerMetrics(id),
        [Some("admin"), Some("workers"), Some(id), Some("drain"), None] => Route::AdminWorkerDrain(id),
        [Some("admin"), Some("fleet"), None, ..] => Route::AdminFleet,
        [Some("admin"), Some("rebalance"), None, ..] => Route::AdminRebalance,
        [Some("admin"), Some("analytics"), None, ..] => Route::AdminAnalytics,
        [Some("admin"), Some("logs"), None, ..] => Route::AdminLogs,
        _ => return None,
    };
    Some(route)
}

/// A session id that can exist: 1..=64 characters of `[A-Za-z0-9_-]`.
pub(crate) fn valid_session_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn session_id(id: &str) -> Result<&str, ApiError> {
    if valid_session_id(id) { Ok(id) } else { Err(session_not_found()) }
}

/// Any other id in a path (user, worker, message): malformed → 404.
fn path_id(id: &str, what: &str) -> Result<String, ApiError> {
    let decoded = crate::query::decode(id).filter(|d| {
        (1..=64).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    });
    decoded.ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("{what} not found")))
}

async fn dispatch<B: RequestBody>(ctx: &Ctx, method: &Method, path: &str, body: B) -> Reply {
    let Some(route) = resolve(path) else {
        discard(&ctx.headers, body).await;
        return route_not_found().into();
    };
    let get = *method == Method::GET || *method == Method::HEAD;
    let post = *method == Method::POST;
    let patch = *method == Method::PATCH;
    let delete = *method == Method::DELETE;
    let result = match route {
        Route::Docs if get => Ok(routes::docs::page()),
        Route::DocsAsset(name) if get => routes::docs::asset(name),
        Route::OpenApi if get => Ok(routes::docs::openapi_json()),
        Route::Me if get => routes::account::get(ctx).await,
        Route::Me if patch => routes::account::update(ctx, body).await,
        Route::Me if delete => routes::account::delete(ctx).await,
        Route::SessionApiKey(id) if get => match session_id(id) {
            Ok(id) => routes::keys::get(ctx, id).await,
            Err(e) => Err(e),
        },
        Route::SessionApiKey(id) if delete => match session_id(id) {
            Ok(id) => routes::keys::revoke(ctx, id).await,
            Err(e) => Err(e),
        },
        Route::SessionApiKeyRotate(id) if post => match session_id(id) {
            Ok(id) => routes::keys::rotate(ctx, id, body).await,
            Err(e) => {
                discard(&ctx.headers, body).await;
                Err(e)
            }
        },
        Route::SessionMessages(id) if get => match session_id(id) {
            Ok(id) => routes::history::list(ctx, id).await,
            Err(e) => Err(e),
        },
        Route::SessionMessage(id, m) if get => match (session_id(id), path_id(m, "message")) {
            (Ok(id), Ok(m)) => routes::history::get(ctx, id, &m).await,
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        Route::AdminUsers if get => routes::admin::list_users(ctx).await,
        Route::AdminUser(id) if get => match path_id(id, "user") {
            Ok(id) => routes::admin::get_user(ctx, &id).await,
            Err(e) => Err(e),
        },
        Route::AdminUser(id) if patch => match path_id(id, "user") {
            Ok(id) => routes::admin::update_user(ctx, &id, body).await,
            Err(e) => {
                discard(&ctx.headers, body).await;
                Err(e)
            }
        },
        Route::AdminUser(id) if delete => match path_id(id, "user") {
            Ok(id) => routes::admin::delete_user(ctx, &id).await,
            Err(e) => Err(e),
        },
        Route::AdminWorkers if get => routes::admin::list_workers(ctx).await,
        Route::AdminWorkers if post => routes::admin::create_worker(ctx, body).await,
        Route::AdminWorker(id) if get => match path_id(id, "worker") {
            Ok(id) => routes::admin::get_worker(ctx, &id).await,
            Err(e) => Err(e),
        },
        Route::AdminWorker(id) if patch => match path_id(id, "worker") {
            Ok(id) => routes::admin::update_worker(ctx, &id, body).await,
            Err(e) => {
                discard(&ctx.headers, body).await;
                Err(e)
            }
        },
        Route::AdminWorker(id) if delete => match path_id(id, "worker") {
            Ok(id) => routes::admin::delete_worker(ctx, &id).await,
            Err(e) => Err(e),
        },
        Route::AdminWorkerMetrics(id) if get => match path_id(id, "worker") {
            Ok(id) => routes::admin::worker_metrics(ctx, &id).await,
            Err(e) => Err(e),
        },
        Route::AdminAnalytics if get => routes::admin::analytics(ctx).await,
        Route::AdminLogs if get => routes::admin::logs(ctx).await,
        Route::AdminFleet if get => routes::fleet::fleet(ctx).await,
        Route::AdminWorkerDrain(id) if post => {
            discard(&ctx.headers, body).await;
            match path_id(id, "worker") {
                Ok(id) => routes::fleet::drain(ctx, &id).await,
                Err(e) => Err(e),
            }
        }
        Route::AdminRebalance if post => {
            discard(&ctx.headers, body).await;
            routes::fleet::rebalance(ctx).await
        }
        Route::Health if get => Ok(routes::health::live()),
        Route::Ready if get => routes::health::ready(ctx).await,
        Route::Register if post => routes::auth::register(ctx, body).await,
        Route::Login if post => routes::auth::login(ctx, body).await,
        Route::Sessions if post => routes::sessions::create(ctx, body).await,
        Route::Sessions if get => routes::sessions::list(ctx).await,
        Route::Session(id) if get => match session_id(id) {
            Ok(id) => routes::sessions::get(ctx, id).await,
            Err(e) => Err(e),
        },
        Route::Session(id) if delete => match session_id(id) {
            Ok(id) => routes::sessions::delete(ctx, id).await,
            Err(e) => Err(e),
        },
        Route::SessionQr(id) if get => match session_id(id) {
            Ok(id) => routes::sessions::qr(ctx, id).await,
            Err(e) => Err(e),
        },
        Route::SessionSend(id) if post => match session_id(id) {
            Ok(id) => routes::messages::send(ctx, id, body).await,
            Err(e) => {
                discard(&ctx.headers, body).await;
                Err(e)
            }
        },
        Route::SessionWebhook(id, w) => match session_id(id) {
            Ok(id) => routes::webhooks::dispatch(ctx, method, id, w, body).await,
            Err(e) => {
                discard(&ctx.headers, body).await;
                Err(e)
            }
        },
        other => {
            discard(&ctx.headers, body).await;
            return Reply::method_not_allowed(other.allow());
        }
    };
    result.unwrap_or_else(Reply::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_routes_and_aliases() {
        for prefix in ["/api/v1", "/api"] {
            assert_eq!(resolve(&format!("{prefix}/auth/register")), Some(Route::Register));
            assert_eq!(resolve(&format!("{prefix}/auth/login/")), Some(Route::Login));
            assert_eq!(resolve(&format!("{prefix}/sessions")), Some(Route::Sessions));
            assert_eq!(resolve(&format!("{prefix}/sessions/abc")), Some(Route::Session("abc")));
            assert_eq!(resolve(&format!("{prefix}/sessions/abc/qr")), Some(Route::SessionQr("abc")));
            assert_eq!(resolve(&format!("{prefix}/sessions/abc/send")), Some(Route::SessionSend("abc")));
            assert_eq!(resolve(&format!("{prefix}/health")), Some(Route::Health));
            assert_eq!(resolve(&format!("{prefix}/health/ready")), Some(Route::Ready));
            assert_eq!(resolve(&format!("{prefix}/sessions/abc/other")), None);
            assert_eq!(resolve(&format!("{prefix}/nope")), None);
        }
        assert_eq!(resolve("/health"), Some(Route::Health));
        assert_eq!(resolve("/health/ready"), Some(Route::Ready));
        assert_eq!(resolve("/sessions"), None);
        assert_eq!(resolve("/"), None);
        assert_eq!(resolve(""), None);
        assert_eq!(resolve("/api/v2/sessions"), None);
        assert_eq!(resolve("/api/v1"), None);
    }

    #[test]
    fn session_ids() {
        assert!(valid_session_id("user123-personal_1"));
        assert!(valid_session_id(&"a".repeat(64)));
        assert!(!valid_session_id(&"a".repeat(65)));
        assert!(!valid_session_id(""));
        assert!(!valid_session_id("a%20b"));
        assert!(!valid_session_id("a.b"));
    }
}
