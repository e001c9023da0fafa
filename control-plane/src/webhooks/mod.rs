//! Webhooks: the receive path. Events (the types of
//! [`wagate_proto::contract::events::EventType`]) are written to a durable outbox (`webhook_deliveries`) in the same
//! transaction as the state change that causes them, and a dispatcher
//! POSTs them, signed with the Standard Webhooks scheme, in order per
//! session, with retries on the Standard Webhooks schedule.
//!
//! ```text
//! events.rs / status_writer ── outbox::enqueue (same txn) ── webhook_deliveries
//!                                                                 │ claim (FOR UPDATE SKIP LOCKED, lease)
//!                                     dispatcher ── signing ── reqwest (ssrf-guarded resolver) ── receiver
//! ```
//!
//! - [`config`]: the per-session webhook cache (sessions without a webhook
//!   pay one in-memory lookup, no SQL), secrets and rows;
//! - [`payload`]: event ids and JSON bodies (types and payloads are the contract's);
//! - [`outbox`]: writing events next to the state change;
//! - [`dispatcher`]: claiming, sending, recording the outcome;
//! - [`retry`]: the retry schedule (injectable; tests use milliseconds);
//! - [`signing`]: `whsec_` secrets and `webhook-signature`;
//! - [`ssrf`]: which targets may be called;
//! - [`service`]: the gRPC `WebhookService`.

pub mod config;
pub mod dispatcher;
pub mod live;
pub mod outbox;
pub mod payload;
pub mod retry;
pub mod service;
pub mod signing;
pub mod ssrf;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

pub use payload::EventType;
pub use retry::RetrySchedule;

/// Environment / command-line settings of webhook delivery.
#[derive(clap::Args, Debug, Clone)]
pub struct WebhookArgs {
    /// Allow webhook URLs that resolve to loopback, private, link-local,
    /// CGNAT or metadata addresses (off: such URLs are refused with 400 and
    /// re-checked at connect time).
    #[arg(long, env = "WAGATE_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub webhook_allow_private: bool,
    /// Deadline of one delivery attempt.
    #[arg(long, env = "WAGATE_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,
    /// Delays before each attempt, in seconds, comma-separated (`ms` suffix
    /// for milliseconds); default the Standard Webhooks schedule.
    #[arg(long, env = "WAGATE_WEBHOOK_RETRY_SCHEDULE", default_value = "")]
    pub webhook_retry_schedule: String,
    /// Consecutive failed deliveries (after their last attempt) that disable a webhook.
    #[arg(long, env = "WAGATE_WEBHOOK_MAX_FAILURES", default_value_t = 5)]
    pub webhook_max_failures: u32,
    /// Deliveries in flight per replica.
    #[arg(long, env = "WAGATE_WEBHOOK_CONCURRENCY", default_value_t = 64)]
    pub webhook_concurrency: usize,
    /// Deliveries in flight per receiver host and port.
    #[arg(long, env = "WAGATE_WEBHOOK_PER_RECEIVER", default_value_t = 8)]
    pub webhook_per_receiver: usize,
    /// How often the outbox is polled for due retries and other replicas' events.
    #[arg(long, env = "WAGATE_WEBHOOK_POLL_MS", default_value_t = 500)]
    pub webhook_poll_ms: u64,
    /// Days delivered and failed events are kept in the delivery log.
    #[arg(long, env = "WAGATE_WEBHOOK_RETENTION_DAYS", default_value_t = 14)]
    pub webhook_retention_days: u32,
    /// How long a session's webhook configuration is cached (changes on
    /// this replica invalidate at once).
    #[arg(long, env = "WAGATE_WEBHOOK_CACHE_TTL_MS", default_value_t = 2000)]
    pub webhook_cache_ttl_ms: u64,
    /// Hours a session's live event log (`GET /sessions/{id}/events`) stays
    /// on after a client connected, and its events are kept.
    #[arg(long, env = "WAGATE_LIVE_EVENTS_RETENTION_HOURS", default_value_t = 24)]
    pub live_events_retention_hours: u32,
    /// Heartbeat of an idle live event stream, in milliseconds.
    #[arg(long, env = "WAGATE_LIVE_EVENTS_HEARTBEAT_MS", default_value_t = 15_000)]
    pub live_events_heartbeat_ms: u64,
}

