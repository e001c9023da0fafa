//! The worker's stream loop against a scripted fake control plane on
//! loopback: Hello/Welcome, heartbeats, commands and results, events, drain,
//! reconnect with held sessions and fencing, events queued while disconnected,
//! graceful shutdown (Goodbye) vs kill, paused heartbeats, auth refusal,
//! deadlines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use wagate_proto::v1::worker_service_server::{WorkerService, WorkerServiceServer};
use wagate_proto::v1::{self, command, command_result, control_message, event, worker_message};
use wagate_worker_sdk::simulated::{SimulatedConfig, SimulatedDriver};
use wagate_worker_sdk::{
    ConnectionState, DriverError, EventSink, SessionDriver, Worker, WorkerConfig, WorkerHandle,
};

const TOKEN: &str = "test-worker-token";
const WAIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
// A test channel's item: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Seen {
    Hello { conn: u64, hello: v1::Hello, auth: Option<String> },
    Msg { kind: worker_message::Kind },
    End { conn: u64, error: bool },
}

type ControlTx = mpsc::Sender<Result<v1::ControlMessage, Status>>;

#[derive(Default)]
struct Script {
    reject: bool,
    stop_sessions: Vec<String>,
}

#[derive(Clone)]
struct Fake {
    seen: mpsc::UnboundedSender<Seen>,
    current: Arc<Mutex<Option<ControlTx>>>,
    script: Arc<Mutex<Script>>,
    conns: Arc<AtomicU64>,
}

#[async_trait]
impl WorkerService for Fake {
    type ConnectStream = ReceiverStream<Result<v1::ControlMessage, Status>>;

    async fn connect(
        &self,
        request: Request<Streaming<v1::WorkerMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let auth = request.metadata().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (reject, stop_sessions) = {
            let script = self.script.lock().unwrap();
            (script.reject, script.stop_sessions.clone())
        };
        if reject || auth.as_deref() != Some(&format!("Bearer {TOKEN}")) {
            return Err(Status::unauthenticated("bad worker token"));
        }
        let mut inbound = request.into_inner();
        let hello = match inbound.message().await? {
            Some(v1::WorkerMessage { kind: Some(worker_message::Kind::Hello(h)) }) => h,
            _ => return Err(Status::invalid_argument("hello first")),
        };
        let conn = self.conns.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.seen.send(Seen::Hello { conn, hello, auth });
        let (tx, rx) = mpsc::channel(64);
        let welcome = v1::Welcome {
            connection_generation: conn,
            heartbeat_interval_ms: 100,
            stop_sessions,
            replica_id: "fake-1".into(),
            ..Default::default()
        };
        tx.send(Ok(v1::ControlMessage { kind: Some(control_message::Kind::Welcome(welcome)) })).await.ok();
        *self.current.lock().unwrap() = Some(tx);
        let seen = self.seen.clone();
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(v1::WorkerMessage { kind: Some(kind) })) => {
                        let _ = seen.send(Seen::Msg { kind });
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        let _ = seen.send(Seen::End { conn, error: false });
                        return;
                    }
                    Err(_) => {
                        let _ = seen.send(Seen::End { conn, error: true });
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

struct Harness {
    url: String,
    fake: Fake,
    seen: mpsc::UnboundedReceiver<Seen>,
    stop: CancellationToken,
}

impl Harness {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let fake =
            Fake { seen: seen_tx, current: Arc::default(), script: Arc::default(), conns: Arc::default() };
        let stop = CancellationToken::new();
        let server = tonic::transport::Server::builder()
            .add_service(WorkerServiceServer::new(fake.clone()))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop.clone().cancelled_owned());
        tokio::spawn(server);
        Harness { url, fake, seen, stop }
    }

    fn config(&self, worker_id: &str) -> WorkerConfig {
        let mut config = WorkerConfig::new(&self.url, TOKEN, worker_id);
        config.backoff_base = Duration::from_millis(20);
        config.backoff_max = Duration::from_millis(100);
        config.hello_timeout = Duration::from_secs(2);
        config.labels.insert("zone".into(), "test".into());
        config
    }

