//! The worker's run loop: one task that keeps the stream to the control plane
//! open for as long as the worker runs.
//!
//! Per connection: connect (keepalive channel), open `Connect` with the bearer
//! token, send `Hello` (with the sessions the driver still holds), wait for
//! `Welcome` (within `hello_timeout`), stop the sessions it fences, then
//! concurrently:
//! - read `ControlMessage`s: each `Command` runs on its own task (bounded by a
//!   semaphore) and is answered by exactly one `CommandResult`; `Drain` sets a
//!   flag;
//! - forward the driver's events from the worker-wide queue (which survives
//!   reconnects);
//! - send heartbeats with process metrics.
//!
//! When the stream ends or fails, the loop backs off (exponential, full jitter)
//! and connects again. A graceful shutdown sends `Goodbye`, lets in-flight
//! commands finish, flushes queued events and closes the stream; a kill drops
//! the stream at once (a simulated crash).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::Streaming;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tracing::{Instrument, debug, error, info, info_span, warn};
use wagate_proto::v1::worker_service_client::WorkerServiceClient;
use wagate_proto::v1::{self, command, command_result, control_message, worker_message};

use crate::backoff::Backoff;
use crate::config::WorkerConfig;
use crate::dedup::{self, Claim, SendWindow};
use crate::driver::{DriverError, SessionDriver, codes, run_on_driver};
use crate::events::EventSink;
use crate::heartbeat::{self, ProcessMetrics};

/// Messages queued for the stream to the control plane at most.
pub const OUTBOUND_CAPACITY: usize = 1024;
/// How long a graceful shutdown waits to queue `Goodbye`.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a graceful shutdown waits for the control plane to close its side.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long `kill` waits for the run loop to notice.
#[cfg(any(test, feature = "test-util"))]
const KILL_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the worker's stream to the control plane stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// Connecting, or waiting for `Welcome`.
    Connecting,
    /// Welcomed; `generation` is `Welcome.connection_generation`.
    Connected { generation: u64 },
    /// Waiting before the next connect attempt.
    Backoff,
    /// The worker was shut down or killed.
    Stopped,
}

impl ConnectionState {
    pub fn is_connected(&self) -> bool {
        matches!(self, ConnectionState::Connected { .. })
    }
}

/// Starts workers; see [`Worker::spawn`].
#[derive(Debug)]
pub struct Worker;

impl Worker {
    /// Spawns the worker's run loop onto the current tokio runtime (panics
    /// outside one, like `tokio::spawn`) and returns its handle. The loop
    /// connects, and reconnects, until [`WorkerHandle::shutdown`] or
    /// [`WorkerHandle::kill`]. Dropping the handle leaves the worker running.
    pub fn spawn(config: WorkerConfig, driver: Arc<dyn SessionDriver>) -> WorkerHandle {
        let (events, events_rx) = EventSink::channel(config.event_queue_capacity);
        let events = match crate::media::MediaUploader::new(&config) {
            Ok(uploader) => events.with_media(uploader),
            Err(e) => {
                tracing::warn!(error = %e, "received files cannot be stored: no media uploader");
                events
            }
        };
        let permits = config.command_concurrency.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        let (state, state_rx) = watch::channel(ConnectionState::Connecting);
        let span = info_span!("worker", worker_id = %config.worker_id);
        let shared = Arc::new(Shared {
            supported: driver.supported_commands(),
            driver,
            events,
            state,
            paused: watch::Sender::new(false),
            stop: CancellationToken::new(),
            kill: CancellationToken::new(),
            goodbye_reason: Mutex::new("shutdown".to_owned()),
            refusal: Mutex::new(None),
            commands: Arc::new(Semaphore::new(permits)),
            command_permits: u32::try_from(permits).unwrap_or(u32::MAX),
            tracker: TaskTracker::new(),
            connect_count: AtomicU64::new(0),
            message_count: AtomicU64::new(0),
            sent: SendWindow::new(config.dedup_window),
            repeated_sends: AtomicU64::new(0),
            redispatched_sends: AtomicU64::new(0),
            drain: AtomicBool::new(false),
            started: Instant::now(),
            metrics: Mutex::new(ProcessMetrics::new()),
            config,
        });
        let task = tokio::spawn(run(shared.clone(), events_rx).instrument(span));
        WorkerHandle { shared, state: state_rx, task }
    }
}

