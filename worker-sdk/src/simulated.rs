//! An in-memory [`SessionDriver`] that behaves like a WhatsApp client without
//! talking to WhatsApp: QR codes, pairing ("scanning"), resuming from an
//! auth-state snapshot, sends with de-duplication and DELIVERED/READ receipts,
//! inbound messages on demand.
//!
//! It is cheap enough for benchmarks (thousands of sessions, tens of thousands
//! of sends per second): state lives in sharded `std::sync::Mutex`es that are
//! never held across an `.await`, and receipts are emitted by short-lived
//! tasks that do not block the send's acknowledgement.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use tracing::{debug, info};
use wagate_proto::v1::{self, MessageStatus, MessageType, SessionStatus};
use wagate_proto::{CommandKind, CommandSet};

use crate::driver::{DriverError, SessionDriver};
use crate::events::{self, EventSink};

/// Behaviour of a [`SimulatedDriver`].
#[derive(Debug, Clone)]
pub struct SimulatedConfig {
    /// Scan the QR code automatically this long after it is shown (`None`:
    /// only [`SimulatedDriver::scan`] pairs a session).
    pub auto_scan_after: Option<Duration>,
    /// Time from RECONNECTING to CONNECTED when resuming from an auth state.
    pub connect_delay: Duration,
    /// Time from the send to the DELIVERED status: uniform between this and
    /// `delivered_after_max` (a range models real phones; equal: fixed).
    pub delivered_after: Duration,
    pub delivered_after_max: Duration,
    /// Time from DELIVERED to READ: uniform between this and `read_after_max`.
    pub read_after: Duration,
    pub read_after_max: Duration,
    /// Share of delivered messages that are read (0.0 to 1.0).
    pub read_share: f64,
    /// De-duplicate sends on the message id (a repeated id gets the first
    /// receipt and no second send). Off, every call sends: tests count side
    /// effects at the driver with [`SimulatedDriver::send_calls`] and
    /// [`SimulatedDriver::duplicate_sends`]. The SDK de-duplicates before
    /// the driver either way.
    pub dedup: bool,
    /// Country/operator prefix of the simulated phone numbers.
    pub phone_prefix: String,
    /// Message ids remembered per session for de-duplication (and returned by
    /// [`SimulatedDriver::sent_message_ids`]); the oldest are forgotten first.
    pub dedup_window: usize,
    /// Echo mode: every text sent is answered by an inbound message from
    /// the recipient this long after the send (`None`: off).
    pub echo_after: Option<Duration>,
    /// Time a send takes before its receipt (a real phone's socket write and
    /// server ack; zero: at once). Sends of one session overlap.
    pub send_latency: Duration,
}

impl Default for SimulatedConfig {
    fn default() -> Self {
        Self {
            auto_scan_after: None,
            connect_delay: Duration::from_millis(20),
            delivered_after: Duration::from_millis(50),
            delivered_after_max: Duration::from_millis(50),
            read_after: Duration::from_millis(100),
            read_after_max: Duration::from_millis(100),
            read_share: 1.0,
            dedup: true,
            phone_prefix: "628".to_owned(),
            dedup_window: 100_000,
            echo_after: None,
            send_latency: Duration::ZERO,
        }
    }
}

const SHARDS: usize = 16;
const AUTH_STATE_KIND: &str = "wagate-simulated";

/// What the simulated "credentials" hold: enough to come back as the same phone.
#[derive(Debug, Serialize, Deserialize)]
struct SimAuthState {
    kind: String,
    v: u32,
    session_id: String,
    phone: String,
    paired_at_ms: i64,
}

struct SimSession {
    /// Identifies this run of the session (scheduled tasks check it).
    instance: u64,
    generation: u64,
    name: String,
    status: SessionStatus,
    phone: Option<String>,
    qr: Option<String>,
    events: EventSink,
    receipts: HashMap<Arc<str>, u64>,
    order: VecDeque<Arc<str>>,
    sent: u64,
    /// Groups the simulated account is in (by id).
    groups: std::collections::BTreeMap<String, v1::GroupInfo>,
}

#[derive(Default)]
struct Shard {
    sessions: HashMap<String, SimSession>,
    /// Pairings kept across stop/start, like a real worker's credential store;
    /// forgotten on logout.
    paired: HashMap<String, String>,
}

/// The simulated driver. Create with [`SimulatedDriver::new`].
pub struct SimulatedDriver {
    config: SimulatedConfig,
    shards: Vec<Mutex<Shard>>,
    total_sent: AtomicU64,
    /// Every send performed (with de-duplication off, repeats too).
    send_calls: AtomicU64,
    /// Bytes of stored files fetched to send (`media_id` sends).
    media_bytes_fetched: AtomicU64,
    /// Commands of each kind that reached the driver, by `CommandKind as usize`.
    calls: Vec<AtomicU64>,
    /// Sends of a message id this driver had sent before (de-duplication off).
    duplicate_sends: AtomicU64,
    next_instance: AtomicU64,
    this: Weak<SimulatedDriver>,
}

impl std::fmt::Debug for SimulatedDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedDriver")
            .field("config", &self.config)
            .field("sessions", &self.session_count())
            .field("total_sent", &self.total_sent())
            .finish()
    }
}

impl SimulatedDriver {
    pub fn new(config: SimulatedConfig) -> Arc<Self> {
        Arc::new_cyclic(|this| Self {
            config,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            total_sent: AtomicU64::new(0),
            send_calls: AtomicU64::new(0),
            media_bytes_fetched: AtomicU64::new(0),
            calls: CommandKind::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            duplicate_sends: AtomicU64::new(0),
            next_instance: AtomicU64::new(1),
            this: this.clone(),
        })
    }

    pub fn config(&self) -> &SimulatedConfig {
        &self.config
    }

    fn shard(&self, session_id: &str) -> MutexGuard<'_, Shard> {
        let index = usize::try_from(fnv1a(session_id.as_bytes()) % SHARDS as u64).unwrap_or(0);
        self.shards[index].lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn each_shard(&self) -> impl Iterator<Item = MutexGuard<'_, Shard>> {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The phone number a session gets when it is paired (deterministic).
    pub fn phone_for(&self, session_id: &str) -> String {
        format!("{}{:09}", self.config.phone_prefix, fnv1a(session_id.as_bytes()) % 1_000_000_000)
    }

    /// The phone number an auth-state blob of this driver resumes, if it is one.
    pub fn auth_state_phone(data: &[u8]) -> Option<String> {
        serde_json::from_slice::<SimAuthState>(data)
            .ok()
            .filter(|s| s.kind == AUTH_STATE_KIND && !s.phone.is_empty())
            .map(|s| s.phone)
    }

    /// An auth-state blob for a session paired with `phone`.
    pub fn encode_auth_state(session_id: &str, phone: &str) -> Vec<u8> {
        let state = SimAuthState {
            kind: AUTH_STATE_KIND.to_owned(),
            v: 1,
            session_id: session_id.to_owned(),
            phone: phone.to_owned(),
            paired_at_ms: events::now_ms(),
        };
        serde_json::to_vec(&state).unwrap_or_default()
    }

    /// Simulates the user scanning the QR code of a session waiting for it:
    /// the session becomes CONNECTED with its phone number and an auth-state
    /// snapshot is emitted. `false` if the session is not waiting for a scan.
    #[cfg(any(test, feature = "test-util"))]
    pub fn scan(&self, session_id: &str) -> bool {
        match self.pair(session_id, None) {
            Some((sink, evs)) => {
                emit_in_order(sink, evs);
                true
            }
            None => false,
        }
    }

