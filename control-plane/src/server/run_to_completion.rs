//! A tower layer on the gRPC server: every call's handler runs to its end in
//! a task of its own, whether or not the client is still there.
//!
//! tonic drops a handler's future when its client resets the stream (the
//! edge's HTTP client went away, a deadline passed, a load generator closed
//! its sockets). A handler cut at an arbitrary `.await` leaves behind what it
//! began: a tracker entry, a quota unit, a row half-settled. Rather than
//! make every step of every handler safe to stop, the handler is spawned on
//! the replica's [`TaskTracker`] (so a graceful shutdown waits for it, like
//! any background work) and the request only waits for its answer; dropping
//! the request drops the wait, not the work. The answer of a call whose
//! client left is discarded.
//!
//! Streams are unaffected: a streaming handler returns its response (and
//! body stream) at once; only the handler's own future runs in the task.
//!
//! The cost is one task spawn per call (well under a microsecond).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Wraps the server's routes in [`RunToCompletion`].
#[derive(Debug, Clone)]
pub struct RunToCompletionLayer {
    tasks: TaskTracker,
}

impl RunToCompletionLayer {
    pub fn new(tasks: TaskTracker) -> Self {
        Self { tasks }
    }
}

impl<S> tower::Layer<S> for RunToCompletionLayer {
    type Service = RunToCompletion<S>;

    fn layer(&self, inner: S) -> RunToCompletion<S> {
        RunToCompletion { inner, tasks: self.tasks.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct RunToCompletion<S> {
    inner: S,
    tasks: TaskTracker,
}

impl<S, B> tower::Service<http::Request<B>> for RunToCompletion<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_owned();
        let handler = self.tasks.spawn(self.inner.call(req).in_current_span());
        Box::pin(async move {
            match handler.await {
                Ok(answer) => answer,
                // A panicking handler: the client gets INTERNAL, the task's
                // guards have already run their `Drop`.
                Err(err) => {
                    tracing::error!(method = path, error = %err, "grpc handler panicked");
                    Ok(tonic::Status::internal("internal error").into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use tower::{Layer, Service, ServiceExt};

    use super::*;

    #[tokio::test]
    async fn a_dropped_call_still_finishes_and_a_panic_is_internal() {
        let tasks = TaskTracker::new();
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        let inner = tower::service_fn(move |req: http::Request<()>| {
            let done = done.clone();
            async move {
                if req.uri().path() == "/panic" {
                    panic!("handler bug");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                done.store(true, Ordering::SeqCst);
                Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::empty()))
            }
        });
        let mut svc = RunToCompletionLayer::new(tasks.clone()).layer(inner);
        let call = svc.ready().await.unwrap().call(http::Request::new(()));
        // The client goes away after 5 ms.
        assert!(tokio::time::timeout(Duration::from_millis(5), call).await.is_err());
        tasks.close();
        tokio::time::timeout(Duration::from_secs(2), tasks.wait()).await.unwrap();
        assert!(finished.load(Ordering::SeqCst), "the handler ran to its end");

        let panicked = svc
            .ready()
            .await
            .unwrap()
            .call(http::Request::builder().uri("/panic").body(()).unwrap())
            .await
            .unwrap();
        assert_eq!(panicked.headers().get("grpc-status").unwrap(), "13");
    }
}
