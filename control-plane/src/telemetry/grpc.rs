//! A tower layer on the gRPC server: the latency of every call by method
//! and status code ([`crate::telemetry::metrics::GRPC_SERVER_DURATION`]). For a stream
//! (`WorkerService/Connect`) it measures the time to the response headers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Wraps the server's routes in [`GrpcMetrics`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

/// The standard services served beside ours (health, reflection v1 and v1alpha).
const STANDARD_METHODS: [&str; 4] = [
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// The `method` label: a method this server has (ours come from the
/// descriptor set, so the set is fixed at build time); any other path is
/// `other`, so random paths (`/wagate.x/<random>`) cannot add series.
pub(crate) fn method_label(path: &str) -> &'static str {
    wagate_proto::text::GRPC_METHODS
        .iter()
        .chain(STANDARD_METHODS.iter())
        .find(|m| **m == path)
        .copied()
        .unwrap_or("other")
}

/// The `code` label: a gRPC status code (0-16), else `other`.
fn code_label(raw: &str) -> &'static str {
    const CODES: [&str; 17] =
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16"];
    CODES.into_iter().find(|c| *c == raw).unwrap_or("other")
}

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = method_label(req.uri().path());
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let code = match &result {
                // Errors of unary calls come as trailers-only answers: the status is a header.
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map_or("0", code_label),
                Err(_) => "transport",
            };
            ::metrics::histogram!(crate::telemetry::metrics::GRPC_SERVER_DURATION, "method" => method, "code" => code)
                .record(started.elapsed().as_secs_f64());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_a_fixed_set() {
        assert_eq!(method_label("/wagate.v1.MessageService/Send"), "/wagate.v1.MessageService/Send");
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "/grpc.health.v1.Health/Check");
        for random in ["/wagate.v1.MessageService/Nope", "/wagate.x7/y", "/grpc.zz/q", "/", "/a/b"] {
            assert_eq!(method_label(random), "other", "{random}");
        }
        assert_eq!(code_label("14"), "14");
        assert_eq!(code_label("99"), "other");
    }
}
