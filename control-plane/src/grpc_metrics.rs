//! A tower layer on the gRPC server: the latency of every call by method
//! and status code ([`crate::metrics::GRPC_SERVER_DURATION`]). For a stream
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

/// Our services and the standard ones keep their path; anything else is one
/// series, so random paths cannot blow up the label set.
fn method_label(path: &str) -> String {
    if path.starts_with("/wagate.") || path.starts_with("/grpc.") {
        path.to_owned()
    } else {
        "other".to_owned()
    }
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
                    .map_or_else(|| "0".to_owned(), str::to_owned),
                Err(_) => "transport".to_owned(),
            };
            ::metrics::histogram!(crate::metrics::GRPC_SERVER_DURATION, "method" => method, "code" => code)
                .record(started.elapsed().as_secs_f64());
            result
        })
    }
}
