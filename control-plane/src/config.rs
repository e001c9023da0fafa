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
    /// How long an API-key lookup is cached in memory (0 disables the cache).
    /// Changes made through this replica invalidate it at once; the TTL bounds
    /// staleness of changes made elsewhere.
    #[arg(long, env = "WAGATE_KEY_CACHE_TTL_MS", default_value_t = 2000)]
    pub key_cache_ttl_ms: u64,
    /// Write message status changes (SENT acks, DELIVERED/READ events) in
    /// batches from a background task (false: one UPDATE each, inline).
    #[arg(long, env = "WAGATE_STATUS_BATCHING", default_value_t = true, action = clap::ArgAction::Set)]
    pub status_batching: bool,
    /// Insert concurrent sends' message rows as one multi-row INSERT (group
    /// commit; each send still waits for its row's commit before dispatch).
    #[arg(long, env = "WAGATE_GROUP_COMMIT", default_value_t = true, action = clap::ArgAction::Set)]
    pub group_commit: bool,
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
    /// AES-256-GCM key for auth-state snapshots (64 hex chars); random per start when unset.
    #[arg(long, env = "WAGATE_AUTH_STATE_KEY", hide_env_values = true)]
    pub auth_state_key: Option<String>,
    /// Id stored beside each snapshot encrypted with the active key.
    #[arg(long, env = "WAGATE_AUTH_STATE_KEY_ID", default_value = "k1")]
    pub auth_state_key_id: String,
    /// Retired keys that can still decrypt, as `id:hex,id:hex`.
    #[arg(long, env = "WAGATE_AUTH_STATE_RETIRED_KEYS", hide_env_values = true, default_value = "")]
    pub auth_state_retired_keys: String,
    /// Period of the fleet sweep (place waiting sessions, catch stale workers, retention).
    #[arg(long, env = "WAGATE_SWEEP_INTERVAL_MS", default_value_t = 2000)]
    pub sweep_interval_ms: u64,
    /// Periodic rebalancing period in seconds; 0 turns it off.
    #[arg(long, env = "WAGATE_REBALANCE_INTERVAL_SECS", default_value_t = 0)]
    pub rebalance_interval_secs: u64,
    /// Sessions moved per rebalance round at most.
    #[arg(long, env = "WAGATE_REBALANCE_MAX_MOVES", default_value_t = 5)]
    pub rebalance_max_moves: u32,
    /// Target fleet utilisation (0..1) behind the recommended worker count.
    #[arg(long, env = "WAGATE_FLEET_TARGET_UTILIZATION", default_value_t = 0.7)]
    pub fleet_target_utilization: f64,
    /// Sessions started in parallel during a failover.
    #[arg(long, env = "WAGATE_FAILOVER_CONCURRENCY", default_value_t = 32)]
    pub failover_concurrency: usize,
    /// Days of `worker_metrics` kept.
    #[arg(long, env = "WAGATE_METRICS_RETENTION_DAYS", default_value_t = 30)]
    pub metrics_retention_days: u32,
    /// Prometheus `/metrics` listen address; empty turns it off.
    #[arg(long, env = "WAGATE_METRICS_LISTEN", default_value = "0.0.0.0:9090")]
    pub metrics_listen: String,
    /// Webhook delivery: see `crate::webhooks::WebhookArgs`.
    #[command(flatten)]
    pub webhooks: crate::webhooks::WebhookArgs,
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
    pub key_cache_ttl: Duration,
    pub status_batching: bool,
    pub group_commit: bool,
    pub metrics_sample_interval: Duration,
    pub replica_id: String,
    pub admin_email: Option<String>,
    pub admin_password: Option<String>,
    pub shutdown_grace: Duration,
    /// (key id, 64 hex chars) of the active auth-state key.
    pub auth_state_key: (String, String),
    pub auth_state_retired_keys: Vec<(String, String)>,
    pub sweep_interval: Duration,
    /// `None`: periodic rebalancing off.
    pub rebalance_interval: Option<Duration>,
    pub rebalance_max_moves: u32,
    pub fleet_target_utilization: f64,
    pub failover_concurrency: usize,
    pub metrics_retention: Duration,
    /// Prometheus `/metrics` listener (`None`: off).
    pub metrics_listen: Option<SocketAddr>,
    pub key_usage_flush: Duration,
    /// Webhook delivery settings.
    pub webhooks: crate::webhooks::WebhookSettings,
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
            key_cache_ttl: Duration::from_millis(self.key_cache_ttl_ms),
            status_batching: self.status_batching,
            group_commit: self.group_commit,
            metrics_sample_interval: Duration::from_secs(self.metrics_sample_secs),
            replica_id: self.replica_id.filter(|s| !s.is_empty()).unwrap_or_else(default_replica_id),
            admin_email: self.admin_email.filter(|s| !s.is_empty()),
            admin_password: self.admin_password.filter(|s| !s.is_empty()),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
            auth_state_key: (
                self.auth_state_key_id,
                self.auth_state_key.filter(|s| !s.is_empty()).unwrap_or_else(|| {
                    tracing::warn!(
                        "WAGATE_AUTH_STATE_KEY is not set: using a random key, saved auth states will not survive a restart"
                    );
                    random_secret()
                }),
            ),
            auth_state_retired_keys: self
                .auth_state_retired_keys
                .split(',')
                .filter_map(|pair| pair.split_once(':'))
                .map(|(id, k)| (id.trim().to_owned(), k.trim().to_owned()))
                .collect(),
            sweep_interval: Duration::from_millis(self.sweep_interval_ms.max(100)),
            rebalance_interval: (self.rebalance_interval_secs > 0).then(|| Duration::from_secs(self.rebalance_interval_secs)),
            rebalance_max_moves: self.rebalance_max_moves,
            fleet_target_utilization: self.fleet_target_utilization.clamp(0.05, 1.0),
            failover_concurrency: self.failover_concurrency.max(1),
            metrics_retention: Duration::from_secs(u64::from(self.metrics_retention_days.max(1)) * 86_400),
            metrics_listen: self.metrics_listen.trim().parse().ok(),
            key_usage_flush: Duration::from_millis(self.key_usage_flush_ms.max(100)),
            webhooks: self.webhooks.into_settings(),
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
            key_cache_ttl: Duration::from_secs(2),
            status_batching: true,
            group_commit: true,
            metrics_sample_interval: Duration::from_secs(60),
            replica_id: default_replica_id(),
            admin_email: None,
            admin_password: None,
            shutdown_grace: Duration::from_secs(5),
            auth_state_key: ("k1".into(), random_secret()),
            auth_state_retired_keys: Vec::new(),
            sweep_interval: Duration::from_millis(500),
            rebalance_interval: None,
            rebalance_max_moves: 5,
            fleet_target_utilization: 0.7,
            failover_concurrency: 32,
            metrics_retention: Duration::from_secs(30 * 86_400),
            metrics_listen: None,
            key_usage_flush: Duration::from_secs(5),
            webhooks: crate::webhooks::WebhookSettings::default(),
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
