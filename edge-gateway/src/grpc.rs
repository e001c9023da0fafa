//! The way to the control plane: a small pool of lazily connected HTTP/2
//! channels (round-robin), the metadata forwarded with each call
//! ([`CallContext`], an extractor), per-call deadlines, the one unary helper
//! ([`CallContext::unary`]) and gRPC status → [`ApiError`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use std::future::Future;

use axum::extract::FromRequestParts;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;
use tonic::Code;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use wagate_proto::error::{ApiError, ErrorCode};
use wagate_proto::metadata as md;
use wagate_proto::ratelimit::RateLimitInfo;
use wagate_proto::v1::admin_service_client::AdminServiceClient;
use wagate_proto::v1::api_key_service_client::ApiKeyServiceClient;
use wagate_proto::v1::auth_service_client::AuthServiceClient;
use wagate_proto::v1::fleet_service_client::FleetServiceClient;
use wagate_proto::v1::media_service_client::MediaServiceClient;
use wagate_proto::v1::message_history_service_client::MessageHistoryServiceClient;
use wagate_proto::v1::message_service_client::MessageServiceClient;
use wagate_proto::v1::session_service_client::SessionServiceClient;
use wagate_proto::v1::usage_service_client::UsageServiceClient;
use wagate_proto::v1::user_service_client::UserServiceClient;
use wagate_proto::v1::webhook_service_client::WebhookServiceClient;

/// Round-robin pool of channels to the control plane. Clients made from it
/// are cheap clones of a pooled [`Channel`].
#[derive(Debug)]
pub struct ControlPlane {
    channels: Box<[Channel]>,
    next: AtomicUsize,
}

impl ControlPlane {
    /// Creates `channels` lazily connecting channels (at least one). Must be
    /// called inside a Tokio runtime.
    #[cfg(test)]
    pub fn new(url: &str, channels: usize) -> Result<Self, wagate_proto::ConnectError> {
        Self::with_tls(url, channels, None)
    }

    /// [`ControlPlane::new`] over TLS when `url` is `https://` (`tls`: the CA
    /// to trust and the edge's client certificate; see `wagate_proto::tls`).
    pub fn with_tls(
        url: &str,
        channels: usize,
        tls: Option<&wagate_proto::tls::ClientTls>,
    ) -> Result<Self, wagate_proto::ConnectError> {
        let options = wagate_proto::ConnectOptions::default();
        let channels = (0..channels.max(1))
            .map(|_| wagate_proto::endpoint_with_tls(url.to_owned(), &options, tls).map(|e| e.connect_lazy()))
            .collect::<Result<Vec<_>, _>>()?
            .into_boxed_slice();
        Ok(Self { channels, next: AtomicUsize::new(0) })
    }

    /// The next channel of the pool.
    pub fn channel(&self) -> Channel {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        self.channels[i].clone()
    }

    pub fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel())
    }

    pub fn sessions(&self) -> SessionServiceClient<Channel> {
        SessionServiceClient::new(self.channel())
    }

    pub fn messages(&self) -> MessageServiceClient<Channel> {
        MessageServiceClient::new(self.channel())
    }

    pub fn users(&self) -> UserServiceClient<Channel> {
        UserServiceClient::new(self.channel())
    }

    pub fn fleet(&self) -> FleetServiceClient<Channel> {
        FleetServiceClient::new(self.channel())
    }

    pub fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel())
    }

    pub fn api_keys(&self) -> ApiKeyServiceClient<Channel> {
        ApiKeyServiceClient::new(self.channel())
    }

    pub fn history(&self) -> MessageHistoryServiceClient<Channel> {
        MessageHistoryServiceClient::new(self.channel())
    }

    pub fn webhooks(&self) -> WebhookServiceClient<Channel> {
        WebhookServiceClient::new(self.channel())
    }

    pub fn usage(&self) -> UsageServiceClient<Channel> {
        UsageServiceClient::new(self.channel())
    }

    pub fn media(&self) -> MediaServiceClient<Channel> {
        MediaServiceClient::new(self.channel())
    }

    pub fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel())
    }
}

/// What a call forwards to the control plane, taken from the REST request.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub authorization: Option<HeaderValue>,
    pub api_key: Option<HeaderValue>,
    pub request_id: HeaderValue,
    pub forwarded_for: Option<HeaderValue>,
    /// The edge's shared secret (`x-wagate-edge-token`), when configured.
    pub edge_token: Option<HeaderValue>,
    pub idempotency_key: Option<HeaderValue>,
    /// When the REST request must be answered.
    pub deadline: Instant,
    /// Where the answer's `ratelimit-*` details are left for the response headers.
    pub rate_limit: RateLimitSlot,
}

/// The `ratelimit-*` details of the control plane's answers to one REST
/// request (the tightest, if several calls were made), written as
/// `RateLimit-*` headers by [`crate::middleware::context`].
#[derive(Debug, Clone, Default)]
pub struct RateLimitSlot(std::sync::Arc<std::sync::Mutex<Option<RateLimitInfo>>>);

