//! CORS: any origin (`*`) or a list of exact origins; preflights (any
//! `OPTIONS`) are answered `204` here.
//!
//! tower-http's `CorsLayer` is not used: it answers preflights `200`, joins
//! header lists with bare commas and lower-cases header names, and adds
//! `Vary` for the preflight headers on every answer: all visible to clients
//! and pinned by the REST tests.

use http::HeaderMap;
use http::header::{self, HeaderValue};

const ALLOW_METHODS: HeaderValue = HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS");
const ALLOW_HEADERS: HeaderValue =
    HeaderValue::from_static("Authorization, Content-Type, X-API-Key, Idempotency-Key, X-Request-Id");
const EXPOSE_HEADERS: HeaderValue = HeaderValue::from_static(
    "X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset",
);
const MAX_AGE: HeaderValue = HeaderValue::from_static("600");
const ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");
const VARY_ORIGIN: HeaderValue = HeaderValue::from_static("Origin");

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

impl CorsDecision {
    /// Adds the CORS headers to a response (`preflight`: the `OPTIONS` answer).
    pub fn apply(&self, headers: &mut HeaderMap, preflight: bool) {
        if let Some(origin) = &self.allow_origin {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
        if self.vary_origin {
            headers.insert(header::VARY, VARY_ORIGIN);
        }
        if preflight {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS);
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS);
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE);
        } else {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, value.parse().unwrap());
        h
    }

    #[test]
    fn cors_list_echoes_matching_origin_only() {
        let cors = Cors::new(&["https://app.example/".to_owned(), "https://b.example".to_owned()]);
        let d = cors.decide(&with("https://app.example"));
        assert_eq!(d.allow_origin.as_ref().unwrap(), "https://app.example");
        assert!(d.vary_origin);
        let d = cors.decide(&with("https://evil.example"));
        assert!(d.allow_origin.is_none());
        let d = Cors::new(&["*".to_owned()]).decide(&HeaderMap::new());
        assert_eq!(d.allow_origin.unwrap(), "*");
    }
}
