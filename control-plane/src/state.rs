//! Shared state of one control-plane replica.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::cache::Cache;
use crate::config::ControlPlaneConfig;
use crate::error::CpError;
use crate::key_usage::KeyUsage;
use crate::persistence::Db;
use crate::registry::Registry;

pub struct AppState {
    pub config: ControlPlaneConfig,
    pub db: Db,
    pub cache: Cache,
    pub registry: Arc<Registry>,
    pub auth: Authenticator,
    /// `api_keys.last_used` recorded in memory, flushed periodically.
    pub key_usage: KeyUsage,
    /// Cancelled when the replica starts shutting down.
    pub shutdown: CancellationToken,
    /// Background tasks joined at shutdown (stream readers, dispatches).
    pub tasks: TaskTracker,
}

impl AppState {
    /// Refuses new work once shutdown began (→ 503 SHUTTING_DOWN).
    pub fn ensure_running(&self) -> Result<(), CpError> {
        if self.shutdown.is_cancelled() { Err(CpError::ShuttingDown) } else { Ok(()) }
    }
}

pub type SharedState = Arc<AppState>;