impl RateLimitSlot {
    pub fn put(&self, info: RateLimitInfo) {
        let mut slot = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Some(match *slot {
            Some(prev) => prev.tighter(info),
            None => info,
        });
    }

    pub fn take(&self) -> Option<RateLimitInfo> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

const AUTHORIZATION: HeaderName = HeaderName::from_static(md::AUTHORIZATION);
const API_KEY: HeaderName = HeaderName::from_static(md::API_KEY);
const REQUEST_ID: HeaderName = HeaderName::from_static(md::REQUEST_ID);
const FORWARDED_FOR: HeaderName = HeaderName::from_static(md::FORWARDED_FOR);
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static(md::IDEMPOTENCY_KEY);
const EDGE_TOKEN: HeaderName = HeaderName::from_static("x-wagate-edge-token");

/// Set on each request by [`crate::middleware::context`]: its id and deadline.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: HeaderValue,
    pub deadline: Instant,
    pub forwarded_for: Option<HeaderValue>,
    pub edge_token: Option<HeaderValue>,
    pub rate_limit: RateLimitSlot,
}

/// Non-empty header value, if any.
fn header(headers: &HeaderMap, name: &http::HeaderName) -> Option<HeaderValue> {
    headers.get(name).filter(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace)).cloned()
}

impl<S: Send + Sync> FromRequestParts<S> for CallContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let meta = parts.extensions.get::<RequestMeta>().cloned().unwrap_or_else(|| RequestMeta {
            request_id: HeaderValue::from_static("unknown"),
            deadline: Instant::now() + Duration::from_secs(30),
            forwarded_for: None,
            edge_token: None,
            rate_limit: RateLimitSlot::default(),
        });
        Ok(CallContext {
            authorization: header(&parts.headers, &http::header::AUTHORIZATION),
            api_key: header(&parts.headers, &API_KEY),
            request_id: meta.request_id,
            forwarded_for: meta.forwarded_for,
            edge_token: meta.edge_token,
            idempotency_key: header(&parts.headers, &IDEMPOTENCY_KEY),
            deadline: meta.deadline,
            rate_limit: meta.rate_limit,
        })
    }
}

impl CallContext {
    /// Runs one unary call (`call` is the client's future, built with
    /// [`CallContext::request`]) and maps a failure to the REST error.
    /// `method` names the call in logs and metrics (`"SessionService.GetSession"`).
    pub async fn unary<T>(
        &self,
        method: &'static str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, ApiError> {
        match call.await {
            Ok(reply) => {
                if let Some(info) = RateLimitInfo::read(reply.metadata()) {
                    self.rate_limit.put(info);
                }
                Ok(reply.into_inner())
            }
            Err(status) => {
                if let Some(info) = RateLimitInfo::read(status.metadata()) {
                    self.rate_limit.put(info);
                }
                Err(call_failed(method, &status))
            }
        }
    }

    /// 401 unless an `Authorization` header is present (user routes: JWT).
    pub fn require_authorization(&self) -> Result<(), ApiError> {
        if self.authorization.is_some() {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::Unauthenticated, "missing Authorization: Bearer <token> header"))
        }
    }

    /// 401 unless `Authorization` or `X-API-Key` is present (send: API key).
    pub fn require_api_key(&self) -> Result<(), ApiError> {
        if self.authorization.is_some() || self.api_key.is_some() {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "missing API key: send Authorization: Bearer <key> or X-API-Key: <key>",
            ))
        }
    }

    /// A gRPC request carrying `message`, the forwarded metadata and a
    /// deadline of the time left for this REST request.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut headers = HeaderMap::with_capacity(8);
        if let Some(v) = &self.authorization {
            headers.insert(AUTHORIZATION, v.clone());
        }
        if let Some(v) = &self.api_key {
            headers.insert(API_KEY, v.clone());
        }
        headers.insert(REQUEST_ID, self.request_id.clone());
        if let Some(v) = &self.forwarded_for {
            headers.insert(FORWARDED_FOR, v.clone());
        }
        if let Some(v) = &self.edge_token {
            headers.insert(EDGE_TOKEN, v.clone());
        }
        if let Some(v) = &self.idempotency_key {
            headers.insert(IDEMPOTENCY_KEY, v.clone());
        }
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = MetadataMap::from_headers(headers);
        request.set_timeout(self.remaining());
        request
    }

    /// Like [`CallContext::request`] for a call whose answer streams for as
    /// long as the client listens: no deadline.
    pub fn streaming_request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = self.request(message);
        request.metadata_mut().remove("grpc-timeout");
        request
    }

    /// Time left before the deadline (at least 1 ms, so that a call made at
    /// the very end still carries a valid `grpc-timeout`).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))
    }
}

