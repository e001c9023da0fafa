//! One running WhatsApp session: the whatsapp-rust bot on its custody store,
//! and the three tasks beside it — the event pump (library events → wagate
//! events, in order), the custody flusher (debounced snapshots of the durable
//! store) and the connect watchdog (a connection that never comes up is
//! reported, while the library keeps retrying with backoff).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use wagate_proto::v1::{self, SessionStatus};
use wagate_worker_sdk::events::{self as sdk_events, EventSink};
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::types::events::{Event, EventHandler};
use whatsapp_rust::{Client, TokioRuntime};

use crate::WhatsAppConfig;
use crate::events::{self, Mapped};
use crate::store::CustodyStore;

/// How many sent messages a session remembers (WhatsApp id → wagate id) to
/// map receipts back.
const SENT_INDEX: usize = 4096;
/// Library events waiting for the pump.
const EVENT_QUEUE: usize = 1024;
/// How long a stop waits for the library's own flush and disconnect.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// The sessions of a driver, shared with the sessions themselves (a logged-out
/// session removes itself).
pub(crate) type Registry = Mutex<HashMap<String, Arc<Session>>>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the control plane last heard, and where to tell it more.
pub(crate) struct State {
    pub generation: u64,
    pub sink: EventSink,
    pub status: SessionStatus,
    pub phone: Option<String>,
    pub qr: Option<String>,
    /// The watchdog reported the current outage already.
    pub stalled: bool,
}

/// WhatsApp id → wagate id of recent sends, bounded.
#[derive(Default)]
struct SentIndex {
    by_wa: HashMap<String, String>,
    order: VecDeque<String>,
}

impl SentIndex {
    fn insert(&mut self, wa_id: String, message_id: String) {
        if self.by_wa.insert(wa_id.clone(), message_id).is_none() {
            self.order.push_back(wa_id);
            while self.order.len() > SENT_INDEX {
                if let Some(old) = self.order.pop_front() {
                    self.by_wa.remove(&old);
                }
            }
        }
    }
}

pub(crate) struct Session {
    pub id: String,
    pub store: Arc<CustodyStore>,
    pub client: Arc<Client>,
    pub state: Mutex<State>,
    handle: tokio::sync::Mutex<Option<BotHandle>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    sent: Mutex<SentIndex>,
}

/// Hands library events to the pump without blocking the library's dispatch.
struct Forward {
    tx: mpsc::Sender<Arc<Event>>,
    session_id: String,
}

impl EventHandler for Forward {
    fn handle_event(&self, event: Arc<Event>) {
        if self.tx.try_send(event).is_err() {
            warn!(session_id = %self.session_id, "whatsapp event queue full: event dropped");
        }
    }
}

impl Session {
    /// Builds the bot on `store`, starts it and the tasks around it.
    pub async fn start(
        config: &Arc<WhatsAppConfig>,
        registry: Weak<Registry>,
        cmd: &v1::StartSession,
        sink: EventSink,
        store: CustodyStore,
    ) -> Result<Arc<Self>, String> {
        let store = Arc::new(store);
        let paired = store.is_paired();
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let mut transport = whatsapp_rust::transport::TokioWebSocketTransportFactory::new();
        if let Some(url) = &config.server_url {
            transport = transport.with_url(url.clone());
        }
        let mut builder = Bot::builder()
            .with_backend_arc(store.clone())
            .with_transport_factory(transport)
            .with_http_client(whatsapp_rust::http::UreqHttpClient::new())
            .with_runtime(TokioRuntime)
            .skip_history_sync()
            .with_event_handler(Forward { tx, session_id: cmd.session_id.clone() });
        if let Some(version) = config.version {
            builder = builder.with_version(version);
        }
        let bot = builder.build().await.map_err(|e| format!("cannot build the whatsapp client: {e}"))?;
        let client = bot.client();
        // Unpaired: INIT until the first QR code (which reports QR_REQUIRED).
        let status = if paired { SessionStatus::Reconnecting } else { SessionStatus::Init };
        let session = Arc::new(Session {
            id: cmd.session_id.clone(),
            store: store.clone(),
            client,
            state: Mutex::new(State {
                generation: cmd.generation,
                sink,
                status,
                phone: store.phone_number(),
                qr: None,
                stalled: false,
            }),
            handle: tokio::sync::Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            sent: Mutex::new(SentIndex::default()),
        });
        if paired {
            session.report(SessionStatus::Reconnecting, None).await;
        }
        let pump = tokio::spawn(pump(session.clone(), registry, rx));
        let flusher = tokio::spawn(flusher(session.clone(), config.flush_debounce));
        let watchdog = tokio::spawn(watchdog(session.clone(), config.connect_timeout));
        lock(&session.tasks).extend([pump, flusher, watchdog]);
        *session.handle.lock().await = Some(bot.spawn());
        info!(session_id = %session.id, paired, "whatsapp session started");
        Ok(session)
    }

