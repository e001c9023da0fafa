//! The gateway's own middleware (the rest is tower-http, see [`crate::app`]):
//!
//! - [`finish`]: CORS and preflights, the envelope on axum's bare `405`
//!   (keeping `Allow`), `WWW-Authenticate` on `401`;
//! - [`context`]: the request's deadline (`504` envelope when it passes),
//!   its id and client address for the gRPC hop, and [`read_body`];
//! - [`track`]: the latency histogram by route template, method and status;
//! - [`sanitize_request_id`]: a caller's `X-Request-Id` is kept only when sane.

use std::sync::Arc;
use std::time::Duration;
use wagate_proto::forwarded;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::time::Instant;
use wagate_proto::error::{ApiError, ErrorCode};

use crate::envelope::Reply;
use crate::grpc::{RateLimitSlot, RequestMeta};
use crate::state::AppState;

/// The `X-Request-Id` header (request and response).
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const BEARER: HeaderValue = HeaderValue::from_static("Bearer");

/// The client address of a connection (set by [`crate::server`]).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// CORS, preflight, and the envelope on answers produced by the router itself.
pub async fn finish(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let cors = state.cors.decide(req.headers());
    if req.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        cors.apply(response.headers_mut(), true);
        return response;
    }
    let mut response = next.run(req).await;
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        response = method_not_allowed(response.headers().get(header::ALLOW));
    }
    if response.status() == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, BEARER);
    }
    cors.apply(response.headers_mut(), false);
    response
}

/// axum's `405` carries `Allow: GET,HEAD`: answer the envelope with
/// `Allow: GET, HEAD, OPTIONS`.
fn method_not_allowed(allow: Option<&HeaderValue>) -> Response {
    let mut methods: Vec<&str> = allow
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').map(str::trim).filter(|m| !m.is_empty()).collect())
        .unwrap_or_default();
    methods.push("OPTIONS");
    let allow = methods.join(", ");
    let err = ApiError::new(ErrorCode::MethodNotAllowed, format!("method not allowed; allowed: {allow}"));
    let mut response = Reply::error(&err).into_response();
    if let Ok(v) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, v);
    }
    response
}

/// A caller's `X-Request-Id` is kept when it looks sane (1..=128 characters
/// of `[A-Za-z0-9._:/+=-]`); otherwise it is dropped and a fresh one made.
pub fn sanitize_request_id(mut req: Request) -> Request {
    let sane = req.headers().get(&X_REQUEST_ID).is_none_or(|v| {
        let b = v.as_bytes();
        (1..=128).contains(&b.len()) && b.iter().all(|c| c.is_ascii_alphanumeric() || b"._:/+=-".contains(c))
    });
    if !sane {
        req.headers_mut().remove(&X_REQUEST_ID);
    }
    req
}

/// Makes request ids: a v4 UUID.
#[derive(Debug, Clone, Copy, Default)]
pub struct MakeUuid;

impl tower_http::request_id::MakeRequestId for MakeUuid {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<tower_http::request_id::RequestId> {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let id = uuid::Uuid::new_v4();
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf)).ok().map(Into::into)
    }
}

/// Deadline, request id and client address; the body read within the limit.
pub async fn context(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let media = media_route(&req);
    let timeout =
        if media.is_some() { state.config.media_request_timeout } else { state.config.request_timeout };
    let deadline = started + timeout;
    let request_id = req.headers().get(&X_REQUEST_ID).cloned().unwrap_or(HeaderValue::from_static("unknown"));
    let forwarded_for = req
        .extensions()
        .get::<Peer>()
        .map(|p| {
            let peer = p.0.ip().to_canonical();
            let xff = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
            forwarded::client_ip(peer, xff, forwarded::is_trusted(peer, &state.config.trusted_proxies))
        })
        .and_then(|ip| HeaderValue::from_str(&ip.to_string()).ok());
    let edge_token = state.config.edge_token.as_deref().and_then(|t| HeaderValue::from_str(t).ok());
    let rate_limit = RateLimitSlot::default();
    req.extensions_mut().insert(RequestMeta {
        request_id,
        deadline,
        forwarded_for,
        edge_token,
        rate_limit: rate_limit.clone(),
    });
    let limit = match media {
        Some(MediaRoute::JsonSend) => state.config.base64_body_limit_bytes,
        _ => state.config.body_limit_bytes,
    };
    let media_limit = state.config.media_body_limit_bytes;
    let work = async move {
        if media == Some(MediaRoute::MultipartSend) {
            // Streamed to the control plane by the handler (within `media_limit`).
            return match declared_length(&req) {
                Some(n) if n > media_limit => {
                    too_large(usize::try_from(media_limit).unwrap_or(usize::MAX), req.version(), false)
                }
                _ => next.run(req).await,
            };
        }
        match read_body(req, limit).await {
            Ok(req) => next.run(req).await,
            Err(response) => response,
        }
    };
    match tokio::time::timeout_at(deadline, work).await {
        Ok(mut response) => {
            if let Some(info) = rate_limit.take() {
                rate_limit_headers(response.headers_mut(), info);
            }
            response
        }
        Err(_elapsed) => {
            Reply::error(&ApiError::new(ErrorCode::DeadlineExceeded, "request timed out")).into_response()
        }
    }
}

