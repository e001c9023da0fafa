//! The gRPC listener's guards, around tonic's `TcpIncoming` (like the edge's
//! in `edge-gateway/src/server.rs`): a socket is not held for free.
//!
//! - **Connection cap** (`WAGATE_GRPC_MAX_CONNECTIONS`): beyond it an accepted
//!   socket is closed at once (`wagate_cp_grpc_connections_refused_total`).
//! - **First bytes** (`WAGATE_GRPC_FIRST_BYTES_TIMEOUT_MS`): a connection must
//!   send its first bytes (the HTTP/2 preface, or a TLS ClientHello) within
//!   this, else it is closed (`wagate_cp_grpc_connections_timed_out_total{reason="first_bytes"}`);
//!   neither hyper nor tonic bound this wait.
//! - **Idle** (`WAGATE_GRPC_IDLE_TIMEOUT_MS`, 0 = off): a connection with no
//!   call in flight for this long is closed (`reason="idle"`). A call is in
//!   flight from its request until its response body ends, so a worker's
//!   stream (or any streaming call) keeps its connection; HTTP/2 pings do not.
//!   Tracked by [`ActivityLayer`], which finds the connection by its peer
//!   address (one map lookup per call).
//! - **Keepalive**: HTTP/2 pings (`WAGATE_GRPC_KEEPALIVE_INTERVAL_MS` /
//!   `_TIMEOUT_MS`, set on the tonic builder) close a peer that stopped
//!   answering; TCP keepalive stays on the sockets.
//!
//! `wagate_cp_grpc_connections_open` is the gauge of connections held.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};

pub const CONNECTIONS_REFUSED: &str = "wagate_cp_grpc_connections_refused_total";
pub const CONNECTIONS_TIMED_OUT: &str = "wagate_cp_grpc_connections_timed_out_total";
pub const CONNECTIONS_OPEN: &str = "wagate_cp_grpc_connections_open";

/// An idle connection is not closed within this of receiving bytes (a call's
/// request may be read but not yet at the service).
const READ_SETTLE: Duration = Duration::from_secs(1);

/// The limits of the gRPC listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// A connection must send its first bytes within this.
    pub first_bytes_timeout: Duration,
    /// A connection with no call in flight this long is closed (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Connections held at once; more are closed at accept.
    pub max_connections: usize,
    /// HTTP/2 ping interval and how long an answer may take.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            first_bytes_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(300)),
            max_connections: 10_000,
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(5),
        }
    }
}

/// What the listener knows of one connection.
#[derive(Debug)]
struct Activity {
    born: Instant,
    /// Calls whose response body has not ended.
    in_flight: AtomicUsize,
    /// Milliseconds since `born` of the last call start or end.
    last_call_ms: AtomicU64,
    /// Any byte received yet.
    spoke: AtomicBool,
    /// Milliseconds since `born` of the last bytes received.
    last_read_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            born: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_call_ms: AtomicU64::new(0),
            spoke: AtomicBool::new(false),
            last_read_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_call_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn read(&self) {
        self.spoke.store(true, Ordering::Relaxed);
        self.last_read_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// How long ago bytes were last received.
    fn since_read(&self) -> Duration {
        Duration::from_millis(self.now_ms().saturating_sub(self.last_read_ms.load(Ordering::Relaxed)))
    }

    /// How long no call has been in flight (zero while one is).
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let since = Duration::from_millis(self.last_call_ms.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(since)
    }
}

/// Open connections by peer address (how [`ActivityLayer`] finds one).
type Connections = Arc<Mutex<HashMap<SocketAddr, Arc<Activity>>>>;

/// The accepted sockets of a listener, capped and watched.
pub struct Guarded<S> {
    inner: S,
    limits: ListenerLimits,
    slots: Arc<Semaphore>,
    connections: Connections,
}

impl<S> Guarded<S> {
    /// Wraps `inner` (tonic's `TcpIncoming`); returns it with the layer that
    /// tracks calls per connection (add it to the server's layers).
    pub fn new(inner: S, limits: ListenerLimits) -> (Self, ActivityLayer) {
        let connections: Connections = Arc::default();
        let layer = ActivityLayer { connections: connections.clone() };
        let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        (Self { inner, limits, slots, connections }, layer)
    }
}

impl<S> Stream for Guarded<S>
where
    S: Stream<Item = io::Result<TcpStream>> + Unpin,
{
    type Item = io::Result<GuardedStream>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let stream = match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(s))) => s,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                ::metrics::counter!(CONNECTIONS_REFUSED).increment(1);
                tracing::debug!(peer = ?stream.peer_addr().ok(), "grpc connection cap reached: closed");
                drop(stream);
                continue;
            };
            return Poll::Ready(Some(Ok(GuardedStream::new(stream, slot, &self.limits, &self.connections))));
        }
    }
}