    /// Remembers the wagate id of a sent WhatsApp id.
    pub fn record_sent(&self, wa_id: String, message_id: String) {
        lock(&self.sent).insert(wa_id, message_id);
    }

    fn sent_id(&self, wa_id: &str) -> Option<String> {
        lock(&self.sent).by_wa.get(wa_id).cloned()
    }

    fn sink(&self) -> (EventSink, u64) {
        let s = lock(&self.state);
        (s.sink.clone(), s.generation)
    }

    /// Records and reports a status change (nothing when unchanged and reasonless).
    async fn report(&self, status: SessionStatus, reason: Option<String>) {
        let (sink, generation, phone) = {
            let mut s = lock(&self.state);
            if s.status == status && reason.is_none() {
                return;
            }
            s.status = status;
            if status != SessionStatus::QrRequired {
                s.qr = None;
            }
            (s.sink.clone(), s.generation, s.phone.clone())
        };
        let _ = sink.status(&self.id, generation, status, phone, reason).await;
    }

    /// Sends the current custody snapshot (when paired) and waits for it to be queued.
    pub async fn flush_custody(&self) {
        if !self.store.is_paired() {
            return;
        }
        match self.store.snapshot() {
            Ok(data) => {
                let (sink, generation) = self.sink();
                debug!(session_id = %self.id, bytes = data.len(), "custody snapshot");
                let _ = sink.auth_state(&self.id, generation, data).await;
            }
            Err(e) => warn!(session_id = %self.id, error = %e, "cannot snapshot the whatsapp store"),
        }
    }

    /// Pushes the library's in-memory device into the store, then snapshots.
    async fn flush_device_and_custody(&self) {
        if let Err(e) = self.client.persistence_manager().flush().await {
            warn!(session_id = %self.id, error = %e, "cannot flush the whatsapp device");
        }
        self.flush_custody().await;
    }

    /// Stops the client (its flush first), takes the final snapshot and ends the tasks.
    pub async fn stop(&self, final_flush: bool) {
        let handle = self.handle.lock().await.take();
        if let Some(handle) = handle {
            // What `BotHandle::shutdown` does (the library's flush, then the
            // run loop ends), bounded: a client that hangs is cut.
            if tokio::time::timeout(SHUTDOWN_WAIT, self.client.disconnect()).await.is_err() {
                warn!(session_id = %self.id, "whatsapp client did not stop in time: aborted");
            }
            handle.abort();
        }
        if final_flush {
            self.flush_custody().await;
        }
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }

    /// Unlinks the device from the phone, wipes custody and stops.
    pub async fn logout(&self) {
        if tokio::time::timeout(SHUTDOWN_WAIT, self.client.logout()).await.is_err() {
            warn!(session_id = %self.id, "whatsapp logout did not finish in time");
        }
        self.store.wipe();
        self.stop(false).await;
    }

    pub fn status(&self) -> v1::SessionState {
        let s = lock(&self.state);
        v1::SessionState {
            session_id: self.id.clone(),
            status: s.status as i32,
            phone_number: s.phone.clone(),
            qr_code: s.qr.clone(),
        }
    }
}