    /// Simulates the phone side changing a running session's status (the
    /// connection drops: `RECONNECTING`, `DISCONNECTED`, with an optional
    /// reason such as `logged_out`); `false` if the session is not running.
    #[cfg(any(test, feature = "test-util"))]
    pub fn set_status(&self, session_id: &str, status: SessionStatus, reason: Option<&str>) -> bool {
        let (sink, ev) = {
            let mut shard = self.shard(session_id);
            let Some(s) = shard.sessions.get_mut(session_id) else { return false };
            s.status = status;
            let ev = events::status_event(
                session_id,
                s.generation,
                status,
                s.phone.clone(),
                reason.map(str::to_owned),
            );
            (s.events.clone(), ev)
        };
        emit_in_order(sink, vec![ev]);
        true
    }

    fn pair(&self, session_id: &str, instance: Option<u64>) -> Option<(EventSink, Vec<v1::Event>)> {
        let phone = self.phone_for(session_id);
        let mut guard = self.shard(session_id);
        let shard = &mut *guard;
        let session = shard.sessions.get_mut(session_id)?;
        if instance.is_some_and(|i| i != session.instance) || session.status != SessionStatus::QrRequired {
            return None;
        }
        session.status = SessionStatus::Connected;
        session.phone = Some(phone.clone());
        session.qr = None;
        shard.paired.insert(session_id.to_owned(), phone.clone());
        let generation = session.generation;
        info!(session_id, phone = %phone, "simulated session paired");
        let evs = vec![
            events::status_event(session_id, generation, SessionStatus::Connected, Some(phone.clone()), None),
            events::auth_state_event(session_id, generation, Self::encode_auth_state(session_id, &phone)),
        ];
        Some((session.events.clone(), evs))
    }

    /// Simulates an inbound text message from `from`; `false` if the session
    /// is not running and connected.
    #[cfg(any(test, feature = "test-util"))]
    pub fn inject_inbound(&self, session_id: &str, from: &str, text: &str) -> bool {
        let content = v1::MessageContent {
            r#type: MessageType::Text as i32,
            text: text.to_owned(),
            ..Default::default()
        };
        self.inject_inbound_content(session_id, from, content)
    }

    /// Simulates any inbound message (tests of hostile worker input).
    #[cfg(any(test, feature = "test-util"))]
    pub fn inject_inbound_content(&self, session_id: &str, from: &str, content: v1::MessageContent) -> bool {
        let (sink, generation) = {
            let shard = self.shard(session_id);
            match shard.sessions.get(session_id) {
                Some(s) if s.status == SessionStatus::Connected => (s.events.clone(), s.generation),
                _ => return false,
            }
        };
        let event = events::inbound_event(
            session_id,
            generation,
            wa_id(rand::random()),
            from,
            content,
            events::now_ms(),
        );
        emit_in_order(sink, vec![event]);
        true
    }

    /// Ids of the running sessions.
    #[cfg(any(test, feature = "test-util"))]
    pub fn session_ids(&self) -> Vec<String> {
        self.each_shard().flat_map(|s| s.sessions.keys().cloned().collect::<Vec<_>>()).collect()
    }

    /// Number of running sessions.
    pub fn session_count(&self) -> usize {
        self.each_shard().map(|s| s.sessions.len()).sum()
    }

    /// Status of a running session.
    #[cfg(any(test, feature = "test-util"))]
    pub fn session_status(&self, session_id: &str) -> Option<SessionStatus> {
        self.shard(session_id).sessions.get(session_id).map(|s| s.status)
    }

    /// Generation a running session was started with.
    #[cfg(any(test, feature = "test-util"))]
    pub fn session_generation(&self, session_id: &str) -> Option<u64> {
        self.shard(session_id).sessions.get(session_id).map(|s| s.generation)
    }

    /// Name a running session was started with.
    #[cfg(any(test, feature = "test-util"))]
    pub fn session_name(&self, session_id: &str) -> Option<String> {
        self.shard(session_id).sessions.get(session_id).map(|s| s.name.clone())
    }

    /// Phone number of a running, paired session.
    #[cfg(any(test, feature = "test-util"))]
    pub fn phone_number(&self, session_id: &str) -> Option<String> {
        self.shard(session_id).sessions.get(session_id).and_then(|s| s.phone.clone())
    }

    /// Current QR code of a session waiting for a scan.
    #[cfg(any(test, feature = "test-util"))]
    pub fn qr_code(&self, session_id: &str) -> Option<String> {
        self.shard(session_id).sessions.get(session_id).and_then(|s| s.qr.clone())
    }

    /// Unique messages sent by a running session.
    #[cfg(any(test, feature = "test-util"))]
    pub fn sent_count(&self, session_id: &str) -> u64 {
        self.shard(session_id).sessions.get(session_id).map_or(0, |s| s.sent)
    }

    /// Unique messages sent by all sessions since the driver was created.
    pub fn total_sent(&self) -> u64 {
        self.total_sent.load(Ordering::Relaxed)
    }

    /// Bytes of stored files this driver fetched to send them.
    pub fn media_bytes_fetched(&self) -> u64 {
        self.media_bytes_fetched.load(Ordering::Relaxed)
    }

    /// Every send this driver performed (a WhatsApp message going out),
    /// repeats included when de-duplication is off.
    pub fn send_calls(&self) -> u64 {
        self.send_calls.load(Ordering::Relaxed)
    }

    /// Commands of `kind` that reached this driver (counted for every
    /// command but start and send, which have counters of their own).
    pub fn calls(&self, kind: CommandKind) -> u64 {
        self.calls.get(kind as usize).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn count(&self, kind: CommandKind) {
        if let Some(c) = self.calls.get(kind as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A command for a session this driver runs, CONNECTED, of its generation or newer.
    /// Echo mode: the event `kind` of the session, from the simulated
    /// phone, after the echo delay (nothing when echo is off).
    fn echo_later(&self, session_id: &str, kind: v1::event::Kind) {
        let Some(after) = self.config.echo_after else { return };
        let (sink, generation) = {
            let shard = self.shard(session_id);
            match shard.sessions.get(session_id) {
                Some(s) => (s.events.clone(), s.generation),
                None => return,
            }
        };
        let session_id = session_id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = sink.emit(v1::Event { session_id, generation, kind: Some(kind) }).await;
        });
    }

    fn connected(&self, session_id: &str, generation: u64) -> Result<(), DriverError> {
        let shard = self.shard(session_id);
        let s = shard.sessions.get(session_id).ok_or_else(|| DriverError::unknown_session(session_id))?;
        if generation != 0 && generation < s.generation {
            return Err(DriverError::stale_generation(session_id, generation, s.generation));
        }
        if s.status != SessionStatus::Connected {
            return Err(DriverError::not_connected(session_id));
        }
        Ok(())
    }

    /// Sends of a message id the session had already sent (only with
    /// de-duplication off; with it on, repeats are answered, not sent).
    pub fn duplicate_sends(&self) -> u64 {
        self.duplicate_sends.load(Ordering::Relaxed)
    }

    /// Message ids sent by a running session, oldest first (at most
    /// `dedup_window` of them).
    #[cfg(any(test, feature = "test-util"))]
    pub fn sent_message_ids(&self, session_id: &str) -> Vec<String> {
        self.shard(session_id)
            .sessions
            .get(session_id)
            .map(|s| s.order.iter().map(|id| id.to_string()).collect())
            .unwrap_or_default()
    }

    fn schedule_connect(&self, session_id: String, instance: u64) {
        let weak = self.this.clone();
        let delay = self.config.connect_delay;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(this) = weak.upgrade() else { return };
            let out = {
                let mut shard = this.shard(&session_id);
                match shard.sessions.get_mut(&session_id) {
                    Some(s) if s.instance == instance && s.status == SessionStatus::Reconnecting => {
                        s.status = SessionStatus::Connected;
                        debug!(session_id = %session_id, "simulated session resumed");
                        Some((
                            s.events.clone(),
                            events::status_event(
                                &session_id,
                                s.generation,
                                SessionStatus::Connected,
                                s.phone.clone(),
                                None,
                            ),
                        ))
                    }
                    _ => None,
                }
            };
            if let Some((sink, event)) = out {
                let _ = sink.emit(event).await;
            }
        });
    }

    fn schedule_auto_scan(&self, session_id: String, instance: u64, after: Duration) {
        let weak = self.this.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let Some(this) = weak.upgrade() else { return };
            let out = this.pair(&session_id, Some(instance));
            drop(this);
            if let Some((sink, evs)) = out {
                emit_all(&sink, evs).await;
            }
        });
    }
}

