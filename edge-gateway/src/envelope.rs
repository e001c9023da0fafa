//! The JSON envelope of every answer:
//! `{"success":true,"data":…}` or
//! `{"success":false,"error":"…","code":"…","field":"…"}`,
//! and the mapping of [`ApiError`] to an HTTP status.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http::header::{self, HeaderValue};
use serde::Serialize;
use wagate_proto::error::{ApiError, ErrorCode};

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A finished answer body with its status, before the common headers are added.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
    /// `Retry-After` seconds (errors only).
    pub retry_after_secs: Option<u64>,
    /// Content-Type and Content-Security-Policy of a non-JSON answer (the docs page).
    pub content: Option<(&'static str, &'static str)>,
    /// Never cached (a rendered answer that changes, e.g. a QR code).
    pub no_store: bool,
}

impl Reply {
    /// `{"success":true,"data":<data>}` with the given status.
    pub fn success<T: Serialize + ?Sized>(status: StatusCode, data: &T) -> Reply {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(br#"{"success":true,"data":"#);
        if let Err(e) = serde_json::to_writer(&mut buf, data) {
            // Only reachable with a non-string map key or a failing Serialize impl.
            tracing::error!(error = %e, "response serialization failed");
            return Reply::error(&ApiError::new(ErrorCode::Internal, "internal server error"));
        }
        buf.push(b'}');
        Reply { status, body: Bytes::from(buf), retry_after_secs: None, content: None, no_store: false }
    }

    /// `200 OK` success envelope.
    pub fn ok<T: Serialize + ?Sized>(data: &T) -> Reply {
        Reply::success(StatusCode::OK, data)
    }

    /// `201 Created` success envelope.
    pub fn created<T: Serialize + ?Sized>(data: &T) -> Reply {
        Reply::success(StatusCode::CREATED, data)
    }

    /// The error envelope; its status is `code.http_status()`. Messages of
    /// 500s are never shown to the caller.
    pub fn error(err: &ApiError) -> Reply {
        #[derive(Serialize)]
        struct ErrorBody<'a> {
            success: bool,
            error: &'a str,
            code: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            field: Option<&'a str>,
        }
        let status =
            StatusCode::from_u16(err.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message =
            if status == StatusCode::INTERNAL_SERVER_ERROR { "internal server error" } else { &err.message };
        let body = ErrorBody {
            success: false,
            error: message,
            code: err.code.as_str(),
            field: err.field.as_deref(),
        };
        let body = serde_json::to_vec(&body).map(Bytes::from).unwrap_or_else(|_| {
            Bytes::from_static(
                br#"{"success":false,"error":"internal server error","code":"INTERNAL_ERROR"}"#,
            )
        });
        Reply { status, body, retry_after_secs: err.retry_after_secs, content: None, no_store: false }
    }

    /// A static non-JSON answer (`200`), e.g. the docs page and its assets.
    pub fn asset(content_type: &'static str, csp: &'static str, body: &'static [u8]) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: Bytes::from_static(body),
            retry_after_secs: None,
            content: Some((content_type, csp)),
            no_store: false,
        }
    }

    /// A rendered non-JSON answer (`200`) that must not be cached, e.g. a QR
    /// code as an image.
    pub fn rendered(content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: Bytes::from(body),
            retry_after_secs: None,
            content: Some((content_type, "default-src 'none'; style-src 'unsafe-inline'")),
            no_store: true,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let has_body = !self.body.is_empty();
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        match self.content {
            Some((content_type, csp)) => {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
                let cache = if self.no_store { "no-store" } else { "public, max-age=300" };
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            }
            None if has_body => {
                headers.insert(header::CONTENT_TYPE, JSON);
            }
            None => {}
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A handler's error: answered as the error envelope.
#[derive(Debug)]
pub struct Error(pub ApiError);

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error(e)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        Reply::error(&self.0).into_response()
    }
}

/// What every handler returns.
pub type Answer = Result<Reply, Error>;

/// `404 NOT_FOUND` for a path the API does not have.
pub fn route_not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "route not found")
}

/// `404 SESSION_NOT_FOUND` for a session id that cannot exist.
pub fn session_not_found() -> ApiError {
    ApiError::new(ErrorCode::SessionNotFound, "session not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(r: &Reply) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn success_shape() {
        let r = Reply::created(&serde_json::json!({"a": 1}));
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(json(&r), serde_json::json!({"success": true, "data": {"a": 1}}));
    }

    #[test]
    fn error_shape_with_field_and_retry() {
        let e = ApiError::invalid("email", "email is required");
        let r = Reply::error(&e);
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            json(&r),
            serde_json::json!({"success": false, "error": "email is required", "code": "VALIDATION_ERROR", "field": "email"})
        );
        let r = Reply::error(&ApiError::new(ErrorCode::RateLimited, "slow down").with_retry_after(7));
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.retry_after_secs, Some(7));
        assert!(json(&r).get("field").is_none());
        let resp = r.into_response();
        assert_eq!(resp.headers()["retry-after"], "7");
        assert_eq!(resp.headers()["content-type"], "application/json");
    }

    #[test]
    fn internal_errors_hide_their_message() {
        let r = Reply::error(&ApiError::new(ErrorCode::Internal, "db password is hunter2"));
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(json(&r)["error"], "internal server error");
        assert_eq!(json(&r)["code"], "INTERNAL_ERROR");
    }

    #[test]
    fn every_code_has_a_valid_status() {
        for &code in ErrorCode::ALL {
            let r = Reply::error(&ApiError::new(code, "x"));
            assert_eq!(r.status.as_u16(), code.http_status());
        }
    }
}