/// Controls a running worker.
#[derive(Debug)]
pub struct WorkerHandle {
    shared: Arc<Shared>,
    state: watch::Receiver<ConnectionState>,
    task: JoinHandle<()>,
}

impl WorkerHandle {
    pub fn worker_id(&self) -> &str {
        &self.shared.config.worker_id
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.shared.config
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        *self.state.borrow()
    }

    /// Follow the connection state.
    pub fn subscribe(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// Waits until the worker is welcomed by the control plane; `false` on
    /// timeout or when the worker stopped.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.state.clone();
        let waited = tokio::time::timeout(
            timeout,
            rx.wait_for(|s| matches!(s, ConnectionState::Connected { .. } | ConnectionState::Stopped)),
        )
        .await;
        matches!(waited, Ok(Ok(state)) if state.is_connected())
    }

    /// Waits until the worker is not connected (stream lost, backing off or
    /// stopped); `false` on timeout.
    pub async fn wait_disconnected(&self, timeout: Duration) -> bool {
        let mut rx = self.state.clone();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|s| !s.is_connected())).await;
        matches!(waited, Ok(Ok(_)))
    }

    /// How many times the worker was welcomed (1 after the first connect).
    pub fn connect_count(&self) -> u64 {
        self.shared.connect_count.load(Ordering::Relaxed)
    }

    /// `Welcome.connection_generation` of the current connection.
    pub fn connection_generation(&self) -> Option<u64> {
        match self.state() {
            ConnectionState::Connected { generation } => Some(generation),
            _ => None,
        }
    }

    /// Successful `SendMessage` commands handled (the heartbeat's message count).
    pub fn message_count(&self) -> u64 {
        self.shared.message_count.load(Ordering::Relaxed)
    }

    /// Repeated `SendMessage` commands (a message already sent, or being
    /// sent) answered from the de-duplication window without the driver.
    pub fn repeated_sends(&self) -> u64 {
        self.shared.repeated_sends.load(Ordering::Relaxed)
    }

    /// `SendMessage` commands received with an attempt number above 1.
    pub fn redispatched_sends(&self) -> u64 {
        self.shared.redispatched_sends.load(Ordering::Relaxed)
    }

    /// The worker's event sink (the queue the driver's events go through).
    pub fn events(&self) -> EventSink {
        self.shared.events.clone()
    }

    /// Test hook (feature `test-util`). Simulates a frozen worker: while paused the worker sends no heartbeats,
    /// does not answer (ignores) commands and holds back events, but keeps the
    /// connection open.
    #[cfg(any(test, feature = "test-util"))]
    pub fn pause_heartbeats(&self, paused: bool) {
        if self.shared.paused.send_replace(paused) != paused {
            info!(worker_id = %self.worker_id(), paused, "heartbeats pause changed");
        }
    }

    #[cfg(any(test, feature = "test-util"))]
    pub fn heartbeats_paused(&self) -> bool {
        *self.shared.paused.borrow()
    }

    /// Whether the control plane asked this worker to drain (sticky).
    pub fn drain_requested(&self) -> bool {
        self.shared.drain.load(Ordering::Relaxed)
    }

    /// Why the control plane refused this worker's Hello (the worker then
    /// stops instead of retrying), if it did.
    pub fn refusal(&self) -> Option<String> {
        self.shared.refusal.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits until the worker stopped by itself (e.g. refused) or `timeout`.
    pub async fn wait_stopped(&self, timeout: Duration) -> bool {
        let mut rx = self.state.clone();
        tokio::time::timeout(timeout, rx.wait_for(|s| *s == ConnectionState::Stopped))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether the run loop has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Graceful shutdown with the reason "shutdown"; see
    /// [`WorkerHandle::shutdown_with_reason`].
    pub async fn shutdown(self) {
        self.shutdown_with_reason("shutdown").await;
    }

    /// Graceful shutdown: sends `Goodbye { reason }`, answers new commands with
    /// `shutting_down`, lets in-flight commands finish (up to
    /// `shutdown_grace`), flushes queued events, closes the stream and stops
    /// the loop.
    pub async fn shutdown_with_reason(self, reason: impl Into<String>) {
        *self.shared.goodbye_reason.lock().unwrap_or_else(PoisonError::into_inner) = reason.into();
        self.shared.stop.cancel();
        let grace = self.shared.config.shutdown_grace;
        let deadline = grace + GOODBYE_TIMEOUT + CLOSE_TIMEOUT + Duration::from_secs(1);
        self.join(deadline, grace).await;
    }

    /// Test hook (feature `test-util`). Abrupt stop: drops the stream without
    /// `Goodbye` (simulates a crash) and cancels in-flight commands.
    #[cfg(any(test, feature = "test-util"))]
    pub async fn kill(self) {
        info!(worker_id = %self.worker_id(), "killing worker");
        self.shared.kill.cancel();
        self.shared.stop.cancel();
        self.join(KILL_TIMEOUT, Duration::from_secs(1)).await;
    }

    async fn join(self, deadline: Duration, tasks_deadline: Duration) {
        let WorkerHandle { shared, task, .. } = self;
        let abort = task.abort_handle();
        match tokio::time::timeout(deadline, task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(worker_id = %shared.config.worker_id, error = %e, "worker task failed"),
            Err(_) => {
                warn!(worker_id = %shared.config.worker_id, "worker did not stop in time, aborting it");
                shared.kill.cancel();
                abort.abort();
                shared.state.send_replace(ConnectionState::Stopped);
            }
        }
        shared.tracker.close();
        if tokio::time::timeout(tasks_deadline, shared.tracker.wait()).await.is_err() {
            warn!(worker_id = %shared.config.worker_id, tasks = shared.tracker.len(), "worker tasks still running");
        }
    }
}

struct Shared {
    config: WorkerConfig,
    driver: Arc<dyn SessionDriver>,
    /// What the driver declared it runs (read once, sent in every Hello).
    supported: wagate_proto::CommandSet,
    events: EventSink,
    state: watch::Sender<ConnectionState>,
    paused: watch::Sender<bool>,
    /// Cancelled by shutdown and by kill.
    stop: CancellationToken,
    /// Cancelled by kill only.
    kill: CancellationToken,
    goodbye_reason: Mutex<String>,
    /// Why the control plane refused the Hello, once it did (the worker stopped).
    refusal: Mutex<Option<String>>,
    commands: Arc<Semaphore>,
    command_permits: u32,
    tracker: TaskTracker,
    connect_count: AtomicU64,
    message_count: AtomicU64,
    /// Messages sent, answered again on a repeated `SendMessage`.
    sent: Arc<SendWindow>,
    repeated_sends: AtomicU64,
    redispatched_sends: AtomicU64,
    drain: AtomicBool,
    started: Instant,
    metrics: Mutex<ProcessMetrics>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("worker_id", &self.config.worker_id)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn set_state(&self, state: ConnectionState) {
        self.state.send_replace(state);
    }

    fn paused(&self) -> bool {
        *self.paused.borrow()
    }

    fn heartbeat(&self) -> v1::Heartbeat {
        let sample = self.metrics.lock().unwrap_or_else(PoisonError::into_inner).sample();
        heartbeat::heartbeat(
            sample,
            self.driver.held_sessions().len(),
            self.message_count.load(Ordering::Relaxed),
            self.started.elapsed(),
        )
    }

    fn goodbye_reason(&self) -> String {
        self.goodbye_reason.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// What goes into the request stream; `End` closes it after everything
/// queued before.
#[expect(
    clippy::large_enum_variant,
    reason = "messages go by value through the channel; boxing would allocate per message"
)]
enum Outbound {
    Message(v1::WorkerMessage),
    End,
}

/// The stream is gone (its receiving end was dropped).
#[derive(Debug)]
struct StreamGone;

#[derive(Clone)]
struct Outbox(mpsc::Sender<Outbound>);

impl Outbox {
    async fn send(&self, kind: worker_message::Kind) -> Result<(), StreamGone> {
        self.0.send(Outbound::Message(v1::WorkerMessage { kind: Some(kind) })).await.map_err(|_| StreamGone)
    }

    async fn end(&self) {
        let _ = self.0.send(Outbound::End).await;
    }
}

fn request_stream(
    rx: mpsc::Receiver<Outbound>,
) -> impl tokio_stream::Stream<Item = v1::WorkerMessage> + Send + 'static {
    ReceiverStream::new(rx).take_while(|o| matches!(o, Outbound::Message(_))).filter_map(|o| match o {
        Outbound::Message(m) => Some(m),
        Outbound::End => None,
    })
}