#[async_trait]
impl SessionDriver for SimulatedDriver {
    async fn start_session(&self, cmd: v1::StartSession, sink: EventSink) -> Result<(), DriverError> {
        let session_id = cmd.session_id;
        if session_id.is_empty() {
            return Err(DriverError::new("invalid_session", "session_id is required"));
        }
        let resume_phone = cmd.auth_state.as_deref().and_then(Self::auth_state_phone);
        let bad_auth_state = cmd.auth_state.is_some() && resume_phone.is_none();

        enum Next {
            Nothing,
            Connect(u64),
            AutoScan(u64, Duration),
        }
        let (evs, next) = {
            let mut guard = self.shard(&session_id);
            let shard = &mut *guard;
            if let Some(s) = shard.sessions.get_mut(&session_id) {
                if cmd.generation < s.generation {
                    return Err(DriverError::stale_generation(&session_id, cmd.generation, s.generation));
                }
                s.events = sink.clone();
                if cmd.generation == s.generation {
                    return Ok(());
                }
                // Placed again on this worker with a newer generation: re-announce the state.
                s.generation = cmd.generation;
                if !cmd.name.is_empty() {
                    s.name = cmd.name;
                }
                let mut evs = Vec::new();
                if let Some(qr) = &s.qr {
                    evs.push(events::qr_event(&session_id, s.generation, qr.clone()));
                }
                evs.push(events::status_event(&session_id, s.generation, s.status, s.phone.clone(), None));
                (evs, Next::Nothing)
            } else {
                let instance = self.next_instance.fetch_add(1, Ordering::Relaxed);
                let from_auth_state = resume_phone.is_some();
                let phone = match resume_phone {
                    Some(phone) => Some(phone),
                    None if cmd.auth_state.is_none() => shard.paired.get(&session_id).cloned(),
                    None => None,
                };
                let mut session = SimSession {
                    instance,
                    generation: cmd.generation,
                    name: cmd.name,
                    status: SessionStatus::QrRequired,
                    phone: None,
                    qr: None,
                    events: sink.clone(),
                    receipts: HashMap::new(),
                    order: VecDeque::new(),
                    sent: 0,
                    groups: Default::default(),
                };
                let out = if let Some(phone) = phone {
                    if from_auth_state {
                        shard.paired.insert(session_id.clone(), phone.clone());
                    }
                    session.status = SessionStatus::Reconnecting;
                    session.phone = Some(phone.clone());
                    let evs = vec![events::status_event(
                        &session_id,
                        cmd.generation,
                        SessionStatus::Reconnecting,
                        Some(phone),
                        None,
                    )];
                    (evs, Next::Connect(instance))
                } else {
                    let qr = new_qr();
                    session.qr = Some(qr.clone());
                    let reason = bad_auth_state.then(|| "auth state not usable, pairing again".to_owned());
                    let evs = vec![
                        events::qr_event(&session_id, cmd.generation, qr),
                        events::status_event(
                            &session_id,
                            cmd.generation,
                            SessionStatus::QrRequired,
                            None,
                            reason,
                        ),
                    ];
                    let next = match self.config.auto_scan_after {
                        Some(after) => Next::AutoScan(instance, after),
                        None => Next::Nothing,
                    };
                    (evs, next)
                };
                shard.sessions.insert(session_id.clone(), session);
                out
            }
        };
        debug!(session_id = %session_id, generation = cmd.generation, "simulated session started");
        emit_all(&sink, evs).await;
        match next {
            Next::Nothing => {}
            Next::Connect(instance) => self.schedule_connect(session_id, instance),
            Next::AutoScan(instance, after) => self.schedule_auto_scan(session_id, instance, after),
        }
        Ok(())
    }

    async fn stop_session(&self, cmd: v1::StopSession) -> Result<(), DriverError> {
        self.count(CommandKind::StopSession);
        let mut shard = self.shard(&cmd.session_id);
        if let Some(s) = shard.sessions.get(&cmd.session_id) {
            if cmd.generation != 0 && cmd.generation < s.generation {
                return Err(DriverError::stale_generation(&cmd.session_id, cmd.generation, s.generation));
            }
            shard.sessions.remove(&cmd.session_id);
            debug!(session_id = %cmd.session_id, "simulated session stopped");
        }
        Ok(())
    }

    async fn logout(&self, cmd: v1::Logout) -> Result<(), DriverError> {
        self.count(CommandKind::Logout);
        let removed = {
            let mut shard = self.shard(&cmd.session_id);
            if let Some(s) = shard.sessions.get(&cmd.session_id)
                && cmd.generation != 0
                && cmd.generation < s.generation
            {
                return Err(DriverError::stale_generation(&cmd.session_id, cmd.generation, s.generation));
            }
            shard.paired.remove(&cmd.session_id);
            shard.sessions.remove(&cmd.session_id)
        };
        if let Some(s) = removed {
            debug!(session_id = %cmd.session_id, "simulated session logged out");
            let event = events::status_event(
                &cmd.session_id,
                s.generation,
                SessionStatus::Disconnected,
                None,
                Some("logged_out".to_owned()),
            );
            let _ = s.events.emit(event).await;
        }
        Ok(())
    }

