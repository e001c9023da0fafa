//! Shared state of one control-plane replica.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::auth::key_cache::KeyCache;
use crate::auth::key_usage::KeyUsage;
use crate::cache::Cache;
use crate::config::ControlPlaneConfig;
use crate::dispatch::Dispatcher;
use crate::error::CpError;
use crate::persistence::Db;
use crate::persistence::message_inserter::MessageInserter;
use crate::persistence::status_writer::StatusWriter;
use crate::stream::custody::Vault;
use crate::stream::registry::Registry;
use crate::webhooks::Webhooks;

pub struct AppState {
    pub config: ControlPlaneConfig,
    pub db: Db,
    pub cache: Cache,
    pub registry: Arc<Registry>,
    /// The one way to run a command on a worker (local stream, or forwarded
    /// to the replica holding it).
    pub dispatcher: Dispatcher,
    pub auth: Authenticator,
    /// Encrypts auth-state snapshots at rest.
    pub vault: Vault,
    /// API key → session lookups; invalidate on any change of what a key unlocks.
    pub key_cache: KeyCache,
    /// Batched message-status writes (SENT acks, DELIVERED/READ/FAILED events).
    pub status_writer: StatusWriter,
    /// Sends in flight on this replica, or acked and not yet written.
    pub send_tracker: Arc<crate::send::tracker::SendTracker>,
    /// Group commit of outbound message rows (PENDING, before dispatch).
    pub message_inserter: MessageInserter,
    /// `api_keys.last_used` recorded in memory, flushed periodically.
    pub key_usage: KeyUsage,
    /// Rate limits and quotas (Redis when configured, else in-process).
    pub limiter: crate::limits::Limiter,
    /// API calls and messages counted for billing, flushed periodically.
    pub usage: Arc<crate::usage::UsageMeter>,
    /// Webhook configuration cache, HTTP client and dispatcher wake-up.
    pub webhooks: Arc<Webhooks>,
    /// The email outbox's transport and wake-up.
    pub email: Arc<crate::email::Mailer>,
    /// Cancelled when the replica starts shutting down.
    pub shutdown: CancellationToken,
    /// Background tasks joined at shutdown (stream readers, dispatches).
    pub tasks: TaskTracker,
    /// The media store (local folder or S3-compatible bucket).
    pub media: crate::media::store::MediaStore,
    /// Signs and checks media download links.
    pub media_links: crate::media::links::LinkSigner,
    /// Re-dispatch rounds of PENDING sends: which sessions have one running.
    pub redispatches: crate::fleet::failover::Redispatches,
    /// Number checks answered recently, per (session, number).
    pub number_checks: moka::sync::Cache<(String, String), wagate_proto::v1::NumberCheck>,
}

impl AppState {
    /// Refuses new work once shutdown began (→ 503 SHUTTING_DOWN).
    pub fn ensure_running(&self) -> Result<(), CpError> {
        if self.shutdown.is_cancelled() { Err(CpError::ShuttingDown) } else { Ok(()) }
    }
}

pub type SharedState = Arc<AppState>;

/// Runs `step` on `state.tasks` every `interval`, and once more when the
/// replica starts shutting down (the last flush of what was counted in
/// memory).
pub fn spawn_periodic<F, Fut>(
    state: &SharedState,
    interval: std::time::Duration,
    span: tracing::Span,
    mut step: F,
) where
    F: FnMut(SharedState) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    use tracing::Instrument;
    let st = state.clone();
    state.tasks.spawn(
        async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                let stopping = tokio::select! {
                    () = st.shutdown.cancelled() => true,
                    _ = tick.tick() => false,
                };
                step(st.clone()).await;
                if stopping {
                    break;
                }
            }
        }
        .instrument(span),
    );
}
