//! Process telemetry shared by the wagate binaries (feature `telemetry`):
//!
//! - [`prometheus`]: the process-wide recorder of the `metrics` facade
//!   (installed once; histograms get buckets), rendered by [`render`];
//! - [`serve_metrics`]: `GET /metrics` on a binary's own small listener, behind
//!   a bearer token when one is configured (`WAGATE_METRICS_TOKEN`);
//! - [`init_logging`]: `tracing` to stderr, text or JSON lines
//!   (`WAGATE_LOG_FORMAT=json`), filtered by `RUST_LOG`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Latency buckets (seconds) of every histogram: 250 µs … 30 s.
const BUCKETS: &[f64] =
    &[0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The Prometheus handle of this process, installing the recorder on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_buckets(BUCKETS) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "histogram buckets refused; histograms render as summaries");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(e) = metrics::set_global_recorder(recorder) {
            tracing::warn!(error = %e, "a metrics recorder was already installed");
        }
        handle
    })
}

/// Every metric of this process in the Prometheus text format.
pub fn render() -> String {
    let handle = prometheus();
    handle.run_upkeep();
    handle.render()
}

/// Whether `req` carries `Authorization: Bearer <token>` (constant-time compare).
fn authorized(req: &Request<hyper::body::Incoming>, token: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    let Some(token) = token else { return true };
    let Some(presented) = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
    else {
        return false;
    };
    presented.trim().as_bytes().ct_eq(token.as_bytes()).into()
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    token: Option<Arc<str>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body, ctype) = match req.uri().path() {
        "/metrics" if !authorized(&req, token.as_deref()) => {
            (StatusCode::UNAUTHORIZED, "unauthorized\n".to_owned(), "text/plain")
        }
        "/metrics" => (StatusCode::OK, render(), "text/plain; version=0.0.4"),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_owned(), "text/plain"),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(ctype));
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Bearer"));
    }
    Ok(resp)
}

/// Binds `addr` (port 0 allowed) and serves `GET /metrics` until `stop` is
/// cancelled; returns the bound address. Installs the recorder.
pub async fn serve_metrics(addr: SocketAddr, stop: CancellationToken) -> std::io::Result<SocketAddr> {
    serve_metrics_with_token(addr, None, stop).await
}

/// [`serve_metrics`], answering 401 unless the request carries
/// `Authorization: Bearer <token>` when `token` is set.
pub async fn serve_metrics_with_token(
    addr: SocketAddr,
    token: Option<String>,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    prometheus();
    let token: Option<Arc<str>> = token.filter(|t| !t.is_empty()).map(Arc::from);
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let protected = token.is_some();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                a = listener.accept() => a,
            };
            let Ok((stream, _)) = accepted else { continue };
            let token = token.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(req, token.clone()));
                let conn = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(err) = conn {
                    tracing::debug!(error = %err, "metrics connection ended");
                }
            });
        }
    });
    tracing::info!(%local, token = protected, "metrics listening");
    Ok(local)
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// `WAGATE_LOG_FORMAT`: `json`, else text.
    pub fn from_env() -> LogFormat {
        match std::env::var("WAGATE_LOG_FORMAT") {
            Ok(v) if v.trim().eq_ignore_ascii_case("json") => LogFormat::Json,
            _ => LogFormat::Text,
        }
    }
}

/// Installs the `tracing` subscriber of a binary (once; later calls do
/// nothing). `default_filter` applies when `RUST_LOG` is not set.
pub fn init_logging(default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let result = match LogFormat::from_env() {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_env_filter(filter)
            .try_init(),
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
}