    async fn next(&mut self) -> Seen {
        tokio::time::timeout(WAIT, self.seen.recv()).await.expect("fake saw something in time").expect("open")
    }

    /// The next message that is not a heartbeat.
    async fn next_non_heartbeat(&mut self) -> Seen {
        loop {
            match self.next().await {
                Seen::Msg { kind: worker_message::Kind::Heartbeat(_), .. } => continue,
                other => return other,
            }
        }
    }

    async fn hello(&mut self) -> (u64, v1::Hello, Option<String>) {
        match self.next_non_heartbeat().await {
            Seen::Hello { conn, hello, auth } => (conn, hello, auth),
            other => panic!("expected hello, got {other:?}"),
        }
    }

    async fn send(&self, kind: control_message::Kind) {
        let tx = self.fake.current.lock().unwrap().clone().expect("a connection");
        tx.send(Ok(v1::ControlMessage { kind: Some(kind) })).await.unwrap();
    }

    async fn command(&self, request_id: u64, deadline_ms: u32, kind: command::Kind) {
        self.send(control_message::Kind::Command(v1::Command { request_id, deadline_ms, kind: Some(kind) }))
            .await;
    }

    /// Ends the current stream from the control plane's side.
    fn drop_stream(&self) {
        self.fake.current.lock().unwrap().take();
    }

    async fn result(&mut self) -> v1::CommandResult {
        loop {
            match self.next_non_heartbeat().await {
                Seen::Msg { kind: worker_message::Kind::Result(r), .. } => return r,
                Seen::Msg { kind: worker_message::Kind::Event(_), .. } => continue,
                other => panic!("expected a result, got {other:?}"),
            }
        }
    }

