//! The per-client-IP limits on the public gRPC services, as a tower layer:
//! every call counts against the general limit (brief: 1,000 per 15 min),
//! session operations also against theirs (60 per minute). The client IP is
//! the socket peer unless the peer is a trusted forwarder (see
//! `auth::client_addr`). Which services are limited is the contract's
//! classification ([`wagate_proto::contract::services`]: the public ones);
//! worker streams, replica-to-replica calls, health and reflection are not.
//!
//! Answers carry `ratelimit-*` metadata (the tighter of the limits that
//! applied, unless the service set its own, e.g. the message quota); a
//! refused call is RESOURCE_EXHAUSTED with `RATE_LIMITED`, `retry-after`
//! and the same details.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use wagate_proto::contract::services::{self, Access};
use wagate_proto::ratelimit::RateLimitInfo;
use wagate_proto::v1::session_service_server::SERVICE_NAME as SESSION_SERVICE;

use super::{Decision, Rate};
use crate::state::SharedState;

pub const RULE_IP: &str = "ip";
pub const RULE_SESSION_OPS: &str = "session_ops";

/// Calls whose client-IP check the service makes itself, together with its
/// own limits (one Redis round trip per send instead of two): the message
/// send, with the owner's quota (`quota::take`).
const DEFERRED: &[&str] = &["/wagate.v1.MessageService/Send"];

/// The client-IP check of a deferred call, as a request extension. The
/// service takes it when it checks its own limits; if the call ends before
/// that, [`check_deferred`] counts it on the way out.
#[derive(Debug, Clone)]
pub struct DeferredIpCheck {
    pub ip: String,
    pub rate: Rate,
}

/// The 429 of a refused client-IP check.
pub fn ip_refusal(d: &Decision, rate: Rate) -> wagate_proto::error::ApiError {
    d.refusal(format!("Too many requests ({}), retry later", rate.describe()))
}

/// Counts a deferred client-IP check on its own (the call ended before its
/// service checked its limits): `Err` is the 429 that replaces the answer.
pub async fn check_deferred(
    state: &SharedState,
    ip: &DeferredIpCheck,
) -> Result<Decision, wagate_proto::error::ApiError> {
    let d = state.limiter.check(RULE_IP, &ip.ip, ip.rate, 1).await;
    if d.allowed { Ok(d) } else { Err(ip_refusal(&d, ip.rate)) }
}

/// A call of a service the public can call (limited).
fn is_limited(path: &str) -> bool {
    services::of_path(path).is_some_and(|s| s.access == Access::Public)
}

/// Session operations: everything on a session but reading it.
fn is_session_op(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.strip_prefix(SESSION_SERVICE))
        .and_then(|p| p.strip_prefix('/'))
        .is_some_and(|m| !matches!(m, "ListSessions" | "GetSession"))
}

#[derive(Clone)]
pub struct ClientLimitLayer {
    state: SharedState,
}

impl ClientLimitLayer {
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }
}

impl<S> tower::Layer<S> for ClientLimitLayer {
    type Service = ClientLimit<S>;

    fn layer(&self, inner: S) -> ClientLimit<S> {
        ClientLimit { inner, state: self.state.clone() }
    }
}

#[derive(Clone)]
pub struct ClientLimit<S> {
    inner: S,
    state: SharedState,
}

