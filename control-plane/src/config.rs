//! Control-plane configuration: environment variables (documented in the
//! README and `.env.example`) with defaults that run on one machine.

use std::net::SocketAddr;
use std::time::Duration;

/// Command-line / environment arguments of the control plane.
#[derive(clap::Args, Debug, Clone)]
pub struct ControlPlaneArgs {
    /// gRPC listen address (workers, the edge and internal services connect here).
    #[arg(long, env = "WAGATE_GRPC_LISTEN", default_value = "0.0.0.0:50051")]
    pub grpc_listen: SocketAddr,
    /// `postgres://…` or `sqlite://path?mode=rwc`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/wagate.db?mode=rwc")]
    pub database_url: String,
    /// Pool size for PostgreSQL (SQLite uses one connection).
    #[arg(long, env = "WAGATE_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// `redis://…`; the in-process cache is used when unset.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key.
    #[arg(long, env = "WAGATE_REDIS_PREFIX", default_value = "wagate:")]
    pub redis_prefix: String,
    /// HS256 secret for user tokens; a random one (tokens die with the process) when unset.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    #[arg(long, env = "WAGATE_JWT_ISSUER", default_value = "wagate")]
    pub jwt_issuer: String,
    /// Token lifetime in seconds (default 7 days).
    #[arg(long, env = "WAGATE_JWT_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub jwt_ttl_secs: u64,
    /// Shared bearer token workers present on their stream; random when unset.
    #[arg(long, env = "WORKER_AUTH_TOKEN", hide_env_values = true)]
    pub worker_auth_token: Option<String>,
    #[arg(long, env = "WAGATE_HEARTBEAT_INTERVAL_MS", default_value_t = 1000)]
    pub heartbeat_interval_ms: u64,
    /// Missed heartbeats before a worker counts as dead.
    #[arg(long, env = "WAGATE_HEARTBEAT_TOLERANCE", default_value_t = 3)]
    pub heartbeat_tolerance: u32,
    #[arg(long, env = "WAGATE_HELLO_TIMEOUT_MS", default_value_t = 5000)]
    pub hello_timeout_ms: u64,
    /// Deadline of a command sent to a worker.
    #[arg(long, env = "WAGATE_COMMAND_TIMEOUT_MS", default_value_t = 15000)]
    pub command_timeout_ms: u64,
    /// Commands queued per worker stream before callers get "worker busy".
    #[arg(long, env = "WAGATE_WORKER_CHANNEL_CAPACITY", default_value_t = 1024)]
    pub worker_channel_capacity: usize,
    /// How often a heartbeat is kept as a `worker_metrics` sample.
    #[arg(long, env = "WAGATE_METRICS_SAMPLE_SECS", default_value_t = 60)]
    pub metrics_sample_secs: u64,
    /// Id of this replica (logs, worker → replica records); hostname-derived when unset.
    #[arg(long, env = "WAGATE_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// Bootstrap administrator, created at start if absent.
    #[arg(long, env = "WAGATE_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    #[arg(long, env = "WAGATE_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// How often recorded API key use (`lastUsed`) is written to the database.
    #[arg(long, env = "WAGATE_KEY_USAGE_FLUSH_MS", default_value_t = 5000)]
    pub key_usage_flush_ms: u64,
    /// How long shutdown waits for in-flight work.
    #[arg(long, env = "WAGATE_SHUTDOWN_GRACE_MS", default_value_t = 10000)]
    pub shutdown_grace_ms: u64,
}

/// Resolved configuration.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    pub grpc_listen: SocketAddr,
    pub database_url: String,
    pub db_max_connections: u32,
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    pub jwt_secret: String,
    pub jwt_issuer: String,
    pub jwt_ttl: Duration,
    pub worker_auth_token: String,
    pub heartbeat_interval: Duration,
    pub heartbeat_tolerance: u32,
    pub hello_timeout: Duration,
    pub command_timeout: Duration,
    pub worker_channel_capacity: usize,
    pub metrics_sample_interval: Duration,
    pub replica_id: String,
    pub admin_email: Option<String>,
    pub admin_password: Option<String>,
    pub shutdown_grace: Duration,
    pub key_usage_flush: Duration,
}

impl ControlPlaneArgs {
    pub fn into_config(self) -> ControlPlaneConfig {
        let jwt_secret = self.jwt_secret.filter(|s| !s.is_empty()).unwrap_or_else(|| {
            tracing::warn!("JWT_SECRET is not set: using a random secret, tokens will not survive a restart");
            random_secret()
        });
        let worker_auth_token = self.worker_auth_token.filter(|s| !s.is_empty()).unwrap_or_else(|| {
            tracing::warn!(
                "WORKER_AUTH_TOKEN is not set: using a random token, no external worker can connect"
            );
            random_secret()
        });
        ControlPlaneConfig {
            grpc_listen: self.grpc_listen,
            database_url: self.database_url,
            db_max_connections: self.db_max_connections,
            redis_url: self.redis_url.filter(|s| !s.is_empty()),
            redis_prefix: self.redis_prefix,
            jwt_secret,
            jwt_issuer: self.jwt_issuer,
            jwt_ttl: Duration::from_secs(self.jwt_ttl_secs.max(60)),
            worker_auth_token,
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval_ms.max(50)),
            heartbeat_tolerance: self.heartbeat_tolerance.max(1),
            hello_timeout: Duration::from_millis(self.hello_timeout_ms.max(100)),
            command_timeout: Duration::from_millis(self.command_timeout_ms.max(100)),
            worker_channel_capacity: self.worker_channel_capacity.max(1),
            metrics_sample_interval: Duration::from_secs(self.metrics_sample_secs),
            replica_id: self.replica_id.filter(|s| !s.is_empty()).unwrap_or_else(default_replica_id),
            admin_email: self.admin_email.filter(|s| !s.is_empty()),
            admin_password: self.admin_password.filter(|s| !s.is_empty()),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
            key_usage_flush: Duration::from_millis(self.key_usage_flush_ms.max(100)),
        }
    }
}

impl ControlPlaneConfig {
    /// Defaults for one machine, with the given database (tests, embedded run).
    pub fn local(database_url: impl Into<String>) -> Self {
        Self {
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.into(),
            db_max_connections: 16,
            redis_url: None,
            redis_prefix: "wagate:".into(),
            jwt_secret: random_secret(),
            jwt_issuer: "wagate".into(),
            jwt_ttl: Duration::from_secs(24 * 3600),
            worker_auth_token: random_secret(),
            heartbeat_interval: Duration::from_millis(500),
            heartbeat_tolerance: 3,
            hello_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(10),
            worker_channel_capacity: 1024,
            metrics_sample_interval: Duration::from_secs(60),
            replica_id: default_replica_id(),
            admin_email: None,
            admin_password: None,
            shutdown_grace: Duration::from_secs(5),
            key_usage_flush: Duration::from_secs(5),
        }
    }

    /// A stream with no message for this long is dead.
    pub fn liveness_timeout(&self) -> Duration {
        self.heartbeat_interval * self.heartbeat_tolerance + self.heartbeat_interval / 2
    }
}

pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

fn default_replica_id() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty());
    let suffix: u32 = rand::random();
    match host {
        Some(h) => format!("{h}-{suffix:08x}"),
        None => format!("cp-{suffix:08x}"),
    }
}