/// One accepted socket: it holds a connection slot, must speak within the
/// first-bytes deadline, and is closed once idle past the idle timeout.
pub struct GuardedStream {
    inner: TcpStream,
    peer: Option<SocketAddr>,
    activity: Arc<Activity>,
    connections: Connections,
    first_bytes_timeout: Duration,
    idle_timeout: Option<Duration>,
    timer: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl GuardedStream {
    fn new(
        inner: TcpStream,
        slot: OwnedSemaphorePermit,
        limits: &ListenerLimits,
        connections: &Connections,
    ) -> Self {
        let peer = inner.peer_addr().ok();
        let activity = Arc::new(Activity::new());
        if let Some(peer) = peer {
            connections.lock().unwrap_or_else(PoisonError::into_inner).insert(peer, activity.clone());
        }
        ::metrics::gauge!(CONNECTIONS_OPEN).increment(1.0);
        Self {
            inner,
            peer,
            activity,
            connections: connections.clone(),
            first_bytes_timeout: limits.first_bytes_timeout,
            idle_timeout: limits.idle_timeout,
            timer: Box::pin(tokio::time::sleep(limits.first_bytes_timeout)),
            _slot: slot,
        }
    }

    /// Polls the deadline: an error once it is passed (the connection is
    /// then closed by its server task), else re-armed for the next check.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let (reason, wait) = if !self.activity.spoke.load(Ordering::Relaxed) {
                ("first_bytes", self.first_bytes_timeout.saturating_sub(self.activity.born.elapsed()))
            } else if let Some(idle) = self.idle_timeout {
                // Bytes just received may be a call whose request has not reached
                // the service yet: give it a moment to register before closing.
                let settle = READ_SETTLE.saturating_sub(self.activity.since_read());
                ("idle", idle.saturating_sub(self.activity.idle_for()).max(settle))
            } else {
                // Spoke, and no idle timeout: nothing more to watch.
                self.timer.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(86_400 * 365));
                return Ok(());
            };
            if wait.is_zero() {
                ::metrics::counter!(CONNECTIONS_TIMED_OUT, "reason" => reason).increment(1);
                tracing::debug!(peer = ?self.peer, reason, "grpc connection closed");
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("grpc connection {reason} timeout"),
                ));
            }
            self.timer.as_mut().reset(tokio::time::Instant::now() + wait);
        }
        Ok(())
    }
}

impl Drop for GuardedStream {
    fn drop(&mut self) {
        if let Some(peer) = self.peer {
            let mut map = self.connections.lock().unwrap_or_else(PoisonError::into_inner);
            if map.get(&peer).is_some_and(|a| Arc::ptr_eq(a, &self.activity)) {
                map.remove(&peer);
            }
        }
        ::metrics::gauge!(CONNECTIONS_OPEN).decrement(1.0);
    }
}

impl Connected for GuardedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read();
        }
        // The server task always has a read pending: the deadline is polled
        // (and its waker registered) here.
        if let Err(e) = this.poll_deadline(cx) {
            return Poll::Ready(Err(e));
        }
        result
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Counts the calls in flight per connection (for the idle timeout).
#[derive(Debug, Clone)]
pub struct ActivityLayer {
    connections: Connections,
}

impl<S> tower::Layer<S> for ActivityLayer {
    type Service = ActivityService<S>;

    fn layer(&self, inner: S) -> ActivityService<S> {
        ActivityService { inner, connections: self.connections.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct ActivityService<S> {
    inner: S,
    connections: Connections,
}

/// A call in flight on a connection, until dropped.
struct CallGuard(Arc<Activity>);

impl CallGuard {
    fn start(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.touch();
        Self(activity)
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn peer_of<B>(req: &http::Request<B>) -> Option<SocketAddr> {
    let ext = req.extensions();
    ext.get::<TcpConnectInfo>().and_then(TcpConnectInfo::remote_addr).or_else(|| {
        ext.get::<tonic::transport::server::TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|t| t.get_ref().remote_addr())
    })
}

impl<S, B, RB> tower::Service<http::Request<B>> for ActivityService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    RB: http_body::Body<Data = bytes::Bytes> + Unpin + Send + 'static,
    RB::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let guard = peer_of(&req)
            .and_then(|peer| {
                self.connections.lock().unwrap_or_else(PoisonError::into_inner).get(&peer).cloned()
            })
            .map(CallGuard::start);
        let fut = self.inner.call(req);
        Box::pin(async move {
            let response = fut.await?;
            Ok(response.map(|body| tonic::body::Body::new(TrackedBody { inner: body, _guard: guard })))
        })
    }
}

/// A response body that keeps its call in flight until it ends (or is dropped).
struct TrackedBody<B> {
    inner: B,
    _guard: Option<CallGuard>,
}

impl<B> http_body::Body for TrackedBody<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
{
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_counts_only_without_calls() {
        let a = Arc::new(Activity::new());
        std::thread::sleep(Duration::from_millis(20));
        assert!(a.idle_for() >= Duration::from_millis(20));
        let g = CallGuard::start(a.clone());
        assert_eq!(a.idle_for(), Duration::ZERO);
        drop(g);
        assert!(a.idle_for() < Duration::from_millis(20));
    }
}