/// Library events → wagate events, in order.
async fn pump(session: Arc<Session>, registry: Weak<Registry>, mut rx: mpsc::Receiver<Arc<Event>>) {
    while let Some(event) = rx.recv().await {
        match events::map(&event) {
            Mapped::Ignored => {}
            Mapped::Qr(code) => {
                let (sink, generation) = {
                    let mut s = lock(&session.state);
                    s.qr = Some(code.clone());
                    s.stalled = false;
                    (s.sink.clone(), s.generation)
                };
                let _ = sink.qr(&session.id, generation, code).await;
                session.report(SessionStatus::QrRequired, None).await;
            }
            Mapped::Paired { phone } => {
                info!(session_id = %session.id, "whatsapp device paired");
                lock(&session.state).phone = Some(phone);
                session.report(SessionStatus::Reconnecting, Some("paired".into())).await;
                session.flush_device_and_custody().await;
            }
            Mapped::Connected => {
                let phone =
                    session.client.pn().map(|j| j.user.to_string()).or_else(|| session.store.phone_number());
                {
                    let mut s = lock(&session.state);
                    if phone.is_some() {
                        s.phone = phone;
                    }
                    s.stalled = false;
                }
                session.report(SessionStatus::Connected, None).await;
                session.flush_device_and_custody().await;
            }
            Mapped::LoggedOut { reason } => {
                info!(session_id = %session.id, reason = %reason, "whatsapp session logged out");
                session.store.wipe();
                session.report(SessionStatus::Disconnected, Some(reason)).await;
                if let Some(registry) = registry.upgrade() {
                    let mut map = lock(&registry);
                    if map.get(&session.id).is_some_and(|s| Arc::ptr_eq(s, &session)) {
                        map.remove(&session.id);
                    }
                }
                let s = session.clone();
                tokio::spawn(async move { s.stop(false).await });
                return;
            }
            Mapped::Status { status, reason } => session.report(status, reason).await,
            Mapped::Receipts { wa_ids, status, error } => {
                let (sink, generation) = session.sink();
                for wa_id in wa_ids {
                    match session.sent_id(&wa_id) {
                        Some(id) => {
                            let _ = sink
                                .message_status(&session.id, generation, &id, status, error.clone())
                                .await;
                        }
                        None => {
                            debug!(session_id = %session.id, wa_id = %wa_id, "receipt for an unknown message")
                        }
                    }
                }
            }
        }
    }
}

/// Debounced custody snapshots: after a durable write, wait `debounce`
/// (coalescing the writes of a burst), then snapshot.
async fn flusher(session: Arc<Session>, debounce: Duration) {
    let mut revisions = session.store.revisions();
    loop {
        if revisions.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(debounce).await;
        revisions.mark_unchanged();
        session.flush_custody().await;
    }
}

/// Reports a connection that does not come up (no QR, no login) within `timeout`.
async fn watchdog(session: Arc<Session>, timeout: Duration) {
    loop {
        tokio::time::sleep(timeout).await;
        let stuck = {
            let mut s = lock(&session.state);
            let waiting_for_scan = s.qr.is_some() && s.status == SessionStatus::QrRequired;
            let stuck = !session.client.is_logged_in() && !waiting_for_scan && !s.stalled;
            if stuck {
                s.stalled = true;
            }
            stuck
        };
        if stuck {
            warn!(session_id = %session.id, "whatsapp connection did not come up");
            session
                .report(
                    SessionStatus::Error,
                    Some("connect_timeout: no answer from WhatsApp; retrying with backoff".into()),
                )
                .await;
        }
    }
}

/// The re-announcement of a running session placed again (new generation or sink).
pub(crate) fn reannounce(session: &Session) -> Vec<v1::Event> {
    let s = lock(&session.state);
    let mut evs = Vec::new();
    if let Some(qr) = &s.qr {
        evs.push(sdk_events::qr_event(&session.id, s.generation, qr.clone()));
    }
    evs.push(sdk_events::status_event(&session.id, s.generation, s.status, s.phone.clone(), None));
    evs
}
