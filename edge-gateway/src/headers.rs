//! Response headers: the security headers helmet would set, CORS, and the
//! request id; and the final assembly of a [`Reply`] into a response.

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

use crate::envelope::Reply;

/// The `X-Request-Id` header (request and response).
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The `X-API-Key` request header.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
/// The `Idempotency-Key` request header.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Headers on every response.
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

const ALLOW_METHODS: HeaderValue = HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS");
const ALLOW_HEADERS: HeaderValue =
    HeaderValue::from_static("Authorization, Content-Type, X-API-Key, Idempotency-Key, X-Request-Id");
const EXPOSE_HEADERS: HeaderValue = HeaderValue::from_static("X-Request-Id, Retry-After");
const MAX_AGE: HeaderValue = HeaderValue::from_static("600");
const ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");
const VARY_ORIGIN: HeaderValue = HeaderValue::from_static("Origin");
const BEARER: HeaderValue = HeaderValue::from_static("Bearer");

/// The CORS policy: any origin, or a list of exact origins.
#[derive(Debug, Clone)]
pub struct Cors {
    any: bool,
    origins: Vec<HeaderValue>,
}

/// What CORS says about one request.
#[derive(Debug, Clone, Default)]
pub struct CorsDecision {
    allow_origin: Option<HeaderValue>,
    vary_origin: bool,
}

impl Cors {
    pub fn new(origins: &[String]) -> Cors {
        let any = origins.iter().any(|o| o.trim() == "*");
        let origins = origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/'))
            .filter(|o| !o.is_empty() && *o != "*")
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        Cors { any, origins }
    }

    /// `*` when any origin is allowed; otherwise the request's Origin echoed
    /// when it is in the list (with `Vary: Origin` either way).
    pub fn decide(&self, request_headers: &HeaderMap) -> CorsDecision {
        if self.any {
            return CorsDecision { allow_origin: Some(ANY_ORIGIN), vary_origin: false };
        }
        let allow_origin = request_headers
            .get(header::ORIGIN)
            .filter(|o| {
                self.origins.iter().any(|allowed| allowed.as_bytes().eq_ignore_ascii_case(o.as_bytes()))
            })
            .cloned();
        CorsDecision { allow_origin, vary_origin: true }
    }
}

/// The caller's `X-Request-Id` when it looks sane (1..=128 characters of
/// `[A-Za-z0-9._:/+=-]`), else a fresh UUID.
pub fn request_id(request_headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = request_headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if (1..=128).contains(&b.len())
            && b.iter().all(|c| c.is_ascii_alphanumeric() || b"._:/+=-".contains(c))
        {
            return v.clone();
        }
    }
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = uuid::Uuid::new_v4();
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf))
        .unwrap_or(HeaderValue::from_static("unknown"))
}

/// Turns a reply into the response, with every header it needs.
pub fn respond(
    reply: Reply,
    request_id: HeaderValue,
    cors: &CorsDecision,
    preflight: bool,
) -> Response<Full<Bytes>> {
    let has_body = !reply.body.is_empty();
    let mut headers = HeaderMap::with_capacity(32);
    for (name, value) in &SECURITY_HEADERS {
        headers.insert(name.clone(), value.clone());
    }
    match reply.content {
        Some((content_type, csp)) => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
        }
        None if has_body => {
            headers.insert(header::CONTENT_TYPE, JSON);
        }
        None => {}
    }
    headers.insert(X_REQUEST_ID, request_id);
    if let Some(origin) = &cors.allow_origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
    if cors.vary_origin {
        headers.insert(header::VARY, VARY_ORIGIN);
    }
    if preflight {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS);
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS);
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE);
    } else {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
    }
    if let Some(secs) = reply.retry_after_secs {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(allow) = reply.allow {
        headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    if reply.status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, BEARER);
    }
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() = reply.status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn request_id_keeps_sane_values_only() {
        assert_eq!(request_id(&with(X_REQUEST_ID, "abc-123")), "abc-123");
        let generated = request_id(&with(X_REQUEST_ID, "has space"));
        assert_eq!(generated.len(), 36);
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
        assert_eq!(request_id(&with(X_REQUEST_ID, &"a".repeat(129))).len(), 36);
    }

    #[test]
    fn cors_list_echoes_matching_origin_only() {
        let cors = Cors::new(&["https://app.example/".to_owned(), "https://b.example".to_owned()]);
        let d = cors.decide(&with(header::ORIGIN, "https://app.example"));
        assert_eq!(d.allow_origin.as_ref().unwrap(), "https://app.example");
        assert!(d.vary_origin);
        let d = cors.decide(&with(header::ORIGIN, "https://evil.example"));
        assert!(d.allow_origin.is_none());
        let d = Cors::new(&["*".to_owned()]).decide(&HeaderMap::new());
        assert_eq!(d.allow_origin.unwrap(), "*");
    }

    #[test]
    fn respond_sets_headers() {
        let err = wagate_proto::error::ApiError::new(wagate_proto::error::ErrorCode::RateLimited, "slow");
        let reply = Reply::error(&err.with_retry_after(3));
        let r = respond(reply, HeaderValue::from_static("rid"), &CorsDecision::default(), false);
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let h = r.headers();
        assert_eq!(h["retry-after"], "3");
        assert_eq!(h["x-request-id"], "rid");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["cache-control"], "no-store");
    }
}