    async fn event(&mut self) -> v1::Event {
        match self.next_non_heartbeat().await {
            Seen::Msg { kind: worker_message::Kind::Event(e), .. } => e,
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

fn text(session_id: &str, message_id: &str) -> v1::SendMessage {
    v1::SendMessage {
        session_id: session_id.into(),
        generation: 1,
        message_id: message_id.into(),
        to: "6281234567890@s.whatsapp.net".into(),
        content: Some(v1::MessageContent {
            r#type: v1::MessageType::Text as i32,
            text: "hi".into(),
            ..Default::default()
        }),
        attempt: 1,
    }
}

fn fast_driver() -> Arc<SimulatedDriver> {
    SimulatedDriver::new(SimulatedConfig {
        connect_delay: Duration::from_millis(5),
        delivered_after: Duration::from_millis(10),
        delivered_after_max: Duration::from_millis(10),
        read_after: Duration::from_millis(10),
        read_after_max: Duration::from_millis(10),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_welcome_heartbeats_commands_events_and_drain() {
    let mut h = Harness::start().await;
    let driver = fast_driver();
    let handle = Worker::spawn(h.config("w1"), driver.clone());

    let (conn, hello, auth) = h.hello().await;
    assert_eq!(conn, 1);
    assert_eq!(auth.as_deref(), Some("Bearer test-worker-token"));
    assert_eq!(hello.worker_id, "w1");
    assert_eq!(hello.max_sessions, 50);
    assert!(hello.sessions.is_empty());
    assert_eq!(hello.labels.get("zone").map(String::as_str), Some("test"));
    assert!(!hello.version.is_empty());
    assert!(handle.wait_connected(WAIT).await);
    assert_eq!(handle.state(), ConnectionState::Connected { generation: 1 });
    assert_eq!(handle.connection_generation(), Some(1));
    assert_eq!(handle.connect_count(), 1);
    assert_eq!(handle.worker_id(), "w1");

    // Heartbeats with real metrics.
    let beat = loop {
        if let Seen::Msg { kind: worker_message::Kind::Heartbeat(b), .. } = h.next().await {
            break b;
        }
    };
    assert!(beat.rss_bytes > 0 && beat.memory_usage > 0.0, "{beat:?}");

    // StartSession -> ok result, QR + status events.
    let start =
        v1::StartSession { session_id: "s1".into(), generation: 1, name: "one".into(), auth_state: None };
    h.command(10, 5000, command::Kind::StartSession(start)).await;
    let mut got_result = false;
    let mut got_qr = false;
    let mut got_status = false;
    while !(got_result && got_qr && got_status) {
        match h.next_non_heartbeat().await {
            Seen::Msg { kind: worker_message::Kind::Result(r), .. } => {
                assert_eq!(r.request_id, 10);
                assert!(r.ok, "{r:?}");
                got_result = true;
            }
            Seen::Msg { kind: worker_message::Kind::Event(e), .. } => match e.kind {
                Some(event::Kind::Qr(_)) => got_qr = true,
                Some(event::Kind::Status(s)) => {
                    assert_eq!(s.status(), v1::SessionStatus::QrRequired);
                    got_status = true;
                }
                other => panic!("unexpected event {other:?}"),
            },
            other => panic!("unexpected {other:?}"),
        }
    }

    // The user scans: CONNECTED + auth state go out as events.
    assert!(driver.scan("s1"));
    let connected = h.event().await;
    assert!(
        matches!(connected.kind, Some(event::Kind::Status(ref s)) if s.status() == v1::SessionStatus::Connected)
    );
    assert!(matches!(h.event().await.kind, Some(event::Kind::AuthState(_))));

    // SendMessage -> receipt, then DELIVERED and READ events.
    h.command(11, 5000, command::Kind::SendMessage(text("s1", "m1"))).await;
    let r = h.result().await;
    assert_eq!(r.request_id, 11);
    assert!(r.ok);
    match r.payload {
        Some(command_result::Payload::SendReceipt(receipt)) => {
            assert!(receipt.wa_message_id.starts_with("SIM"))
        }
        other => panic!("{other:?}"),
    }
    for expected in [v1::MessageStatus::Delivered, v1::MessageStatus::Read] {
        match h.event().await.kind {
            Some(event::Kind::MessageStatus(m)) => {
                assert_eq!(m.message_id, "m1");
                assert_eq!(m.status(), expected);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(handle.message_count(), 1);

    // GetStatus -> session state; unknown session -> error code.
    h.command(12, 5000, command::Kind::GetStatus(v1::GetStatus { session_id: "s1".into() })).await;
    let r = h.result().await;
    match r.payload {
        Some(command_result::Payload::SessionState(s)) => {
            assert_eq!(s.status(), v1::SessionStatus::Connected);
            assert_eq!(s.phone_number, Some(driver.phone_for("s1")));
        }
        other => panic!("{other:?}"),
    }
    h.command(13, 5000, command::Kind::SendMessage(text("ghost", "m2"))).await;
    let r = h.result().await;
    assert_eq!((r.request_id, r.ok, r.error_code.as_str()), (13, false, "unknown_session"));
    h.send(control_message::Kind::Command(v1::Command { request_id: 14, deadline_ms: 0, kind: None })).await;
    let r = h.result().await;
    assert_eq!((r.request_id, r.ok, r.error_code.as_str()), (14, false, "invalid_command"));

    // The heartbeat counts the sent message.
    loop {
        if let Seen::Msg { kind: worker_message::Kind::Heartbeat(b), .. } = h.next().await
            && b.message_count == 1
        {
            assert_eq!(b.session_count, 1);
            break;
        }
    }

    // Drain is exposed on the handle.
    assert!(!handle.drain_requested());
    h.send(control_message::Kind::Drain(v1::Drain { reason: "maintenance".into() })).await;
    tokio::time::timeout(WAIT, async {
        while !handle.drain_requested() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();

    handle.shutdown().await;
    h.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_with_held_sessions_applies_fencing_and_flushes_queued_events() {
    let mut h = Harness::start().await;
    let driver = fast_driver();
    let handle = Worker::spawn(h.config("w2"), driver.clone());
    h.hello().await;
    assert!(handle.wait_connected(WAIT).await);

    for (i, id) in ["a", "b"].into_iter().enumerate() {
        let start =
            v1::StartSession { session_id: id.into(), generation: 7, name: id.into(), auth_state: None };
        h.command(i as u64 + 1, 5000, command::Kind::StartSession(start)).await;
        assert!(h.result().await.ok);
    }
    assert!(driver.scan("a"));

    // The control plane refuses for a while, then drops the stream.
    h.fake.script.lock().unwrap().reject = true;
    h.drop_stream();
    loop {
        if let Seen::End { conn, .. } = h.next().await {
            assert_eq!(conn, 1);
            break;
        }
    }
    assert!(handle.wait_disconnected(WAIT).await);
    // Events emitted while disconnected wait in the queue.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!handle.state().is_connected());
    assert!(driver.inject_inbound("a", "628999@s.whatsapp.net", "while you were away"));

    // Back: Hello lists both sessions with their generation; "b" is fenced.
    {
        let mut script = h.fake.script.lock().unwrap();
        script.reject = false;
        script.stop_sessions = vec!["b".into()];
    }
    let (conn, hello, _) = h.hello().await;
    assert_eq!(conn, 2);
    let mut held: Vec<_> = hello.sessions.iter().map(|s| (s.session_id.clone(), s.generation)).collect();
    held.sort();
    assert_eq!(held, vec![("a".to_owned(), 7), ("b".to_owned(), 7)]);
    assert!(handle.wait_connected(WAIT).await);
    assert_eq!(handle.connect_count(), 2);
    assert_eq!(handle.connection_generation(), Some(2));
    assert_eq!(driver.session_ids(), vec!["a".to_owned()]);

    // The queued inbound message arrives on the new stream (after any events
    // still queued from before).
    loop {
        let e = h.event().await;
        if let Some(event::Kind::InboundMessage(m)) = e.kind {
            assert_eq!(e.session_id, "a");
            assert_eq!(m.content.map(|c| c.text).as_deref(), Some("while you were away"));
            break;
        }
    }

    handle.shutdown().await;
    h.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_says_goodbye_and_kill_does_not() {
    let mut h = Harness::start().await;
    let handle = Worker::spawn(h.config("w3"), fast_driver());
    h.hello().await;
    assert!(handle.wait_connected(WAIT).await);
    let mut state = handle.subscribe();
    handle.shutdown_with_reason("rolling update").await;
    let mut goodbye = None;
    loop {
        match h.next().await {
            Seen::Msg { kind: worker_message::Kind::Goodbye(g), .. } => goodbye = Some(g.reason),
            Seen::End { error, .. } => {
                assert!(!error, "graceful close");
                break;
            }
            _ => {}
        }
    }
    assert_eq!(goodbye.as_deref(), Some("rolling update"));
    assert_eq!(*state.borrow_and_update(), ConnectionState::Stopped);

    let handle = Worker::spawn(h.config("w4"), fast_driver());
    h.hello().await;
    assert!(handle.wait_connected(WAIT).await);
    handle.kill().await;
    loop {
        match h.next().await {
            Seen::Msg { kind: worker_message::Kind::Goodbye(_), .. } => {
                panic!("a killed worker says no goodbye")
            }
            Seen::End { conn, .. } => {
                assert_eq!(conn, 2);
                break;
            }
            _ => {}
        }
    }
    h.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_worker_sends_no_heartbeats_and_answers_nothing() {
    let mut h = Harness::start().await;
    let handle = Worker::spawn(h.config("w5"), fast_driver());
    h.hello().await;
    assert!(handle.wait_connected(WAIT).await);

    handle.pause_heartbeats(true);
    assert!(handle.heartbeats_paused());
    tokio::time::sleep(Duration::from_millis(150)).await;
    while h.seen.try_recv().is_ok() {}
    h.command(1, 5000, command::Kind::GetStatus(v1::GetStatus { session_id: "x".into() })).await;
    let quiet = tokio::time::timeout(Duration::from_millis(400), h.seen.recv()).await;
    assert!(quiet.is_err(), "paused worker sent {quiet:?}");
    assert!(handle.state().is_connected(), "connection stays open");

    handle.pause_heartbeats(false);
    loop {
        if let Seen::Msg { kind: worker_message::Kind::Heartbeat(_), .. } = h.next().await {
            break;
        }
    }
    h.command(2, 5000, command::Kind::GetStatus(v1::GetStatus { session_id: "x".into() })).await;
    let r = h.result().await;
    assert_eq!((r.request_id, r.error_code.as_str()), (2, "unknown_session"));
    handle.kill().await;
    h.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_token_keeps_backing_off() {
    let h = Harness::start().await;
    let mut config = h.config("w6");
    config.token = "wrong".into();
    let handle = Worker::spawn(config, fast_driver());
    assert!(!handle.wait_connected(Duration::from_millis(400)).await);
    assert_eq!(handle.connect_count(), 0);
    assert!(matches!(handle.state(), ConnectionState::Backoff | ConnectionState::Connecting));
    handle.shutdown().await;
    h.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_control_plane_then_shutdown_is_prompt() {
    // Bind and drop to get a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let mut config = WorkerConfig::new(format!("http://127.0.0.1:{port}"), TOKEN, "w7");
    config.backoff_base = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(50);
    let handle = Worker::spawn(config, fast_driver());
    let mut states = handle.subscribe();
    tokio::time::timeout(WAIT, states.wait_for(|s| *s == ConnectionState::Backoff)).await.unwrap().unwrap();
    let started = std::time::Instant::now();
    handle.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(*states.borrow(), ConnectionState::Stopped);
}

/// A driver whose sends take a while, to fill the command semaphore.
struct SlowDriver;

#[async_trait]
impl SessionDriver for SlowDriver {
    async fn start_session(&self, _: v1::StartSession, _: EventSink) -> Result<(), DriverError> {
        Ok(())
    }
    async fn stop_session(&self, _: v1::StopSession) -> Result<(), DriverError> {
        Ok(())
    }
    async fn logout(&self, _: v1::Logout) -> Result<(), DriverError> {
        Ok(())
    }
    async fn send_message(&self, cmd: v1::SendMessage) -> Result<v1::SendReceipt, DriverError> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(v1::SendReceipt { wa_message_id: format!("W-{}", cmd.message_id) })
    }
    async fn get_status(&self, cmd: v1::GetStatus) -> Result<v1::SessionState, DriverError> {
        Err(DriverError::unknown_session(&cmd.session_id))
    }
    fn held_sessions(&self) -> Vec<v1::HeldSession> {
        Vec::new()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_past_their_deadline_are_refused_and_shutdown_waits_for_in_flight() {
    let mut h = Harness::start().await;
    let mut config = h.config("w8");
    config.command_concurrency = 1;
    let handle: WorkerHandle = Worker::spawn(config, Arc::new(SlowDriver));
    h.hello().await;
    assert!(handle.wait_connected(WAIT).await);

    h.command(1, 5000, command::Kind::SendMessage(text("s", "m1"))).await;
    h.command(2, 100, command::Kind::SendMessage(text("s", "m2"))).await;
    let first = h.result().await;
    assert_eq!((first.request_id, first.ok), (1, true));
    let second = h.result().await;
    assert_eq!((second.request_id, second.ok, second.error_code.as_str()), (2, false, "deadline_exceeded"));

    // In-flight work finishes before the stream closes; new work is refused.
    h.command(3, 5000, command::Kind::SendMessage(text("s", "m3"))).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let shutdown = tokio::spawn(handle.shutdown());
    let mut finished = false;
    let mut goodbye = false;
    loop {
        match h.next().await {
            Seen::Msg { kind: worker_message::Kind::Goodbye(_), .. } => goodbye = true,
            Seen::Msg { kind: worker_message::Kind::Result(r), .. } => {
                assert_eq!((r.request_id, r.ok), (3, true));
                finished = true;
            }
            Seen::End { .. } => break,
            _ => {}
        }
    }
    assert!(goodbye && finished);
    shutdown.await.unwrap();
    h.stop.cancel();
}