/// Maps a gRPC status to the error the REST caller sees. Errors tagged by the
/// control plane (`x-wagate-code`) pass through; untagged ones (transport
/// failures, tonic's own) are only ever 500, 503 or 504 with a generic
/// message, so no internals leak (see [`ErrorCode::from_grpc_code`]).
pub fn status_to_error(status: &tonic::Status) -> ApiError {
    if status.metadata().contains_key(md::ERROR_CODE) {
        return ApiError::from_status(status);
    }
    let transport_failure = std::error::Error::source(status).is_some();
    match status.code() {
        // tonic reports its own client-side deadline as CANCELLED.
        Code::Cancelled | Code::DeadlineExceeded => {
            ApiError::new(ErrorCode::DeadlineExceeded, "the control plane did not answer in time")
        }
        Code::Unavailable => control_plane_unavailable(),
        _ if transport_failure => control_plane_unavailable(),
        Code::Unknown | Code::Internal | Code::DataLoss => {
            ApiError::new(ErrorCode::Internal, "internal server error")
        }
        _ => ApiError::from_status(status),
    }
}

fn control_plane_unavailable() -> ApiError {
    ApiError::new(ErrorCode::Unavailable, "control plane unavailable").with_retry_after(1)
}

/// Logs a failed call at a level fitting its cause and returns the REST error.
pub fn call_failed(method: &'static str, status: &tonic::Status) -> ApiError {
    let err = status_to_error(status);
    if err.code.http_status() >= 500 {
        tracing::warn!(method, code = ?status.code(), status = %status.message(), source = ?std::error::Error::source(status), "control plane call failed");
    } else {
        tracing::debug!(method, code = err.code.as_str(), "control plane refused call");
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_statuses_pass_through() {
        let e = ApiError::invalid("to", "bad number").to_status();
        let back = status_to_error(&e);
        assert_eq!(back.code, ErrorCode::ValidationError);
        assert_eq!(back.field.as_deref(), Some("to"));
    }

    #[test]
    fn untagged_statuses_are_mapped_without_leaking() {
        let e = status_to_error(&tonic::Status::unavailable("tcp connect error: 10.0.0.3:50051"));
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert_eq!(e.message, "control plane unavailable");
        assert_eq!(e.retry_after_secs, Some(1));
        assert_eq!(status_to_error(&tonic::Status::cancelled("Timeout expired")).code.http_status(), 504);
        assert_eq!(
            status_to_error(&tonic::Status::internal("panic at foo.rs")).message,
            "internal server error"
        );
        // Untagged domain codes are the server's problem, not the caller's.
        for s in [
            tonic::Status::not_found("no such session"),
            tonic::Status::unauthenticated("missing key"),
            tonic::Status::failed_precondition("not connected"),
            tonic::Status::unimplemented(""),
            tonic::Status::invalid_argument("bad grpc-timeout"),
        ] {
            let e = status_to_error(&s);
            assert_eq!(e.code.http_status(), 500, "{s:?}");
            assert!(!e.message.contains(s.message()) || s.message().is_empty(), "{}", e.message);
        }
        let e = status_to_error(&tonic::Status::resource_exhausted(
            "Too many active requests for the connection",
        ));
        assert_eq!((e.code.http_status(), e.retry_after_secs), (503, Some(1)));
    }

    #[tokio::test]
    async fn request_carries_metadata_and_deadline() {
        let ctx = CallContext {
            authorization: Some(HeaderValue::from_static("Bearer abc")),
            api_key: None,
            request_id: HeaderValue::from_static("rid-1"),
            forwarded_for: Some(HeaderValue::from_static("10.1.2.3")),
            edge_token: Some(HeaderValue::from_static("edge-secret")),
            idempotency_key: Some(HeaderValue::from_static("idem-1")),
            deadline: Instant::now() + Duration::from_secs(5),
            rate_limit: RateLimitSlot::default(),
        };
        let r = ctx.request(());
        let m = r.metadata();
        assert_eq!(m.get("authorization").unwrap(), "Bearer abc");
        assert_eq!(m.get("x-request-id").unwrap(), "rid-1");
        assert_eq!(m.get("x-wagate-edge-token").unwrap(), "edge-secret");
        assert_eq!(m.get("x-forwarded-for").unwrap(), "10.1.2.3");
        assert_eq!(m.get("idempotency-key").unwrap(), "idem-1");
        assert!(m.get("x-api-key").is_none());
        assert!(m.get("grpc-timeout").is_some());
    }

    #[tokio::test]
    async fn pool_round_robins() {
        let cp = ControlPlane::new("http://127.0.0.1:1", 3).unwrap();
        assert_eq!(cp.channels.len(), 3);
        for _ in 0..4 {
            let _ = cp.channel();
        }
        assert_eq!(cp.next.load(Ordering::Relaxed), 4);
    }
}
