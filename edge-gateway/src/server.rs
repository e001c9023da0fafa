//! The listener: accepts TCP connections (TCP_NODELAY), serves each with
//! hyper's HTTP/1.1 + HTTP/2 auto builder, and shuts down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use tower::ServiceExt;

use crate::config::EdgeConfig;
use crate::cors::Cors;
use crate::grpc::ControlPlane;
use crate::middleware::Peer;
use crate::state::AppState;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("invalid control plane URL {url:?}: {source}")]
    ControlPlaneUrl { url: String, source: wagate_proto::ConnectError },
}

/// Starts the gateway.
#[derive(Debug)]
pub struct EdgeServer;

impl EdgeServer {
    /// Binds `config.listen` (port 0 picks a free port) and serves in a
    /// background task until [`RunningEdge::shutdown`] (or the token is
    /// cancelled, or the handle is dropped).
    pub async fn bind(config: EdgeConfig) -> Result<RunningEdge, EdgeError> {
        let listen = config.listen;
        let control_plane =
            ControlPlane::with_tls(&config.control_plane_url, config.grpc_channels, config.tls.as_ref())
                .map_err(|source| EdgeError::ControlPlaneUrl {
                    url: config.control_plane_url.clone(),
                    source,
                })?;
        let cors = Cors::new(&config.cors_origins);
        let state = Arc::new(AppState { config, control_plane, cors });
        let listener =
            TcpListener::bind(listen).await.map_err(|source| EdgeError::Bind { addr: listen, source })?;
        let local_addr = listener.local_addr().map_err(|source| EdgeError::Bind { addr: listen, source })?;
        let token = CancellationToken::new();
        let task = tokio::spawn(serve(listener, state, token.clone()));
        tracing::info!(%local_addr, "edge gateway listening");
        Ok(RunningEdge { local_addr, token, task: Some(task) })
    }
}

/// A running gateway. Dropping it stops the server like
/// [`RunningEdge::cancel_token`]`.cancel()` (without waiting).
#[derive(Debug)]
pub struct RunningEdge {
    local_addr: SocketAddr,
    token: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl RunningEdge {
    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Cancelling this token starts a graceful shutdown.
    pub fn cancel_token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Stops accepting connections, lets in-flight requests finish (at most
    /// the request timeout plus a second), then returns.
    pub async fn shutdown(mut self) {
        self.token.cancel();
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "edge gateway task failed");
        }
    }
}

impl Drop for RunningEdge {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

fn http_builder(header_read_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(header_read_timeout)
        .pipeline_flush(true)
        .max_buf_size(256 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(512)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    builder
}

async fn serve(listener: TcpListener, state: Arc<AppState>, token: CancellationToken) {
    let drain_deadline = state.config.request_timeout + Duration::from_secs(1);
    let header_read_timeout = state.config.header_read_timeout;
    let builder = Arc::new(http_builder(header_read_timeout));
    let slots = Arc::new(tokio::sync::Semaphore::new(state.config.max_connections));
    let app = crate::app::service(state);
    let graceful = GracefulShutdown::new();
    // Cancelled when the drain deadline passes: connections still open are dropped.
    let hard_stop = CancellationToken::new();
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = token.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // The connection cap: beyond it, close at once (the client retries).
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            ::metrics::counter!("wagate_edge_connections_refused_total").increment(1);
            tracing::debug!(%peer, "connection cap reached: closed");
            drop(stream);
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "set TCP_NODELAY failed");
        }
        let service = TowerToHyperService::new(app.clone().map_request(
            move |r: http::Request<hyper::body::Incoming>| {
                let mut r = r.map(Body::new);
                r.extensions_mut().insert(Peer(peer));
                r
            },
        ));
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let hard_stop = hard_stop.clone();
        let first_bytes = header_read_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            // hyper-util's protocol detection waits for the first bytes with
            // no deadline: a connection that sends nothing is closed here.
            let mut first = [0u8; 1];
            if !matches!(tokio::time::timeout(first_bytes, stream.peek(&mut first)).await, Ok(Ok(n)) if n > 0)
            {
                ::metrics::counter!("wagate_edge_connections_timed_out_total").increment(1);
                tracing::debug!(%peer, "no request within the header timeout: closed");
                return;
            }
            let open = ::metrics::gauge!("wagate_edge_connections_open");
            open.increment(1.0);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = watcher.watch(conn) => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with error");
                    }
                }
                () = hard_stop.cancelled() => {}
            }
            open.decrement(1.0);
        });
    }
    drop(listener);
    tracing::info!("edge gateway shutting down: draining connections");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("edge gateway drained"),
        () = tokio::time::sleep(drain_deadline) => {
            tracing::warn!("edge gateway drain deadline passed; closing remaining connections");
            hard_stop.cancel();
        }
    }
}