impl<S, B, RB> tower::Service<http::Request<B>> for ClientLimit<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        if !is_limited(path) {
            return Box::pin(self.inner.call(req));
        }
        let session_op = is_session_op(path);
        let deferred = DEFERRED.contains(&path);
        // The service that was polled ready runs this call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let (mut req, ip) = client_ip(&state, req);
            let limits = &state.config.limits;
            if deferred {
                if let Some(rate) = limits.ip {
                    req.extensions_mut().insert(DeferredIpCheck { ip, rate });
                }
                return inner.call(req).await;
            }
            let mut applied: Option<Decision> = None;
            let checks = [(RULE_IP, limits.ip, true), (RULE_SESSION_OPS, limits.session_ops, session_op)];
            for (rule, rate, applies) in checks {
                let Some(rate) = rate.filter(|_| applies) else { continue };
                let d = state.limiter.check(rule, &ip, rate, 1).await;
                if !d.allowed {
                    let refusal = if rule == RULE_IP {
                        ip_refusal(&d, rate)
                    } else {
                        d.refusal(format!(
                            "Session operation rate limit exceeded ({}), retry later",
                            rate.describe()
                        ))
                    };
                    return Ok(refusal.to_status().into_http());
                }
                applied = Some(match applied {
                    Some(a) if a.info().tighter(d.info()) == a.info() => a,
                    _ => d,
                });
            }
            let mut response = inner.call(req).await?;
            if let Some(d) = applied {
                let headers = response.headers_mut();
                if !headers.contains_key(wagate_proto::ratelimit::REMAINING) {
                    write_headers(headers, d.info());
                }
            }
            Ok(response)
        })
    }
}

fn write_headers(headers: &mut http::HeaderMap, info: RateLimitInfo) {
    headers.insert(wagate_proto::ratelimit::LIMIT, info.limit.into());
    headers.insert(wagate_proto::ratelimit::REMAINING, info.remaining.into());
    headers.insert(wagate_proto::ratelimit::RESET, info.reset_secs.into());
}

/// The client address by the one rule of `auth::client_addr`, through a
/// tonic request made of the same parts (nothing copied).
fn client_ip<B>(state: &SharedState, req: http::Request<B>) -> (http::Request<B>, String) {
    let (parts, body) = req.into_parts();
    let (method, uri, version) = (parts.method.clone(), parts.uri.clone(), parts.version);
    let grpc = tonic::Request::from_http(http::Request::from_parts(parts, ()));
    let ip = state.auth.client_ip(&grpc);
    let (metadata, extensions, ()) = grpc.into_parts();
    let mut req = http::Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = version;
    *req.headers_mut() = metadata.into_headers();
    *req.extensions_mut() = extensions;
    (req, ip)
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_ops_are_the_calls_that_change_or_pair_a_session() {
        assert!(super::is_session_op("/wagate.v1.SessionService/CreateSession"));
        assert!(super::is_session_op("/wagate.v1.SessionService/GetQr"));
        assert!(super::is_session_op("/wagate.v1.SessionService/DeleteSession"));
        assert!(!super::is_session_op("/wagate.v1.SessionService/GetSession"));
        assert!(!super::is_session_op("/wagate.v1.MessageService/Send"));
        assert!(!super::is_session_op("/wagate.v1.SessionServiceX/CreateSession"));
    }

    /// The public services are limited; workers, replicas, health and
    /// reflection are not (the classification is the contract's).
    #[test]
    fn limited_services() {
        for path in [
            "/wagate.v1.AuthService/Login",
            "/wagate.v1.SessionService/CreateSession",
            "/wagate.v1.MessageService/Send",
            "/wagate.v1.MessageHistoryService/ListMessages",
            "/wagate.v1.ApiKeyService/GetApiKey",
            "/wagate.v1.UserService/GetMe",
            "/wagate.v1.AdminService/ListUsers",
            "/wagate.v1.FleetService/ListWorkers",
            "/wagate.v1.WebhookService/PutWebhook",
            "/wagate.v1.UsageService/GetUsage",
        ] {
            assert!(super::is_limited(path), "{path}");
        }
        for path in [
            "/wagate.v1.WorkerService/Connect",
            "/wagate.v1.InternalService/Dispatch",
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert!(!super::is_limited(path), "{path}");
        }
        // The infrastructure services are named as the libraries name them.
        use tonic::server::NamedService;
        type Health = tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>;
        for name in [
            <Health as NamedService>::NAME,
            tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME,
            tonic_reflection::pb::v1alpha::server_reflection_server::SERVICE_NAME,
        ] {
            assert_eq!(
                wagate_proto::contract::services::by_name(name).map(|s| s.access),
                Some(wagate_proto::contract::services::Access::Infrastructure)
            );
        }
    }
}