/// Formats an error with its sources.
/// `: <source chain>` of a status that has a source, else nothing.
fn status_source(status: &tonic::Status) -> String {
    use std::error::Error as _;
    match status.source() {
        Some(source) => format!(": {}", chain(source)),
        None => String::new(),
    }
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("stopped")]
    Stopped,
    #[error("transport: {}", chain(.0))]
    Transport(#[from] tonic::transport::Error),
    // The source chain names TLS failures (e.g. a refused client certificate).
    #[error("status {}: {}{}", .0.code(), .0.message(), status_source(.0))]
    Status(#[from] tonic::Status),
    #[error("token is not a valid header value")]
    InvalidToken,
    #[error("no welcome within {0:?}")]
    Timeout(Duration),
    #[error("control plane closed the stream before welcome")]
    ClosedBeforeWelcome,
    #[error("protocol: {0}")]
    Protocol(&'static str),
    #[error("stream closed while sending hello")]
    Gone,
    /// The URL or TLS settings cannot work (e.g. TLS files with an `http://` URL).
    #[error("configuration: {0}")]
    Config(String),
}

impl ConnectError {
    fn is_auth(&self) -> bool {
        matches!(self, ConnectError::Status(s) if matches!(s.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied))
    }

    /// A Hello the control plane refused for what it says (not for a token
    /// that may still be rotated in, nor for a transient failure).
    fn is_refusal(&self) -> bool {
        if matches!(self, ConnectError::Config(_)) {
            return true;
        }
        matches!(self, ConnectError::Status(s) if matches!(
            s.code(),
            tonic::Code::InvalidArgument | tonic::Code::AlreadyExists | tonic::Code::FailedPrecondition
        ))
    }
}

/// An open, welcomed stream.
struct Conn {
    welcome: v1::Welcome,
    inbound: Streaming<v1::ControlMessage>,
    outbox: Outbox,
    held: Vec<v1::HeldSession>,
    /// Keeps the HTTP/2 connection alive for the stream's lifetime.
    _client: WorkerServiceClient<Channel>,
}

enum Exit {
    /// Shut down or killed: leave the run loop.
    Stopped,
    /// The stream was lost: reconnect.
    Lost(String),
}

async fn run(shared: Arc<Shared>, mut events_rx: mpsc::Receiver<v1::Event>) {
    let config = &shared.config;
    info!(control_plane = %config.control_plane_url, max_sessions = config.max_sessions, "worker starting");
    let mut backoff = Backoff::new(config.backoff_base, config.backoff_max);
    while !shared.stop.is_cancelled() {
        shared.set_state(ConnectionState::Connecting);
        match connect(&shared).await {
            Ok(conn) => {
                backoff.reset();
                match serve(&shared, conn, &mut events_rx).await {
                    Exit::Stopped => break,
                    Exit::Lost(reason) => warn!(reason = %reason, "stream to control plane lost"),
                }
            }
            Err(ConnectError::Stopped) => break,
            Err(e) if e.is_refusal() => {
                // The control plane looked at the Hello and said no (bad id,
                // capacity, conflicting registration): retrying cannot help.
                error!(error = %e, "control plane refused the worker's Hello: stopping");
                *shared.refusal.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
                break;
            }
            Err(e) if e.is_auth() => {
                error!(error = %e, attempt = backoff.attempt() + 1, "control plane refused the worker")
            }
            Err(e) => warn!(error = %e, attempt = backoff.attempt() + 1, "cannot connect to control plane"),
        }
        if shared.stop.is_cancelled() {
            break;
        }
        let delay = backoff.next_delay();
        shared.set_state(ConnectionState::Backoff);
        info!(delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "reconnecting after backoff");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shared.stop.cancelled() => break,
        }
    }
    shared.set_state(ConnectionState::Stopped);
    info!("worker stopped");
}

async fn connect(shared: &Arc<Shared>) -> Result<Conn, ConnectError> {
    let config = &shared.config;
    let attempt = async {
        let endpoint = wagate_proto::endpoint_with_tls(
            config.control_plane_url.clone(),
            &wagate_proto::ConnectOptions::default(),
            config.tls.as_ref(),
        )
        .map_err(|e| match e {
            wagate_proto::ConnectError::Uri(e) => ConnectError::Transport(e),
            wagate_proto::ConnectError::Tls(e) => ConnectError::Config(e.to_string()),
        })?;
        let channel = endpoint.connect().await?;
        let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
        let outbox = Outbox(tx);
        let held = shared.driver.held_sessions();
        let hello = v1::Hello {
            worker_id: config.worker_id.clone(),
            endpoint: config.endpoint.clone(),
            max_sessions: config.max_sessions,
            version: config.version.clone(),
            sessions: held.clone(),
            labels: config.labels.clone(),
            min_protocol_version: wagate_proto::PROTOCOL_VERSION_MIN,
            max_protocol_version: wagate_proto::PROTOCOL_VERSION_MAX,
            commands: shared.supported.names(),
        };
        // Queued before the call so that the control plane has it at once.
        outbox.send(worker_message::Kind::Hello(hello)).await.map_err(|_| ConnectError::Gone)?;
        let mut request = tonic::Request::new(request_stream(rx));
        let bearer = MetadataValue::try_from(format!("Bearer {}", config.token))
            .map_err(|_| ConnectError::InvalidToken)?;
        request.metadata_mut().insert(wagate_proto::metadata::AUTHORIZATION, bearer);
        let mut client = WorkerServiceClient::new(channel);
        let mut inbound = client.connect(request).await?.into_inner();
        match inbound.message().await? {
            Some(v1::ControlMessage { kind: Some(control_message::Kind::Welcome(welcome)) }) => {
                // 0: a control plane from before protocol negotiation (version 1).
                let version = welcome.protocol_version.max(1);
                if !(wagate_proto::PROTOCOL_VERSION_MIN..=wagate_proto::PROTOCOL_VERSION_MAX)
                    .contains(&version)
                {
                    return Err(ConnectError::Protocol(
                        "the control plane chose a protocol version this worker does not speak",
                    ));
                }
                Ok(Conn { welcome, inbound, outbox, held, _client: client })
            }
            Some(_) => Err(ConnectError::Protocol("first control message is not a welcome")),
            None => Err(ConnectError::ClosedBeforeWelcome),
        }
    };
    tokio::select! {
        biased;
        _ = shared.stop.cancelled() => Err(ConnectError::Stopped),
        result = tokio::time::timeout(config.hello_timeout, attempt) => {
            result.unwrap_or(Err(ConnectError::Timeout(config.hello_timeout)))
        }
    }
}

async fn serve(shared: &Arc<Shared>, conn: Conn, events_rx: &mut mpsc::Receiver<v1::Event>) -> Exit {
    let Conn { welcome, inbound, outbox, held, _client } = conn;
    let generation = welcome.connection_generation;
    let interval = heartbeat::heartbeat_interval(welcome.heartbeat_interval_ms);
    info!(
        generation,
        replica_id = %welcome.replica_id,
        heartbeat_interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        held_sessions = held.len(),
        stop_sessions = welcome.stop_sessions.len(),
        "connected to control plane"
    );
    tokio::select! {
        biased;
        _ = shared.kill.cancelled() => return Exit::Stopped,
        () = stop_fenced_sessions(shared, &held, &welcome.stop_sessions) => {}
    }
    shared.connect_count.fetch_add(1, Ordering::Relaxed);
    shared.set_state(ConnectionState::Connected { generation });

    // Stops the heartbeats when this connection ends (and on kill).
    let connection = shared.kill.child_token();
    let _end_connection = connection.clone().drop_guard();
    shared.tracker.spawn(
        heartbeat_loop(shared.clone(), outbox.clone(), interval, connection.clone()).in_current_span(),
    );

    let mut reader = Box::pin(read_loop(shared.clone(), inbound, outbox.clone()));
    let mut forwarder = Box::pin(forward_events(events_rx, outbox.clone(), shared.paused.subscribe()));

    tokio::select! {
        biased;
        _ = shared.kill.cancelled() => {
            warn!(generation, "worker killed, dropping the stream without goodbye");
            return Exit::Stopped;
        }
        reason = &mut reader => return Exit::Lost(reason),
        () = &mut forwarder => return Exit::Lost("outbound stream closed".to_owned()),
        _ = shared.stop.cancelled() => {}
    }

    // Graceful shutdown.
    let reason = shared.goodbye_reason();
    info!(generation, reason = %reason, "saying goodbye to control plane");
    let goodbye = outbox.send(worker_message::Kind::Goodbye(v1::Goodbye { reason }));
    match tokio::time::timeout(GOODBYE_TIMEOUT, goodbye).await {
        Ok(Ok(())) => {}
        Ok(Err(StreamGone)) | Err(_) => {
            warn!("stream gone before goodbye");
            return Exit::Stopped;
        }
    }
    let grace = shared.config.shutdown_grace;
    let in_flight = async {
        // All permits free = no command in flight (results are queued before
        // a command's permit is released).
        match tokio::time::timeout(grace, shared.commands.acquire_many(shared.command_permits)).await {
            Ok(_) => {}
            Err(_) => warn!(
                grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
                "commands still running after the shutdown grace"
            ),
        }
    };
    tokio::select! {
        biased;
        _ = shared.kill.cancelled() => return Exit::Stopped,
        _ = &mut reader => return Exit::Stopped,
        () = &mut forwarder => return Exit::Stopped,
        () = in_flight => {}
    }
    // Stop every session here before the stream closes: the control plane
    // starts them on other workers once it sees the stream end, so a session
    // is never live on two workers at once.
    let held = shared.driver.held_sessions();
    for s in &held {
        let stop = v1::StopSession { session_id: s.session_id.clone(), generation: s.generation };
        if let Err(err) = shared.driver.stop_session(stop).await {
            warn!(session_id = %s.session_id, error = %err, "could not stop session on shutdown");
        }
    }
    info!(stopped = held.len(), "sessions stopped before leaving");
    drop(forwarder);
    connection.cancel();
    let flush = async {
        let mut flushed = 0usize;
        while let Ok(event) = events_rx.try_recv() {
            if outbox.send(worker_message::Kind::Event(event)).await.is_err() {
                break;
            }
            flushed += 1;
        }
        outbox.end().await;
        flushed
    };
    match tokio::time::timeout(CLOSE_TIMEOUT, flush).await {
        Ok(flushed) => debug!(flushed, "queued events flushed"),
        Err(_) => warn!("timed out flushing events"),
    }
    // Let the control plane see everything and close its side.
    tokio::select! {
        _ = shared.kill.cancelled() => {}
        closed = tokio::time::timeout(CLOSE_TIMEOUT, &mut reader) => {
            if closed.is_err() {
                debug!("control plane did not close the stream in time");
            }
        }
    }
    Exit::Stopped
}

/// Stops the sessions `Welcome.stop_sessions` fences (placed elsewhere while
/// this worker was away).
async fn stop_fenced_sessions(shared: &Shared, held: &[v1::HeldSession], stop: &[String]) {
    if stop.is_empty() {
        return;
    }
    let generations: HashMap<&str, u64> =
        held.iter().map(|h| (h.session_id.as_str(), h.generation)).collect();
    let stops = stop.iter().map(|session_id| {
        let generation = generations.get(session_id.as_str()).copied().unwrap_or(0);
        let cmd = v1::StopSession { session_id: session_id.clone(), generation };
        async move {
            match shared.driver.stop_session(cmd).await {
                Ok(()) => {
                    info!(session_id = %session_id, generation, "stopped session fenced by control plane")
                }
                Err(e) => {
                    warn!(session_id = %session_id, generation, error = %e, "cannot stop fenced session")
                }
            }
        }
    });
    futures::future::join_all(stops).await;
}

/// Reads control messages until the stream ends; returns why it ended.
async fn read_loop(
    shared: Arc<Shared>,
    mut inbound: Streaming<v1::ControlMessage>,
    outbox: Outbox,
) -> String {
    loop {
        let message = match inbound.message().await {
            Ok(Some(message)) => message,
            Ok(None) => return "control plane closed the stream".to_owned(),
            Err(status) => return format!("stream error: status {}: {}", status.code(), status.message()),
        };
        match message.kind {
            Some(control_message::Kind::Command(cmd)) => {
                let received = Instant::now();
                let request_id = cmd.request_id;
                if shared.paused() {
                    debug!(request_id, "paused, command ignored");
                    continue;
                }
                if shared.stop.is_cancelled() {
                    let result = DriverError::new(codes::SHUTTING_DOWN, "worker is shutting down")
                        .into_result(request_id);
                    if outbox.send(worker_message::Kind::Result(result)).await.is_err() {
                        return "outbound stream closed".to_owned();
                    }
                    continue;
                }
                let Ok(permit) = shared.commands.clone().acquire_owned().await else {
                    continue;
                };
                let (kind, session_id) = describe(&cmd);
                let span = info_span!("command", request_id, kind, session_id = %session_id);
                shared.tracker.spawn(
                    run_command(shared.clone(), outbox.clone(), cmd, received, permit).instrument(span),
                );
            }
            Some(control_message::Kind::Drain(drain)) => {
                if !shared.drain.swap(true, Ordering::Relaxed) {
                    warn!(reason = %drain.reason, "control plane requested drain");
                }
            }
            Some(control_message::Kind::Welcome(_)) => warn!("unexpected welcome ignored"),
            None => debug!("empty control message ignored"),
        }
    }
}

fn describe(cmd: &v1::Command) -> (&'static str, &str) {
    match &cmd.kind {
        Some(kind) => (kind.kind().name(), kind.session_id()),
        None => ("none", ""),
    }
}

async fn run_command(
    shared: Arc<Shared>,
    outbox: Outbox,
    cmd: v1::Command,
    received: Instant,
    permit: OwnedSemaphorePermit,
) {
    let request_id = cmd.request_id;
    let started = Instant::now();
    let executed = AssertUnwindSafe(execute(&shared, cmd, received)).catch_unwind();
    let result = tokio::select! {
        biased;
        _ = shared.kill.cancelled() => return,
        result = executed => result.unwrap_or_else(|_| {
            error!("driver panicked");
            DriverError::internal("driver panicked").into_result(request_id)
        }),
    };
    let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    if result.ok {
        debug!(elapsed_us, "command done");
    } else {
        info!(elapsed_us, error_code = %result.error_code, error_message = %result.error_message, "command failed");
    }
    if outbox.send(worker_message::Kind::Result(result)).await.is_err() {
        warn!("stream gone, command result dropped");
    }
    drop(permit);
}

/// Runs one command on the driver; always yields exactly one result.
async fn execute(shared: &Shared, cmd: v1::Command, received: Instant) -> v1::CommandResult {
    let request_id = cmd.request_id;
    if cmd.deadline_ms > 0 && received.elapsed() >= Duration::from_millis(u64::from(cmd.deadline_ms)) {
        return DriverError::new(codes::DEADLINE_EXCEEDED, "command waited past its deadline before it ran")
            .into_result(request_id);
    }
    let driver = &shared.driver;
    let outcome: Result<Option<command_result::Payload>, DriverError> = match cmd.kind {
        None => Err(DriverError::new(codes::INVALID_COMMAND, "command has no kind")),
        Some(kind) if !shared.supported.contains(kind.kind()) => Err(DriverError::unsupported(kind.kind())),
        Some(command::Kind::StartSession(c)) => {
            driver.start_session(c, shared.events.clone()).await.map(|()| None)
        }
        Some(command::Kind::SendMessage(c)) => {
            send_once(shared, c).await.map(|r| Some(command_result::Payload::SendReceipt(r)))
        }
        Some(kind) => match run_on_driver(driver.as_ref(), kind).await {
            Ok(outcome) => outcome,
            Err(kind) => Err(DriverError::unsupported(kind.kind())),
        },
    };
    match outcome {
        Ok(payload) => v1::CommandResult {
            request_id,
            ok: true,
            error_code: String::new(),
            error_message: String::new(),
            payload,
        },
        Err(e) => e.into_result(request_id),
    }
}

/// Runs a `SendMessage` on the driver unless this worker already sent that
/// message (see [`crate::dedup`]).
async fn send_once(shared: &Shared, c: v1::SendMessage) -> Result<v1::SendReceipt, DriverError> {
    let (message_id, attempt) = (c.message_id.clone(), c.attempt);
    if attempt > 1 {
        shared.redispatched_sends.fetch_add(1, Ordering::Relaxed);
    }
    match shared.sent.claim(&message_id) {
        Claim::Done(receipt) => {
            shared.repeated_sends.fetch_add(1, Ordering::Relaxed);
            info!(message_id = %message_id, attempt, "repeated send answered from the de-duplication window");
            Ok(receipt)
        }
        Claim::Wait(rx) => {
            shared.repeated_sends.fetch_add(1, Ordering::Relaxed);
            info!(message_id = %message_id, attempt, "repeated send waits for the first one");
            dedup::wait(rx).await
        }
        Claim::Run(running) => {
            if attempt > 1 {
                info!(message_id = %message_id, attempt, "re-dispatched send not seen before, sending");
            }
            let receipt = shared.driver.send_message(c).await;
            if receipt.is_ok() {
                shared.message_count.fetch_add(1, Ordering::Relaxed);
            }
            running.finish(&receipt);
            receipt
        }
    }
}

/// Forwards the driver's events onto the stream until the stream is gone.
/// Cancel-safe: an event is taken from the queue only once there is room for
/// it on the stream.
async fn forward_events(
    events_rx: &mut mpsc::Receiver<v1::Event>,
    outbox: Outbox,
    mut paused: watch::Receiver<bool>,
) {
    loop {
        if paused.wait_for(|p| !*p).await.is_err() {
            return;
        }
        let Ok(permit) = outbox.0.reserve().await else { return };
        let Some(event) = events_rx.recv().await else {
            // Every sink is gone (cannot happen while the worker holds one).
            return std::future::pending().await;
        };
        permit.send(Outbound::Message(v1::WorkerMessage { kind: Some(worker_message::Kind::Event(event)) }));
    }
}

async fn heartbeat_loop(shared: Arc<Shared>, outbox: Outbox, every: Duration, connection: CancellationToken) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = connection.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if shared.paused() {
            continue;
        }
        let beat = shared.heartbeat();
        tokio::select! {
            _ = connection.cancelled() => return,
            sent = outbox.send(worker_message::Kind::Heartbeat(beat)) => {
                if sent.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn request_stream_ends_at_end_marker_after_queued_messages() {
        let (tx, rx) = mpsc::channel(8);
        let hb = |n| {
            Outbound::Message(v1::WorkerMessage {
                kind: Some(worker_message::Kind::Heartbeat(v1::Heartbeat {
                    message_count: n,
                    ..Default::default()
                })),
            })
        };
        tx.send(hb(1)).await.unwrap();
        tx.send(hb(2)).await.unwrap();
        tx.send(Outbound::End).await.unwrap();
        tx.send(hb(3)).await.unwrap();
        let got: Vec<_> = request_stream(rx).collect().await;
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn error_chain_includes_sources() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let outer = std::io::Error::other(inner);
        assert!(chain(&outer).contains("connection refused"));
    }
}
