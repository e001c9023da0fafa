//! The gateway as one tower service: the routes of [`crate::routes`]
//! (`/api/v1/...`, the `/api/...` alias, `/health` at the root, the docs)
//! wrapped in the middleware every answer goes through.
//!
//! Outermost first: request id (a caller's sane `X-Request-Id`, else a
//! UUID; echoed on the answer) → security headers → compression (bodies
//! over 1 KiB, when asked for) → [`middleware::finish`] (CORS, 405/401
//! fix-ups) → [`middleware::context`] (deadline, body limit) → trailing
//! slash trimmed → router (per route: latency histogram, panic → 500 envelope).

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderName, HeaderValue};
use tower::{Layer, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::normalize_path::NormalizePathLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa_axum::router::OpenApiRouter;
use wagate_proto::error::{ApiError, ErrorCode};

use crate::envelope::{Error, Reply, route_not_found};
use crate::middleware::{self, MakeUuid, X_REQUEST_ID};
use crate::routes;
use crate::state::AppState;

/// Headers on every response (what helmet would set); a handler's own
/// Content-Security-Policy and Cache-Control win (the docs page).
const SECURITY_HEADERS: [(HeaderName, HeaderValue); 13] = [
    (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    (header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=15552000; includeSubDomains")),
    (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'")),
    (HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin")),
    (HeaderName::from_static("cross-origin-resource-policy"), HeaderValue::from_static("same-origin")),
    (header::X_DNS_PREFETCH_CONTROL, HeaderValue::from_static("off")),
    (HeaderName::from_static("x-download-options"), HeaderValue::from_static("noopen")),
    (HeaderName::from_static("x-permitted-cross-domain-policies"), HeaderValue::from_static("none")),
    (HeaderName::from_static("origin-agent-cluster"), HeaderValue::from_static("?1")),
    (header::X_XSS_PROTECTION, HeaderValue::from_static("0")),
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
];

/// Every documented route: the source of both the router and the OpenAPI document.
pub(crate) fn documented() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .merge(routes::health::router())
        .merge(routes::docs::router())
        .nest("/api/v1", routes::api())
}

async fn not_found() -> Error {
    route_not_found().into()
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    Reply::error(&ApiError::new(ErrorCode::Internal, "internal server error")).into_response()
}

/// The routes with their per-route layers.
fn router(state: Arc<AppState>) -> Router {
    use axum::routing::get;
    let (documented, _) = documented().split_for_parts();
    let (api, _) = routes::api().split_for_parts();
    let (health, _) = routes::health::router().split_for_parts();
    documented
        .nest("/api", api.merge(health))
        // The root health routes, also under the prefix (undocumented aliases).
        .route("/api/v1/health", get(routes::health::live))
        .route("/api/v1/health/ready", get(routes::health::ready))
        .fallback(not_found)
        // Body limits are `middleware::context`'s, per route (axum's own 2 MB
        // default would refuse a base64 send the context admitted).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(CatchPanicLayer::custom(panicked))
        .layer(axum::middleware::from_fn(middleware::track))
        .with_state(state)
}

/// Adds every [`SECURITY_HEADERS`] entry a handler did not set itself.
fn security_headers<B>(mut res: http::Response<B>) -> http::Response<B> {
    let headers = res.headers_mut();
    headers.reserve(SECURITY_HEADERS.len());
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, value);
        }
    }
    res
}

/// The whole gateway as a service taking any request (hyper's `Incoming` body or others).
pub(crate) fn service(
    state: Arc<AppState>,
) -> impl tower::Service<Request, Response = Response, Error = std::convert::Infallible, Future: Send> + Clone + Send
{
    let inner = NormalizePathLayer::trim_trailing_slash().layer(router(state.clone()));
    // Never a media download (its Content-Length and ranges are of the file's bytes).
    let not_media = |_: http::StatusCode, _: http::Version, h: &http::HeaderMap, _: &http::Extensions| {
        !h.contains_key(header::ACCEPT_RANGES)
    };
    let compression = CompressionLayer::new()
        .compress_when(SizeAbove::new(1024).and(NotForContentType::IMAGES).and(not_media));
    ServiceBuilder::new()
        .map_response(IntoResponse::into_response)
        .map_request(middleware::sanitize_request_id)
        .layer(SetRequestIdLayer::new(X_REQUEST_ID, MakeUuid))
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID))
        // the security headers in one pass (one map reserve, no per-header layer)
        .map_response(security_headers)
        .layer(compression)
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::finish))
        .layer(axum::middleware::from_fn_with_state(state, middleware::context))
        .service(inner)
}
