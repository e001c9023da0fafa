//! `wagate-driver-whatsapp`: a [`SessionDriver`] on a real WhatsApp Web
//! (multi-device) connection through `whatsapp-rust` (pinned `=0.7.0`).
//!
//! - [`store`]: `CustodyStore`, the library's store kept in memory and
//!   snapshotted into the control plane's custody (`AuthStateSnapshot`), so a
//!   session moves to another worker without pairing again;
//! - [`session`]: one running session (the bot, its event pump, custody
//!   flusher and connect watchdog);
//! - [`events`]: library events → wagate events;
//! - [`send`]: wagate sends → WhatsApp messages, with the WhatsApp id derived
//!   from the wagate id.
//!
//! The server address can be moved (`WhatsAppConfig::server_url`, the worker's
//! `WAGATE_WA_SERVER_URL`) to an offline fake for tests.

pub mod cli;
pub mod events;
pub mod send;
pub(crate) mod session;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tracing::warn;
use wagate_proto::CommandSet;
use wagate_proto::v1;
use wagate_worker_sdk::driver::codes;
use wagate_worker_sdk::{DriverError, EventSink, SessionDriver};
use whatsapp_rust::send::{SendError, SendOptions};

use session::{Registry, Session, lock};
use store::CustodyStore;

/// How the driver reaches WhatsApp.
#[derive(Debug, Clone)]
pub struct WhatsAppConfig {
    /// The WebSocket address of the WhatsApp server; `None`: WhatsApp's own
    /// (`wss://web.whatsapp.com/ws/chat`). Tests point it at a loopback fake.
    pub server_url: Option<String>,
    /// The WhatsApp Web version to announce; `None`: fetched from
    /// web.whatsapp.com at start. Tests set it (no internet).
    pub version: Option<(u32, u32, u32)>,
    /// A connection that neither shows a QR code nor logs in within this
    /// time is reported (status ERROR, reason `connect_timeout`).
    pub connect_timeout: Duration,
    /// Custody snapshots wait this long after a write (coalescing bursts).
    pub flush_debounce: Duration,
}

impl Default for WhatsAppConfig {
    fn default() -> Self {
        Self {
            server_url: None,
            version: None,
            connect_timeout: Duration::from_secs(30),
            flush_debounce: Duration::from_millis(250),
        }
    }
}

/// The WhatsApp driver: one whatsapp-rust client per session.
#[derive(Clone)]
pub struct WhatsAppDriver {
    config: Arc<WhatsAppConfig>,
    sessions: Arc<Registry>,
}

impl WhatsAppDriver {
    pub fn new(config: WhatsAppConfig) -> Self {
        Self { config: Arc::new(config), sessions: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// Sessions running now.
    pub fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }

    fn session(&self, session_id: &str, generation: u64) -> Result<Arc<Session>, DriverError> {
        let session = lock(&self.sessions)
            .get(session_id)
            .cloned()
            .ok_or_else(|| DriverError::unknown_session(session_id))?;
        let current = lock(&session.state).generation;
        if generation != 0 && generation < current {
            return Err(DriverError::stale_generation(session_id, generation, current));
        }
        Ok(session)
    }

    /// Test hook: the device identity key of a running session.
    pub fn identity_public_key(&self, session_id: &str) -> Option<Vec<u8>> {
        lock(&self.sessions).get(session_id).and_then(|s| s.store.identity_public_key())
    }
}

#[async_trait]
impl SessionDriver for WhatsAppDriver {
    async fn start_session(&self, cmd: v1::StartSession, sink: EventSink) -> Result<(), DriverError> {
        if cmd.session_id.is_empty() {
            return Err(DriverError::new("invalid_session", "session_id is required"));
        }
        let running = lock(&self.sessions).get(&cmd.session_id).cloned();
        if let Some(session) = running {
            let evs = {
                let mut s = lock(&session.state);
                if cmd.generation < s.generation {
                    return Err(DriverError::stale_generation(&cmd.session_id, cmd.generation, s.generation));
                }
                let newer = cmd.generation > s.generation;
                s.sink = sink.clone();
                s.generation = cmd.generation;
                newer
            };
            if evs {
                for ev in session::reannounce(&session) {
                    let _ = sink.emit(ev).await;
                }
            }
            return Ok(());
        }
        let store = match cmd.auth_state.as_deref() {
            Some(data) => CustodyStore::restore(data).unwrap_or_else(|e| {
                // A blob this driver cannot read (another driver's, or corrupt):
                // pair again rather than refuse the session.
                warn!(session_id = %cmd.session_id, error = %e, "custody snapshot unreadable: pairing again");
                CustodyStore::new()
            }),
            None => CustodyStore::new(),
        };
        let session = Session::start(&self.config, Arc::downgrade(&self.sessions), &cmd, sink, store)
            .await
            .map_err(DriverError::internal)?;
        let previous = lock(&self.sessions).insert(cmd.session_id.clone(), session);
        if let Some(previous) = previous {
            // Two starts raced: keep the newest, stop the other.
            previous.stop(false).await;
        }
        Ok(())
    }