impl WebhookArgs {
    pub fn into_settings(self) -> WebhookSettings {
        let schedule = match RetrySchedule::parse(&self.webhook_retry_schedule) {
            Ok(Some(s)) => s,
            Ok(None) => RetrySchedule::standard(),
            Err(e) => {
                tracing::warn!(error = %e, "WAGATE_WEBHOOK_RETRY_SCHEDULE ignored, using the standard schedule");
                RetrySchedule::standard()
            }
        };
        WebhookSettings {
            allow_private: self.webhook_allow_private,
            timeout: Duration::from_millis(self.webhook_timeout_ms.max(100)),
            schedule,
            max_failures: self.webhook_max_failures.max(1),
            concurrency: self.webhook_concurrency.max(1),
            per_receiver: self.webhook_per_receiver.max(1),
            poll_interval: Duration::from_millis(self.webhook_poll_ms.max(20)),
            retention: Duration::from_secs(u64::from(self.webhook_retention_days.max(1)) * 86_400),
            cache_ttl: Duration::from_millis(self.webhook_cache_ttl_ms),
            live: live::LiveSettings {
                retention: Duration::from_secs(u64::from(self.live_events_retention_hours.max(1)) * 3600),
                poll: Duration::from_millis(self.webhook_poll_ms.clamp(20, 1000)),
                heartbeat: Duration::from_millis(self.live_events_heartbeat_ms.max(50)),
            },
        }
    }
}

/// Resolved webhook settings.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub allow_private: bool,
    pub timeout: Duration,
    pub schedule: RetrySchedule,
    pub max_failures: u32,
    pub concurrency: usize,
    pub per_receiver: usize,
    pub poll_interval: Duration,
    pub retention: Duration,
    pub cache_ttl: Duration,
    pub live: live::LiveSettings,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            timeout: Duration::from_secs(10),
            schedule: RetrySchedule::standard(),
            max_failures: 5,
            concurrency: 64,
            per_receiver: 8,
            poll_interval: Duration::from_millis(500),
            retention: Duration::from_secs(14 * 86_400),
            cache_ttl: Duration::from_secs(2),
            live: live::LiveSettings::default(),
        }
    }
}

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// Webhook state of one replica.
pub struct Webhooks {
    pub settings: WebhookSettings,
    pub cache: config::HookCache,
    /// Wakes the dispatcher (an event was committed, a delivery finished).
    pub wake: Notify,
    pub client: reqwest::Client,
    /// Bounds deliveries in flight on this replica.
    pub global: Arc<Semaphore>,
    pub receivers: dispatcher::ReceiverLimits,
    /// Whether any active webhook exists (refreshed by the dispatcher,
    /// set at once by a configuration on this replica): while false, the
    /// status writer does not look for subscribers at all.
    any_active: AtomicBool,
    /// Bumped by every webhook change on this replica (delivery tasks re-read their webhook).
    generation: AtomicU64,
    /// Ticks on every commit of events here (live tails look at once).
    live_tick: tokio::sync::watch::Sender<u64>,
    pub live: live::LiveSettings,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").field("settings", &self.settings).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookInitError {
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
}

impl Webhooks {
    pub fn new(settings: WebhookSettings) -> Result<Self, WebhookInitError> {
        let client = dispatcher::http_client(&settings)?;
        Ok(Self {
            cache: config::HookCache::new(settings.cache_ttl),
            wake: Notify::new(),
            client,
            global: Arc::new(Semaphore::new(settings.concurrency)),
            receivers: dispatcher::ReceiverLimits::new(settings.per_receiver),
            any_active: AtomicBool::new(true),
            generation: AtomicU64::new(0),
            live_tick: tokio::sync::watch::Sender::new(0),
            live: settings.live.clone(),
            settings,
        })
    }

    /// Call after committing outbox rows: the dispatcher looks at once.
    pub fn committed(&self) {
        self.wake.notify_one();
        self.live_tick.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Ticks when events were committed on this replica.
    pub fn live_ticks(&self) -> tokio::sync::watch::Receiver<u64> {
        self.live_tick.subscribe()
    }

    /// A webhook of `session_id` changed on this replica.
    pub fn changed(&self, session_id: &str) {
        self.cache.invalidate(session_id);
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    pub fn any_active(&self) -> bool {
        self.any_active.load(Ordering::Relaxed)
    }

    pub fn set_any_active(&self, v: bool) {
        self.any_active.store(v, Ordering::Relaxed);
    }
}