    async fn send_message(&self, cmd: v1::SendMessage) -> Result<v1::SendReceipt, DriverError> {
        if !self.config.send_latency.is_zero() {
            tokio::time::sleep(self.config.send_latency).await;
        }
        let (receipt, sink, generation) = {
            let mut shard = self.shard(&cmd.session_id);
            let Some(s) = shard.sessions.get_mut(&cmd.session_id) else {
                return Err(DriverError::unknown_session(&cmd.session_id));
            };
            if cmd.generation != 0 && cmd.generation < s.generation {
                return Err(DriverError::stale_generation(&cmd.session_id, cmd.generation, s.generation));
            }
            validate(&cmd)?;
            if s.status != SessionStatus::Connected {
                return Err(DriverError::not_connected(&cmd.session_id));
            }
            if let Some(n) = s.receipts.get(cmd.message_id.as_str()).copied() {
                if self.config.dedup {
                    // At-least-once delivery from the control plane: same id, same receipt, sent once.
                    return Ok(v1::SendReceipt { wa_message_id: wa_id(n) });
                }
                // De-duplication off: it goes out again (counted).
                self.duplicate_sends.fetch_add(1, Ordering::Relaxed);
                self.send_calls.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(message_id = %cmd.message_id, attempt = cmd.attempt, "simulated driver sent a message twice");
                return Ok(v1::SendReceipt { wa_message_id: wa_id(n) });
            }
            let n: u64 = rand::random();
            let id: Arc<str> = Arc::from(cmd.message_id.as_str());
            s.receipts.insert(id.clone(), n);
            s.order.push_back(id);
            while s.order.len() > self.config.dedup_window.max(1) {
                if let Some(old) = s.order.pop_front() {
                    s.receipts.remove(&old);
                }
            }
            s.sent += 1;
            (v1::SendReceipt { wa_message_id: wa_id(n) }, s.events.clone(), s.generation)
        };
        self.total_sent.fetch_add(1, Ordering::Relaxed);
        self.send_calls.fetch_add(1, Ordering::Relaxed);

        // A stored file is fetched as a real driver would before uploading it to WhatsApp.
        if let Some(media_id) = cmd.content.as_ref().and_then(|c| c.media_id.as_deref())
            && sink.has_media()
        {
            match sink.download_media(media_id).await {
                Ok(stream) => {
                    let mut stream = std::pin::pin!(stream);
                    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
                        match chunk {
                            Ok(b) => {
                                self.media_bytes_fetched.fetch_add(b.len() as u64, Ordering::Relaxed);
                            }
                            Err(e) => {
                                tracing::warn!(media_id, error = %e, "media download broke off");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(media_id, error = %e, "media to send not fetched"),
            }
        }
        if let (Some(after), Some(content)) = (self.config.echo_after, &cmd.content)
            && !content.text.is_empty()
            && MessageType::try_from(content.r#type).unwrap_or(MessageType::Text) == MessageType::Text
        {
            spawn_echo(sink.clone(), &cmd.session_id, generation, &cmd.to, &content.text, after);
        }
        if let (Some(after), Some(content)) = (self.config.echo_after, &cmd.content)
            && MessageType::try_from(content.r#type).ok() == Some(MessageType::Image)
        {
            spawn_image_echo(sink.clone(), &cmd.session_id, generation, &cmd.to, after);
        }
        let c = &self.config;
        let (delivered_after, read_after, read) = {
            let mut rng = rand::rng();
            (
                between(&mut rng, c.delivered_after, c.delivered_after_max),
                between(&mut rng, c.read_after, c.read_after_max),
                c.read_share >= 1.0 || (c.read_share > 0.0 && rng.random_bool(c.read_share)),
            )
        };
        let (session_id, message_id) = (cmd.session_id, cmd.message_id);
        // Echo mode: the read receipt also comes as one (`message.read`).
        let read_receipt = self.config.echo_after.is_some().then(|| v1::MessagesRead {
            chat_id: cmd.to.clone(),
            reader: cmd.to.split('@').next().unwrap_or_default().to_owned(),
            wa_message_ids: vec![receipt.wa_message_id.clone()],
            timestamp_ms: 0,
        });
        tokio::spawn(async move {
            tokio::time::sleep(delivered_after).await;
            let delivered = events::message_status_event(
                &session_id,
                generation,
                &message_id,
                MessageStatus::Delivered,
                None,
            );
            if sink.emit(delivered).await.is_err() || !read {
                return;
            }
            tokio::time::sleep(read_after).await;
            let read =
                events::message_status_event(&session_id, generation, &message_id, MessageStatus::Read, None);
            if sink.emit(read).await.is_err() {
                return;
            }
            if let Some(mut r) = read_receipt {
                r.timestamp_ms = events::now_ms();
                let event = v1::Event { session_id, generation, kind: Some(v1::event::Kind::Read(r)) };
                let _ = sink.emit(event).await;
            }
        });
        Ok(receipt)
    }

    async fn get_status(&self, cmd: v1::GetStatus) -> Result<v1::SessionState, DriverError> {
        let shard = self.shard(&cmd.session_id);
        let s = shard
            .sessions
            .get(&cmd.session_id)
            .ok_or_else(|| DriverError::unknown_session(&cmd.session_id))?;
        Ok(v1::SessionState {
            session_id: cmd.session_id.clone(),
            status: s.status as i32,
            phone_number: s.phone.clone(),
            qr_code: s.qr.clone(),
        })
    }

    async fn check_numbers(&self, cmd: v1::CheckNumbers) -> Result<v1::NumberChecks, DriverError> {
        self.connected(&cmd.session_id, cmd.generation)?;
        self.count(CommandKind::CheckNumbers);
        let numbers = cmd
            .numbers
            .into_iter()
            .map(|number| {
                let exists = simulated_number_exists(&number);
                let jid = exists.then(|| format!("{number}@s.whatsapp.net"));
                v1::NumberCheck { number, exists, jid }
            })
            .collect();
        Ok(v1::NumberChecks { numbers })
    }

    async fn mark_read(&self, cmd: v1::MarkRead) -> Result<(), DriverError> {
        self.connected(&cmd.session_id, cmd.generation)?;
        if cmd.message_ids.is_empty() {
            return Err(DriverError::invalid_message("no message ids to mark read"));
        }
        self.count(CommandKind::MarkRead);
        debug!(session_id = %cmd.session_id, chat_id = %cmd.chat_id, count = cmd.message_ids.len(), "simulated read receipts");
        Ok(())
    }

    async fn send_presence(&self, cmd: v1::SendPresence) -> Result<(), DriverError> {
        self.connected(&cmd.session_id, cmd.generation)?;
        let state = v1::PresenceState::try_from(cmd.state).unwrap_or(v1::PresenceState::Unspecified);
        let in_chat = matches!(
            state,
            v1::PresenceState::Composing | v1::PresenceState::Recording | v1::PresenceState::Paused
        );
        if state == v1::PresenceState::Unspecified || (in_chat && cmd.chat_id.is_empty()) {
            return Err(DriverError::invalid_message("a chat presence needs a chat and a state"));
        }
        self.count(CommandKind::SendPresence);
        Ok(())
    }

    async fn send_reaction(&self, cmd: v1::SendReaction) -> Result<(), DriverError> {
        self.connected(&cmd.session_id, cmd.generation)?;
        if cmd.wa_message_id.is_empty() || cmd.chat_id.is_empty() {
            return Err(DriverError::invalid_message("a reaction needs a chat and a message id"));
        }
        self.count(CommandKind::SendReaction);
        // The simulated peer reacts back the same way (echo mode): the
        // `message.reaction` path runs end to end without a phone.
        let from = cmd.chat_id.split('@').next().unwrap_or_default().to_owned();
        let kind = v1::event::Kind::Reaction(v1::ReactionReceived {
            wa_message_id: cmd.wa_message_id,
            from,
            emoji: cmd.emoji,
            timestamp_ms: events::now_ms(),
        });
        self.echo_later(&cmd.session_id, kind);
        Ok(())
    }

    async fn edit_message(&self, cmd: v1::EditMessage) -> Result<(), DriverError> {
        self.connected(&cmd.session_id, cmd.generation)?;
        if cmd.wa_message_id.is_empty() || cmd.chat_id.is_empty() || cmd.text.is_empty() {
            return Err(DriverError::invalid_message("an edit needs a chat, a message id and a text"));
        }
        self.count(CommandKind::EditMessage);
        // The account's own edit comes back from WhatsApp (multi-device).
        let kind = v1::event::Kind::Edited(v1::MessageEdited {
            wa_message_id: cmd.wa_message_id,
            chat_id: cmd.chat_id,
            from_me: true,
            text: cmd.text,
            timestamp_ms: events::now_ms(),
        });
        self.echo_later(&cmd.session_id, kind);
        Ok(())
    }

    async fn delete_message(&self, cmd: v1::DeleteMessage) -> Result<(), DriverError> {
        self.connected(&cmd.session_id, cmd.generation)?;
        if cmd.wa_message_id.is_empty() || cmd.chat_id.is_empty() {
            return Err(DriverError::invalid_message("a deletion needs a chat and a message id"));
        }
        self.count(CommandKind::DeleteMessage);
        let kind = v1::event::Kind::Deleted(v1::MessageDeleted {
            wa_message_id: cmd.wa_message_id,
            chat_id: cmd.chat_id,
            from_me: true,
            timestamp_ms: events::now_ms(),
        });
        self.echo_later(&cmd.session_id, kind);
        Ok(())
    }

    async fn list_groups(&self, cmd: v1::ListGroups) -> Result<v1::GroupList, DriverError> {
        self.connected(&cmd.session_id, cmd.generation)?;
        self.count(CommandKind::ListGroups);
        let shard = self.shard(&cmd.session_id);
        let groups = shard.sessions.get(&cmd.session_id).map(|s| s.groups.values().cloned().collect());
        Ok(v1::GroupList { groups: groups.unwrap_or_default() })
    }

    async fn get_group(&self, cmd: v1::GetGroup) -> Result<v1::GroupInfo, DriverError> {
        self.connected(&cmd.session_id, cmd.generation)?;
        self.count(CommandKind::GetGroup);
        let shard = self.shard(&cmd.session_id);
        shard
            .sessions
            .get(&cmd.session_id)
            .and_then(|s| s.groups.get(&cmd.group_id).cloned())
            .ok_or_else(|| DriverError::not_found(format!("the account is not in group {}", cmd.group_id)))
    }

    async fn create_group(&self, cmd: v1::CreateGroup) -> Result<v1::GroupInfo, DriverError> {
        self.connected(&cmd.session_id, cmd.generation)?;
        if cmd.subject.trim().is_empty() || cmd.participants.is_empty() {
            return Err(DriverError::invalid_message("a group needs a subject and participants"));
        }
        self.count(CommandKind::CreateGroup);
        let (group, sink, generation) = {
            let mut shard = self.shard(&cmd.session_id);
            let Some(s) = shard.sessions.get_mut(&cmd.session_id) else {
                return Err(DriverError::unknown_session(&cmd.session_id));
            };
            let me = format!("{}@s.whatsapp.net", s.phone.clone().unwrap_or_default());
            let id = format!("120363{:012}@g.us", rand::random::<u64>() % 1_000_000_000_000);
            let mut participants = vec![v1::GroupParticipant { jid: me.clone(), admin: true }];
            participants.extend(
                cmd.participants.iter().map(|p| v1::GroupParticipant { jid: p.clone(), admin: false }),
            );
            let group = v1::GroupInfo {
                id: id.clone(),
                subject: cmd.subject.trim().to_owned(),
                owner: Some(me),
                participants,
                created_at_ms: events::now_ms(),
            };
            s.groups.insert(id, group.clone());
            (group, s.events.clone(), s.generation)
        };
        // WhatsApp announces the members added at creation.
        let event = v1::Event {
            session_id: cmd.session_id,
            generation,
            kind: Some(v1::event::Kind::GroupParticipants(v1::GroupParticipantsChanged {
                group_id: group.id.clone(),
                action: "add".into(),
                participants: cmd.participants,
                by: group.owner.clone(),
            })),
        };
        let _ = sink.emit(event).await;
        Ok(group)
    }

    async fn update_group_participants(
        &self,
        cmd: v1::UpdateGroupParticipants,
    ) -> Result<v1::GroupInfo, DriverError> {
        self.connected(&cmd.session_id, cmd.generation)?;
        if cmd.add.is_empty() && cmd.remove.is_empty() {
            return Err(DriverError::invalid_message("nothing to add or remove"));
        }
        self.count(CommandKind::UpdateGroupParticipants);
        let (group, sink, generation) = {
            let mut shard = self.shard(&cmd.session_id);
            let Some(s) = shard.sessions.get_mut(&cmd.session_id) else {
                return Err(DriverError::unknown_session(&cmd.session_id));
            };
            let Some(g) = s.groups.get_mut(&cmd.group_id) else {
                return Err(DriverError::not_found(format!("the account is not in group {}", cmd.group_id)));
            };
            g.participants.retain(|p| !cmd.remove.contains(&p.jid));
            for jid in &cmd.add {
                if !g.participants.iter().any(|p| &p.jid == jid) {
                    g.participants.push(v1::GroupParticipant { jid: jid.clone(), admin: false });
                }
            }
            (g.clone(), s.events.clone(), s.generation)
        };
        for (action, who) in [("add", cmd.add), ("remove", cmd.remove)] {
            if who.is_empty() {
                continue;
            }
            let event = v1::Event {
                session_id: cmd.session_id.clone(),
                generation,
                kind: Some(v1::event::Kind::GroupParticipants(v1::GroupParticipantsChanged {
                    group_id: group.id.clone(),
                    action: action.into(),
                    participants: who,
                    by: group.owner.clone(),
                })),
            };
            let _ = sink.emit(event).await;
        }
        Ok(group)
    }

    async fn leave_group(&self, cmd: v1::LeaveGroup) -> Result<(), DriverError> {
        self.connected(&cmd.session_id, cmd.generation)?;
        self.count(CommandKind::LeaveGroup);
        let mut shard = self.shard(&cmd.session_id);
        let left = shard.sessions.get_mut(&cmd.session_id).and_then(|s| s.groups.remove(&cmd.group_id));
        match left {
            Some(_) => Ok(()),
            None => Err(DriverError::not_found(format!("the account is not in group {}", cmd.group_id))),
        }
    }

    fn supported_commands(&self) -> CommandSet {
        CommandSet::ALL
    }

    fn held_sessions(&self) -> Vec<v1::HeldSession> {
        self.each_shard()
            .flat_map(|shard| {
                shard
                    .sessions
                    .iter()
                    .map(|(id, s)| v1::HeldSession {
                        session_id: id.clone(),
                        generation: s.generation,
                        status: s.status as i32,
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Uniform in `[min, max]` (`min` when `max <= min`).
fn between(rng: &mut impl Rng, min: Duration, max: Duration) -> Duration {
    if max <= min {
        return min;
    }
    let (lo, hi) = (min.as_micros() as u64, max.as_micros() as u64);
    Duration::from_micros(rng.random_range(lo..=hi))
}

fn validate(cmd: &v1::SendMessage) -> Result<(), DriverError> {
    if cmd.message_id.trim().is_empty() {
        return Err(DriverError::invalid_message("message_id is required"));
    }
    if cmd.to.trim().is_empty() {
        return Err(DriverError::invalid_message("recipient (to) is required"));
    }
    let Some(content) = &cmd.content else {
        return Err(DriverError::invalid_message("content is required"));
    };
    let filled = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.trim().is_empty());
    let ok = match MessageType::try_from(content.r#type).unwrap_or(MessageType::Unspecified) {
        MessageType::Unspecified | MessageType::Text => !content.text.trim().is_empty(),
        MessageType::Image
        | MessageType::Document
        | MessageType::Audio
        | MessageType::Video
        | MessageType::Sticker => filled(&content.media_url) || filled(&content.media_id),
        MessageType::Location => content.latitude.is_some() && content.longitude.is_some(),
        MessageType::Contact => filled(&content.phone) || filled(&content.vcard),
    };
    if ok { Ok(()) } else { Err(DriverError::invalid_message("content is empty for its message type")) }
}

/// Emits events in order, waiting for room in the queue.
async fn emit_all(sink: &EventSink, evs: Vec<v1::Event>) {
    for event in evs {
        if sink.emit(event).await.is_err() {
            return;
        }
    }
}

/// Emits events in order from synchronous code: queued at once while there is
/// room, the rest from a task (when inside a tokio runtime). Used by the test hooks.
#[cfg(any(test, feature = "test-util"))]
fn emit_in_order(sink: EventSink, evs: Vec<v1::Event>) {
    use crate::events::EmitError;
    let mut evs = evs.into_iter();
    while let Some(event) = evs.next() {
        match sink.try_emit(event.clone()) {
            Ok(()) => {}
            Err(EmitError::Closed) => return,
            Err(EmitError::Full) => {
                let rest: Vec<_> = std::iter::once(event).chain(evs).collect();
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(async move { emit_all(&sink, rest).await });
                } else {
                    tracing::warn!(
                        dropped = rest.len(),
                        "event queue full outside a runtime, events dropped"
                    );
                }
                return;
            }
        }
    }
}

/// A small real PNG (16×16, a gradient): what the simulated phone "receives".
pub fn echo_png() -> Vec<u8> {
    const SIDE: u32 = 16;
    let pixels: Vec<u8> =
        (0..SIDE * SIDE).flat_map(|i| [(i % SIDE * 16) as u8, (i / SIDE * 16) as u8, 128]).collect();
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, SIDE, SIDE);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let written =
        encoder.write_header().and_then(|mut w| w.write_image_data(&pixels).and_then(|()| w.finish()));
    if let Err(e) = written {
        tracing::warn!(error = %e, "echo image not encoded");
    }
    out
}

/// Echo mode for images: the recipient answers with a picture of its own,
/// downloaded ("decrypted") and stored like a real driver would: streamed to
/// the control plane first, then the inbound message naming the stored file.
fn spawn_image_echo(sink: EventSink, session_id: &str, generation: u64, to: &str, after: Duration) {
    let (session_id, from) = (session_id.to_owned(), to.to_owned());
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let file = crate::media::InboundFile {
            session_id: session_id.clone(),
            generation,
            kind: MessageType::Image,
            filename: "echo.png".into(),
            mime_type: "image/png".into(),
        };
        let png = bytes::Bytes::from(echo_png());
        let stored = match sink.upload_media(file, futures::stream::iter([png])).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(session_id, error = %e, "echo image not stored");
                return;
            }
        };
        let content = v1::MessageContent {
            r#type: MessageType::Image as i32,
            caption: Some("echo".into()),
            media_id: Some(stored.id),
            mime_type: Some(stored.mime_type),
            media_size: Some(stored.size),
            ..Default::default()
        };
        let event = events::inbound_event(
            &session_id,
            generation,
            wa_id(rand::random()),
            &from,
            content,
            events::now_ms(),
        );
        let _ = sink.emit(event).await;
    });
}

/// Echo mode: the recipient "answers" a text with `echo: <text>` after `after`.
fn spawn_echo(sink: EventSink, session_id: &str, generation: u64, to: &str, text: &str, after: Duration) {
    let content = v1::MessageContent {
        r#type: MessageType::Text as i32,
        text: format!("echo: {text}"),
        ..Default::default()
    };
    let (session_id, from) = (session_id.to_owned(), to.to_owned());
    tokio::spawn(async move {
        tokio::time::sleep(after / 2).await;
        // The contact types before answering (a `presence` event, opt-in).
        let typing = v1::PresenceUpdate {
            chat_id: from.clone(),
            from: from.split('@').next().unwrap_or_default().to_owned(),
            state: v1::PresenceState::Composing as i32,
        };
        let event = v1::Event {
            session_id: session_id.clone(),
            generation,
            kind: Some(v1::event::Kind::Presence(typing)),
        };
        if sink.emit(event).await.is_err() {
            return;
        }
        tokio::time::sleep(after / 2).await;
        let event = events::inbound_event(
            &session_id,
            generation,
            wa_id(rand::random()),
            &from,
            content,
            events::now_ms(),
        );
        let _ = sink.emit(event).await;
    });
}

fn wa_id(n: u64) -> String {
    format!("SIM{n:016X}")
}

fn new_qr() -> String {
    let mut rng = rand::rng();
    let mut part =
        |n: usize| (&mut rng).sample_iter(&Alphanumeric).take(n).map(char::from).collect::<String>();
    let reference = part(24);
    let key = part(43);
    let identity = part(43);
    format!("2@sim-{reference},{key}=,{identity}=")
}

/// FNV-1a: a stable hash (same value across processes and Rust versions).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The simulated phone's answer to "is this number on WhatsApp": a number
/// of plausible length (8 to 15 digits) whose last digit is not 0. The
/// `…0` rule gives tests and demos a number that does not exist.
fn simulated_number_exists(number: &str) -> bool {
    (8..=15).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit()) && !number.ends_with('0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;
    use v1::event::Kind;

    fn fast() -> SimulatedConfig {
        SimulatedConfig {
            connect_delay: Duration::from_millis(5),
            delivered_after: Duration::from_millis(10),
            delivered_after_max: Duration::from_millis(10),
            read_after: Duration::from_millis(10),
            read_after_max: Duration::from_millis(10),
            ..Default::default()
        }
    }

    fn start(id: &str, generation: u64, auth_state: Option<Vec<u8>>) -> v1::StartSession {
        v1::StartSession { session_id: id.into(), generation, name: format!("name-{id}"), auth_state }
    }

    fn text(id: &str, message_id: &str) -> v1::SendMessage {
        v1::SendMessage {
            session_id: id.into(),
            generation: 0,
            message_id: message_id.into(),
            to: "6281234567890@s.whatsapp.net".into(),
            content: Some(v1::MessageContent {
                r#type: MessageType::Text as i32,
                text: "hello".into(),
                ..Default::default()
            }),
            attempt: 1,
        }
    }

    async fn next(rx: &mut mpsc::Receiver<v1::Event>) -> v1::Event {
        tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .expect("event in time")
            .expect("queue open")
    }

    fn status_of(event: &v1::Event) -> Option<(SessionStatus, Option<String>)> {
        match &event.kind {
            Some(Kind::Status(s)) => Some((s.status(), s.phone_number.clone())),
            _ => None,
        }
    }

    /// Starts a session, scans it and returns the auth-state snapshot.
    async fn paired(
        driver: &SimulatedDriver,
        id: &str,
        rx: &mut mpsc::Receiver<v1::Event>,
        sink: &EventSink,
    ) -> Vec<u8> {
        driver.start_session(start(id, 1, None), sink.clone()).await.unwrap();
        next(rx).await; // qr
        next(rx).await; // QR_REQUIRED
        assert!(driver.scan(id));
        next(rx).await; // CONNECTED
        match next(rx).await.kind {
            Some(Kind::AuthState(a)) => a.data,
            other => panic!("expected auth state, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn qr_then_scan_connects_and_emits_auth_state() {
        let driver = SimulatedDriver::new(fast());
        let (sink, mut rx) = EventSink::channel(64);
        driver.start_session(start("s1", 1, None), sink.clone()).await.unwrap();

        let qr = next(&mut rx).await;
        let code = match &qr.kind {
            Some(Kind::Qr(q)) => q.code.clone(),
            other => panic!("expected qr, got {other:?}"),
        };
        assert!(code.starts_with("2@sim-"), "{code}");
        assert_eq!((qr.session_id.as_str(), qr.generation), ("s1", 1));
        assert_eq!(status_of(&next(&mut rx).await), Some((SessionStatus::QrRequired, None)));
        assert_eq!(driver.session_status("s1"), Some(SessionStatus::QrRequired));

        let state = driver.get_status(v1::GetStatus { session_id: "s1".into() }).await.unwrap();
        assert_eq!(state.status(), SessionStatus::QrRequired);
        assert_eq!(state.qr_code.as_deref(), Some(code.as_str()));
        assert_eq!(driver.session_name("s1").as_deref(), Some("name-s1"));

        // Cannot send before pairing.
        let err = driver.send_message(text("s1", "m0")).await.unwrap_err();
        assert_eq!(err.code, "not_connected");

        assert!(driver.scan("s1"));
        assert!(!driver.scan("s1"), "second scan has nothing to do");
        assert!(!driver.scan("nope"));
        let phone = driver.phone_for("s1");
        assert!(phone.starts_with("628") && phone.len() == 12, "{phone}");
        assert_eq!(status_of(&next(&mut rx).await), Some((SessionStatus::Connected, Some(phone.clone()))));
        match next(&mut rx).await.kind {
            Some(Kind::AuthState(a)) => {
                assert_eq!(SimulatedDriver::auth_state_phone(&a.data), Some(phone.clone()))
            }
            other => panic!("expected auth state, got {other:?}"),
        }
        let state = driver.get_status(v1::GetStatus { session_id: "s1".into() }).await.unwrap();
        assert_eq!(state.status(), SessionStatus::Connected);
        assert_eq!(state.phone_number, Some(phone));
        assert_eq!(state.qr_code, None);
        let held = driver.held_sessions();
        assert_eq!(held.len(), 1);
        assert_eq!((held[0].session_id.as_str(), held[0].generation), ("s1", 1));
        assert_eq!(held[0].status(), SessionStatus::Connected);
    }

    #[tokio::test]
    async fn auto_scan_pairs_after_the_delay() {
        let driver = SimulatedDriver::new(SimulatedConfig {
            auto_scan_after: Some(Duration::from_millis(20)),
            ..fast()
        });
        let (sink, mut rx) = EventSink::channel(64);
        driver.start_session(start("s1", 1, None), sink).await.unwrap();
        next(&mut rx).await;
        next(&mut rx).await;
        assert_eq!(status_of(&next(&mut rx).await).map(|s| s.0), Some(SessionStatus::Connected));
        assert!(matches!(next(&mut rx).await.kind, Some(Kind::AuthState(_))));
        assert_eq!(driver.session_status("s1"), Some(SessionStatus::Connected));
    }

    #[tokio::test]
    async fn resume_with_auth_state_skips_qr() {
        let first = SimulatedDriver::new(fast());
        let (sink, mut rx) = EventSink::channel(64);
        let auth = paired(&first, "s1", &mut rx, &sink).await;
        let phone = first.phone_for("s1");

        // Another worker (failover) gets the snapshot with a newer generation.
        let second = SimulatedDriver::new(SimulatedConfig { phone_prefix: "999".into(), ..fast() });
        let (sink2, mut rx2) = EventSink::channel(64);
        second.start_session(start("s1", 2, Some(auth)), sink2).await.unwrap();
        let reconnecting = next(&mut rx2).await;
        assert_eq!(reconnecting.generation, 2);
        assert_eq!(status_of(&reconnecting), Some((SessionStatus::Reconnecting, Some(phone.clone()))));
        let connected = next(&mut rx2).await;
        assert_eq!(status_of(&connected), Some((SessionStatus::Connected, Some(phone.clone()))));
        assert_eq!(second.phone_number("s1"), Some(phone));
        assert_eq!(second.qr_code("s1"), None);
        second.send_message(text("s1", "m1")).await.unwrap();
    }

    #[tokio::test]
    async fn unusable_auth_state_falls_back_to_qr() {
        let driver = SimulatedDriver::new(fast());
        let (sink, mut rx) = EventSink::channel(64);
        driver.start_session(start("s1", 1, Some(b"garbage".to_vec())), sink).await.unwrap();
        assert!(matches!(next(&mut rx).await.kind, Some(Kind::Qr(_))));
        match next(&mut rx).await.kind {
            Some(Kind::Status(s)) => {
                assert_eq!(s.status(), SessionStatus::QrRequired);
                assert!(s.reason.is_some());
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn send_is_deduplicated_and_reports_delivered_then_read() {
        let driver = SimulatedDriver::new(fast());
        let (sink, mut rx) = EventSink::channel(64);
        paired(&driver, "s1", &mut rx, &sink).await;

        let first = driver.send_message(text("s1", "m1")).await.unwrap();
        let again = driver.send_message(text("s1", "m1")).await.unwrap();
        assert!(first.wa_message_id.starts_with("SIM") && first.wa_message_id.len() == 19, "{first:?}");
        assert_eq!(first, again, "same message id, same receipt");
        let other = driver.send_message(text("s1", "m2")).await.unwrap();
        assert_ne!(first, other);
        assert_eq!(driver.sent_count("s1"), 2);
        assert_eq!(driver.total_sent(), 2);
        assert_eq!(driver.sent_message_ids("s1"), vec!["m1".to_owned(), "m2".to_owned()]);

        let mut seen = Vec::new();
        for _ in 0..4 {
            match next(&mut rx).await.kind {
                Some(Kind::MessageStatus(m)) => seen.push((m.message_id.clone(), m.status())),
                other => panic!("expected a message status, got {other:?}"),
            }
        }
        let order = |id: &str| seen.iter().filter(|(m, _)| m == id).map(|(_, s)| *s).collect::<Vec<_>>();
        assert_eq!(order("m1"), vec![MessageStatus::Delivered, MessageStatus::Read]);
        assert_eq!(order("m2"), vec![MessageStatus::Delivered, MessageStatus::Read]);
        // The duplicate produced no extra status events.
        assert!(tokio::time::timeout(Duration::from_millis(60), rx.recv()).await.is_err());
    }

    #[tokio::test]
    async fn without_dedup_every_send_counts_and_unread_messages_stop_at_delivered() {
        let driver = SimulatedDriver::new(SimulatedConfig {
            dedup: false,
            read_share: 0.0,
            delivered_after: Duration::from_millis(5),
            delivered_after_max: Duration::from_millis(15),
            ..fast()
        });
        let (sink, mut rx) = EventSink::channel(64);
        paired(&driver, "s1", &mut rx, &sink).await;
        let first = driver.send_message(text("s1", "m1")).await.unwrap();
        let again = driver.send_message(text("s1", "m1")).await.unwrap();
        assert_eq!(first, again);
        assert_eq!((driver.send_calls(), driver.duplicate_sends(), driver.total_sent()), (2, 1, 1));
        match next(&mut rx).await.kind {
            Some(Kind::MessageStatus(m)) => assert_eq!(m.status(), MessageStatus::Delivered),
            other => panic!("expected DELIVERED, got {other:?}"),
        }
        // read_share 0: no READ follows.
        assert!(tokio::time::timeout(Duration::from_millis(80), rx.recv()).await.is_err());
    }

    #[test]
    fn delays_are_drawn_from_their_range() {
        let mut rng = rand::rng();
        let (lo, hi) = (Duration::from_millis(10), Duration::from_millis(20));
        for _ in 0..100 {
            let d = between(&mut rng, lo, hi);
            assert!(d >= lo && d <= hi, "{d:?}");
        }
        assert_eq!(between(&mut rng, hi, lo), hi, "max below min: fixed at min");
    }

    #[tokio::test]
    async fn send_errors() {
        let driver = SimulatedDriver::new(fast());
        let (sink, mut rx) = EventSink::channel(64);
        let err = driver.send_message(text("ghost", "m1")).await.unwrap_err();
        assert_eq!(err.code, "unknown_session");

        driver.start_session(start("s1", 1, None), sink.clone()).await.unwrap();
        next(&mut rx).await;
        next(&mut rx).await;
        assert_eq!(driver.send_message(text("s1", "m1")).await.unwrap_err().code, "not_connected");
        driver.stop_session(v1::StopSession { session_id: "s1".into(), generation: 1 }).await.unwrap();
        paired(&driver, "s2", &mut rx, &sink).await;

        let mut no_to = text("s2", "m1");
        no_to.to.clear();
        assert_eq!(driver.send_message(no_to).await.unwrap_err().code, "invalid_message");
        let mut no_content = text("s2", "m1");
        no_content.content = None;
        assert_eq!(driver.send_message(no_content).await.unwrap_err().code, "invalid_message");
        let mut empty_text = text("s2", "m1");
        if let Some(c) = empty_text.content.as_mut() {
            c.text = "  ".into();
        }
        assert_eq!(driver.send_message(empty_text).await.unwrap_err().code, "invalid_message");
        let mut image_without_url = text("s2", "m1");
        if let Some(c) = image_without_url.content.as_mut() {
            c.r#type = MessageType::Image as i32;
        }
        assert_eq!(driver.send_message(image_without_url).await.unwrap_err().code, "invalid_message");
        assert_eq!(driver.sent_count("s2"), 0);
        assert_eq!(driver.total_sent(), 0);

        let err = driver.get_status(v1::GetStatus { session_id: "ghost".into() }).await.unwrap_err();
        assert_eq!(err.code, "unknown_session");
    }

    #[tokio::test]
    async fn generations_fence_commands() {
        let driver = SimulatedDriver::new(fast());
        let (sink, mut rx) = EventSink::channel(64);
        driver.start_session(start("s1", 5, None), sink.clone()).await.unwrap();
        next(&mut rx).await;
        next(&mut rx).await;

        // Same generation: idempotent, no new events.
        driver.start_session(start("s1", 5, None), sink.clone()).await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(30), rx.recv()).await.is_err());

        // Older generation: refused.
        let err = driver.start_session(start("s1", 4, None), sink.clone()).await.unwrap_err();
        assert_eq!(err.code, "stale_generation");
        let err = driver
            .stop_session(v1::StopSession { session_id: "s1".into(), generation: 3 })
            .await
            .unwrap_err();
        assert_eq!(err.code, "stale_generation");
        assert_eq!(driver.session_status("s1"), Some(SessionStatus::QrRequired));

        // Newer generation: adopted, state re-announced under it.
        driver.start_session(start("s1", 6, None), sink.clone()).await.unwrap();
        let qr = next(&mut rx).await;
        assert!(matches!(qr.kind, Some(Kind::Qr(_))));
        assert_eq!(qr.generation, 6);
        assert_eq!(driver.session_generation("s1"), Some(6));
        assert!(driver.scan("s1"));
        next(&mut rx).await; // QR_REQUIRED (re-announced)
        assert_eq!(next(&mut rx).await.generation, 6); // CONNECTED
        let mut old = text("s1", "m1");
        old.generation = 5;
        assert_eq!(driver.send_message(old).await.unwrap_err().code, "stale_generation");
    }

    #[tokio::test]
    async fn stop_keeps_pairing_and_logout_forgets_it() {
        let driver = SimulatedDriver::new(fast());
        let (sink, mut rx) = EventSink::channel(64);
        paired(&driver, "s1", &mut rx, &sink).await;

        driver.stop_session(v1::StopSession { session_id: "s1".into(), generation: 1 }).await.unwrap();
        assert!(driver.session_ids().is_empty());
        assert_eq!(driver.session_status("s1"), None);
        // Stopping again (or an unknown session) is fine.
        driver.stop_session(v1::StopSession { session_id: "s1".into(), generation: 1 }).await.unwrap();

        // Restart without auth state: the remembered pairing resumes it.
        driver.start_session(start("s1", 2, None), sink.clone()).await.unwrap();
        assert_eq!(status_of(&next(&mut rx).await).map(|s| s.0), Some(SessionStatus::Reconnecting));
        assert_eq!(status_of(&next(&mut rx).await).map(|s| s.0), Some(SessionStatus::Connected));

        driver.logout(v1::Logout { session_id: "s1".into(), generation: 2 }).await.unwrap();
        match next(&mut rx).await.kind {
            Some(Kind::Status(s)) => {
                assert_eq!(s.status(), SessionStatus::Disconnected);
                assert_eq!(s.reason.as_deref(), Some("logged_out"));
            }
            other => panic!("{other:?}"),
        }
        assert!(driver.session_ids().is_empty());
        // After logout a new start needs a QR again.
        driver.start_session(start("s1", 3, None), sink).await.unwrap();
        assert!(matches!(next(&mut rx).await.kind, Some(Kind::Qr(_))));
    }

    #[tokio::test]
    async fn inbound_messages_are_injected_for_connected_sessions() {
        let driver = SimulatedDriver::new(fast());
        let (sink, mut rx) = EventSink::channel(64);
        assert!(!driver.inject_inbound("s1", "628111@s.whatsapp.net", "hi"));
        paired(&driver, "s1", &mut rx, &sink).await;
        assert!(driver.inject_inbound("s1", "628111@s.whatsapp.net", "hi"));
        match next(&mut rx).await.kind {
            Some(Kind::InboundMessage(m)) => {
                assert_eq!(m.from, "628111@s.whatsapp.net");
                assert_eq!(m.content.map(|c| c.text), Some("hi".to_owned()));
                assert!(m.wa_message_id.starts_with("SIM"));
                assert!(m.timestamp_ms > 0);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn many_sessions_and_sends_are_cheap() {
        let driver = SimulatedDriver::new(SimulatedConfig {
            delivered_after: Duration::from_millis(1),
            read_after: Duration::from_millis(1),
            ..fast()
        });
        let (sink, mut rx) = EventSink::channel(1 << 16);
        // Keep the queue drained.
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        for i in 0..1000 {
            let id = format!("s{i}");
            driver.start_session(start(&id, 1, None), sink.clone()).await.unwrap();
            assert!(driver.scan(&id));
        }
        assert_eq!(driver.session_count(), 1000);
        assert_eq!(driver.held_sessions().len(), 1000);
        let started = std::time::Instant::now();
        for n in 0..20_000 {
            driver.send_message(text(&format!("s{}", n % 1000), &format!("m{n}"))).await.unwrap();
        }
        assert_eq!(driver.total_sent(), 20_000);
        assert_eq!(driver.sent_count("s7"), 20);
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        drop(sink);
        drop(driver);
        drain.abort();
    }

    #[test]
    fn phone_numbers_are_deterministic() {
        let a = SimulatedDriver::new(SimulatedConfig::default());
        let b = SimulatedDriver::new(SimulatedConfig::default());
        assert_eq!(a.phone_for("session-1"), b.phone_for("session-1"));
        assert_ne!(a.phone_for("session-1"), a.phone_for("session-2"));
        assert!(a.phone_for("x").chars().all(|c| c.is_ascii_digit()));
        let blob = SimulatedDriver::encode_auth_state("s", "628000000001");
        assert_eq!(SimulatedDriver::auth_state_phone(&blob).as_deref(), Some("628000000001"));
        assert_eq!(SimulatedDriver::auth_state_phone(b"{}"), None);
    }
}