/// The media routes, whose body limit and deadline differ from the others'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaRoute {
    /// `POST …/sessions/{id}/send` as `multipart/form-data`: streamed, up to
    /// `WAGATE_EDGE_MEDIA_BODY_LIMIT_BYTES`.
    MultipartSend,
    /// `POST …/sessions/{id}/send` as JSON (maybe with `mediaBase64`): read
    /// whole, up to `WAGATE_EDGE_BASE64_BODY_LIMIT_BYTES`.
    JsonSend,
    /// `GET …/media/{id}`: the usual (empty) body, the media deadline.
    Download,
}

/// Which media route `req` is for, if any (`/api/v1/…` or the `/api/…` alias).
pub fn media_route(req: &Request) -> Option<MediaRoute> {
    let mut parts = req.uri().path().split('/').filter(|p| !p.is_empty());
    if parts.next() != Some("api") {
        return None;
    }
    let rest: Vec<&str> = parts.collect();
    let rest = match rest.split_first() {
        Some((&"v1", tail)) => tail,
        _ => &rest[..],
    };
    match (req.method(), rest) {
        (&Method::POST, ["sessions", _, "send"]) => {
            let multipart = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
            Some(if multipart { MediaRoute::MultipartSend } else { MediaRoute::JsonSend })
        }
        (&Method::GET | &Method::HEAD, ["media", _]) => Some(MediaRoute::Download),
        _ => None,
    }
}

fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (IETF
/// draft names) of the limit that applied to the request.
pub fn rate_limit_headers(headers: &mut http::HeaderMap, info: wagate_proto::ratelimit::RateLimitInfo) {
    headers.insert(RATELIMIT_LIMIT, info.limit.into());
    headers.insert(RATELIMIT_REMAINING, info.remaining.into());
    headers.insert(RATELIMIT_RESET, info.reset_secs.into());
}

pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Oversize bodies up to this size are read and thrown away before the 413
/// is sent, so that a client that writes its whole body before reading the
/// answer (Python's urllib and requests, many others) gets the answer
/// instead of a reset. Above it the connection is closed after the answer.
pub const DRAIN_MAX_BYTES: u64 = 32 * 1024 * 1024;
const DRAIN_MAX_TIME: Duration = Duration::from_secs(10);

fn too_large(limit: usize, version: Version, drained: bool) -> Response {
    let err = ApiError::new(ErrorCode::PayloadTooLarge, format!("request body is larger than {limit} bytes"));
    let mut response = Reply::error(&err).into_response();
    if !drained && version <= Version::HTTP_11 {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads and drops up to `max` more bytes of a body (within [`DRAIN_MAX_TIME`]);
/// true when the body ended.
async fn drain(mut body: Body, max: u64) -> bool {
    let read = async {
        let mut seen = 0u64;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            if let Some(data) = frame.data_ref() {
                seen += data.remaining() as u64;
                if seen > max {
                    return false;
                }
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_MAX_TIME, read).await.unwrap_or(false)
}

/// Reads the whole body into memory, refusing (413) a declared or actual
/// size above `limit`. A client waiting for `100 Continue` with a declared
/// size above the limit is answered without being asked for its body.
pub async fn read_body(req: Request, limit: usize) -> Result<Request, Response> {
    let (parts, mut body) = req.into_parts();
    if body.is_end_stream() {
        return Ok(Request::from_parts(parts, Body::empty()));
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared
        && n > limit as u64
    {
        let drained =
            !parts.headers.contains_key(header::EXPECT) && n <= DRAIN_MAX_BYTES && drain(body, n).await;
        return Err(too_large(limit, parts.version, drained));
    }
    // The usual body is one frame: keep it without copying.
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            tracing::debug!(error = %e, "reading request body failed");
            Reply::error(&ApiError::new(ErrorCode::ValidationError, "could not read the request body"))
                .into_response()
        })?;
        let Ok(mut data) = frame.into_data() else { continue };
        let len = data.remaining();
        if len == 0 {
            continue;
        }
        total += len;
        if total > limit {
            let drained = drain(body, DRAIN_MAX_BYTES).await;
            return Err(too_large(limit, parts.version, drained));
        }
        match (&mut first, &mut rest) {
            (None, _) => first = Some(data.copy_to_bytes(len)),
            (Some(head), None) => {
                let mut buf = BytesMut::with_capacity(declared.map_or(2 * total, |n| n as usize).max(total));
                buf.extend_from_slice(head);
                buf.put(data);
                rest = Some(buf);
            }
            (Some(_), Some(buf)) => buf.put(data),
        }
    }
    let bytes = match (first, rest) {
        (_, Some(buf)) => buf.freeze(),
        (Some(head), None) => head,
        (None, None) => Bytes::new(),
    };
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Latency of REST requests, labelled `route` (template), `method`, `status`.
pub const HTTP_REQUEST_DURATION: &str = "wagate_edge_http_request_duration_seconds";

/// The `method` label: one of the standard methods, anything else (hyper
/// accepts any token as a method) is `other`, so a client cannot add series.
pub fn method_label(method: &Method) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE"];
    KNOWN.into_iter().find(|name| *name == method.as_str()).unwrap_or("other")
}

/// Records [`HTTP_REQUEST_DURATION`].
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = method_label(req.method());
    let response = next.run(req).await;
    // `/api/...` is an alias of `/api/v1/...`: one series per route.
    let route = match route.strip_prefix("/api/") {
        Some(rest) if !rest.starts_with("v1/") => format!("/api/v1/{rest}"),
        _ => route,
    };
    metrics::histogram!(
        HTTP_REQUEST_DURATION,
        "route" => route,
        "method" => method,
        "status" => response.status().as_str().to_owned(),
    )
    .record(started.elapsed().as_secs_f64());
    response
}