    async fn stop_session(&self, cmd: v1::StopSession) -> Result<(), DriverError> {
        let session = match self.session(&cmd.session_id, cmd.generation) {
            Ok(s) => s,
            Err(e) if e.code == codes::UNKNOWN_SESSION => return Ok(()),
            Err(e) => return Err(e),
        };
        lock(&self.sessions).remove(&cmd.session_id);
        session.stop(true).await;
        Ok(())
    }

    async fn logout(&self, cmd: v1::Logout) -> Result<(), DriverError> {
        let session = self.session(&cmd.session_id, cmd.generation)?;
        lock(&self.sessions).remove(&cmd.session_id);
        session.logout().await;
        let (sink, generation) = {
            let s = lock(&session.state);
            (s.sink.clone(), s.generation)
        };
        let _ = sink
            .status(
                &cmd.session_id,
                generation,
                v1::SessionStatus::Disconnected,
                None,
                Some("logged_out".into()),
            )
            .await;
        Ok(())
    }

    async fn send_message(&self, cmd: v1::SendMessage) -> Result<v1::SendReceipt, DriverError> {
        let session = self.session(&cmd.session_id, cmd.generation)?;
        let content =
            cmd.content.as_ref().ok_or_else(|| DriverError::invalid_message("the message has no content"))?;
        let to = send::recipient(&cmd.to).map_err(|e| DriverError::invalid_message(e.to_string()))?;
        let message = send::build(content).map_err(|e| DriverError::invalid_message(e.to_string()))?;
        if !session.client.is_logged_in() {
            return Err(DriverError::not_connected(&cmd.session_id));
        }
        let wa_id = send::wa_message_id(&cmd.session_id, &cmd.message_id);
        // Recorded first: a receipt can race the send's return.
        session.record_sent(wa_id.clone(), cmd.message_id.clone());
        match session
            .client
            .send_message_with_options(to, message, SendOptions::default().with_message_id(wa_id.clone()))
            .await
        {
            Ok(_) => Ok(v1::SendReceipt { wa_message_id: wa_id }),
            Err(SendError::NotLoggedIn) => Err(DriverError::not_connected(&cmd.session_id)),
            Err(SendError::InvalidRequest(e)) => Err(DriverError::invalid_message(e.to_string())),
            Err(e) => Err(DriverError::internal(format!("whatsapp send failed: {e}"))),
        }
    }

    async fn get_status(&self, cmd: v1::GetStatus) -> Result<v1::SessionState, DriverError> {
        let session = self.session(&cmd.session_id, 0)?;
        Ok(session.status())
    }

    fn held_sessions(&self) -> Vec<v1::HeldSession> {
        lock(&self.sessions)
            .values()
            .map(|s| {
                let st = lock(&s.state);
                v1::HeldSession {
                    session_id: s.id.clone(),
                    generation: st.generation,
                    status: st.status as i32,
                }
            })
            .collect()
    }

    fn supported_commands(&self) -> CommandSet {
        CommandSet::BASELINE
    }
}
