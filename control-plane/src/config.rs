//! Control-plane configuration: environment variables (documented in the
//! README and `.env.example`) with defaults that run on one machine, except
//! the secrets production needs: outside `--dev` / `WAGATE_DEV` a missing one
//! refuses start-up ([`ControlPlaneArgs::require_secrets`]), as does a weak
//! secret ([`check_secret`]) or a value that does not parse.

use std::net::SocketAddr;
use std::time::Duration;

/// Command-line / environment arguments of the control plane.
#[derive(clap::Args, Debug, Clone)]
pub struct ControlPlaneArgs {
    /// Development mode: secrets that are not set get random values (user
    /// tokens and saved WhatsApp logins do not survive a restart; replicas
    /// cannot call each other). Without it (production) the control plane
    /// refuses to start without `JWT_SECRET`, `WAGATE_AUTH_STATE_KEY` and,
    /// when it can have peers, `WAGATE_INTERNAL_TOKEN`.
    #[arg(long, env = "WAGATE_DEV", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub dev: bool,
    /// gRPC listen address (workers, the edge and internal services connect here).
    #[arg(long, env = "WAGATE_GRPC_LISTEN", default_value = "0.0.0.0:50051")]
    pub grpc_listen: SocketAddr,
    /// A gRPC connection must send its first bytes (HTTP/2 preface or TLS
    /// ClientHello) within this many milliseconds, else it is closed.
    #[arg(long, env = "WAGATE_GRPC_FIRST_BYTES_TIMEOUT_MS", default_value_t = 10_000)]
    pub grpc_first_bytes_timeout_ms: u64,
    /// A gRPC connection with no call in flight this many milliseconds is closed (0: never).
    #[arg(long, env = "WAGATE_GRPC_IDLE_TIMEOUT_MS", default_value_t = 300_000)]
    pub grpc_idle_timeout_ms: u64,
    /// gRPC connections held at once; more are closed at accept.
    #[arg(long, env = "WAGATE_GRPC_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub grpc_max_connections: usize,
    /// HTTP/2 keepalive ping interval of the gRPC listener, in milliseconds.
    #[arg(long, env = "WAGATE_GRPC_KEEPALIVE_INTERVAL_MS", default_value_t = 10_000)]
    pub grpc_keepalive_interval_ms: u64,
    /// How long a keepalive ping may go unanswered before the connection is closed.
    #[arg(long, env = "WAGATE_GRPC_KEEPALIVE_TIMEOUT_MS", default_value_t = 5_000)]
    pub grpc_keepalive_timeout_ms: u64,
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
    /// HS256 secret for user tokens; required unless `--dev` (then random: tokens die with the process).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    #[arg(long, env = "WAGATE_JWT_ISSUER", default_value = "wagate")]
    pub jwt_issuer: String,
    /// Access-token lifetime in seconds (default 15 minutes; clients renew with a refresh token).
    #[arg(long, env = "WAGATE_JWT_TTL_SECS", default_value_t = 900)]
    pub jwt_ttl_secs: u64,
    /// Refresh-token lifetime in seconds (default 30 days); each use rotates it.
    #[arg(long, env = "WAGATE_REFRESH_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub refresh_ttl_secs: u64,
    /// Email changes, account deletion and key rotation need `currentPassword`
    /// unless the token is younger than this many seconds.
    #[arg(long, env = "WAGATE_REAUTH_WINDOW_SECS", default_value_t = 300)]
    pub reauth_window_secs: u64,
    /// Seconds a number check's answer is reused for the same session and
    /// number (0: always ask the phone).
    #[arg(long, env = "WAGATE_NUMBER_CHECK_CACHE_SECS", default_value_t = 600)]
    pub number_check_cache_secs: u64,
    /// Peers whose `x-forwarded-for` is believed (CIDRs or addresses, comma
    /// separated); everyone else's client address is the socket peer.
    #[arg(long, env = "WAGATE_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Shared secret the edge gateway presents (`x-wagate-edge-token`) so the
    /// client address it forwards is believed; at least 32 random bytes.
    #[arg(long, env = "WAGATE_EDGE_TOKEN", hide_env_values = true)]
    pub edge_token: Option<String>,
    /// Accept the shared `WORKER_AUTH_TOKEN` on worker streams (any worker
    /// id). Off by default: workers present their own `wkt_…` token.
    #[arg(long, env = "WAGATE_ALLOW_SHARED_WORKER_TOKEN", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_shared_worker_token: bool,
    /// Shared bearer token workers present on their stream (with
    /// `WAGATE_ALLOW_SHARED_WORKER_TOKEN`, where it is then required unless
    /// `--dev`); random when unset.
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
    /// Changes invalidate it at once on every replica (pub/sub); the TTL is a
    /// safety net against a lost invalidation.
    #[arg(long, env = "WAGATE_KEY_CACHE_TTL_MS", default_value_t = 2000)]
    pub key_cache_ttl_ms: u64,
    /// Write message status changes (SENT acks, DELIVERED/READ events) in
    /// batches from a background task (false: one UPDATE each, inline).
    #[arg(long, env = "WAGATE_STATUS_BATCHING", default_value_t = true, action = clap::ArgAction::Set)]
    pub status_batching: bool,
    /// How long the status writer gathers SENT / DELIVERED / READ updates
    /// before writing them (moves of one message inside the window become
    /// one row update; sends never wait for it).
    #[arg(long, env = "WAGATE_STATUS_WRITE_WINDOW_MS", default_value_t = 20)]
    pub status_write_window_ms: u64,
    /// A send dispatched this long ago that no worker acknowledged (and no
    /// status event settled) is dispatched again by the sweep. Keep it above
    /// the command timeout.
    #[arg(long, env = "WAGATE_REDISPATCH_AFTER_MS", default_value_t = 30000)]
    pub redispatch_after_ms: u64,
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
    /// AES-256-GCM key for auth-state snapshots (64 hex chars), the same on
    /// every replica; required unless `--dev` (then random per start: saved
    /// WhatsApp logins cannot be read after a restart).
    #[arg(long, env = "WAGATE_AUTH_STATE_KEY", hide_env_values = true)]
    pub auth_state_key: Option<String>,
    /// Id stored beside each snapshot encrypted with the active key.
    #[arg(long, env = "WAGATE_AUTH_STATE_KEY_ID", default_value = "k1")]
    pub auth_state_key_id: String,
    /// Retired keys that can still decrypt, as `id:hex,id:hex`; an entry that
    /// is not `id:hex` refuses start-up.
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
    /// Prometheus `/metrics` listen address (loopback by default; set `0.0.0.0:9090`
    /// with `WAGATE_METRICS_TOKEN` where a scraper must reach it); empty turns
    /// it off, anything else that is not `address:port` refuses start-up.
    #[arg(long, env = "WAGATE_METRICS_LISTEN", default_value = "127.0.0.1:9090")]
    pub metrics_listen: String,
    /// How often the database and cache are checked for `grpc.health.v1`.
    #[arg(long, env = "WAGATE_HEALTH_CHECK_INTERVAL_MS", default_value_t = 2000)]
    pub health_check_interval_ms: u64,
    /// Address other replicas reach this one at (`http://10.1.2.3:50051`);
    /// derived from the listen address (or the host name) when unset.
    #[arg(long, env = "WAGATE_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,
    /// Shared secret of replica-to-replica calls, the same on every replica;
    /// required unless `--dev` when this replica can have peers (`REDIS_URL`
    /// set or a PostgreSQL `DATABASE_URL`), else random per start.
    #[arg(long, env = "WAGATE_INTERNAL_TOKEN", hide_env_values = true)]
    pub internal_token: Option<String>,
    /// How long a worker whose stream ended may take to reconnect (to any
    /// replica) before its sessions fail over.
    #[arg(long, env = "WAGATE_RECONNECT_GRACE_MS", default_value_t = 2000)]
    pub reconnect_grace_ms: u64,
    /// Capacity (issue 12): a session still unpaired (INIT / QR_REQUIRED)
    /// this many seconds after it was placed or started is stopped, its
    /// worker slot freed, and marked DISCONNECTED (`POST …/start` again); 0 off.
    #[arg(long, env = "WAGATE_QR_TIMEOUT_SECS", default_value_t = 300)]
    pub qr_timeout_secs: u64,
    /// Share (0–90 %) of the fleet's capacity held back for paid tiers: BASIC
    /// creates/starts are refused (503) once used slots reach the rest.
    #[arg(long, env = "WAGATE_PAID_RESERVE_PERCENT", default_value_t = 0)]
    pub paid_reserve_percent: u8,
    /// Webhook delivery: see `crate::webhooks::WebhookArgs`.
    #[command(flatten)]
    pub webhooks: crate::webhooks::WebhookArgs,
    /// Rate limits and tier quotas: see `crate::limits::LimitArgs`.
    #[command(flatten)]
    pub limits: crate::limits::LimitArgs,
    /// Email (SMTP, links, verification, notifications): see `crate::email::EmailArgs`.
    #[command(flatten)]
    pub email: crate::email::EmailArgs,
    /// Media store, limits and links: see `crate::media::MediaArgs`.
    #[command(flatten)]
    pub media: crate::media::MediaArgs,
    /// Usage metering: how often counts are written to `usage_records`.
    #[arg(long, env = "WAGATE_USAGE_FLUSH_SECS", default_value_t = 10)]
    pub usage_flush_secs: u64,
    // --- TLS of the gRPC listener, /metrics token (issue 13; README "TLS") ---
    /// PEM certificate chain of the gRPC listener; TLS is on when set (with the key).
    #[arg(long, env = "WAGATE_TLS_CERT")]
    pub tls_cert: Option<String>,
    /// PEM private key of `WAGATE_TLS_CERT`.
    #[arg(long, env = "WAGATE_TLS_KEY")]
    pub tls_key: Option<String>,
    /// PEM CA bundle: clients must present a certificate it signed (see
    /// `WAGATE_TLS_CLIENT_AUTH`); peer replicas' certificates are checked against it.
    #[arg(long, env = "WAGATE_TLS_CA")]
    pub tls_ca: Option<String>,
    /// With `WAGATE_TLS_CA`: `required` (every client), `optional` (verified if presented) or `none`.
    #[arg(long, env = "WAGATE_TLS_CLIENT_AUTH", default_value = "required")]
    pub tls_client_auth: String,
    /// Name peers and the health check verify this replica's certificate against (default: the URL's host).
    #[arg(long, env = "WAGATE_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    #[arg(long, env = "WAGATE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

/// Resolved configuration.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    pub grpc_listen: SocketAddr,
    /// Guards of the gRPC listener (first bytes, idle, cap, keepalive).
    pub grpc_limits: crate::server::listener::ListenerLimits,
    pub database_url: String,
    pub db_max_connections: u32,
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    pub jwt_secret: String,
    pub jwt_issuer: String,
    pub jwt_ttl: Duration,
    pub refresh_ttl: Duration,
    pub reauth_window: Duration,
    /// How long a number check's answer is reused (zero: not at all).
    pub number_check_cache: Duration,
    pub worker_auth_token: String,
    /// Whether the shared worker token is accepted at all.
    pub allow_shared_worker_token: bool,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub edge_token: Option<String>,
    pub heartbeat_interval: Duration,
    pub heartbeat_tolerance: u32,
    pub hello_timeout: Duration,
    pub command_timeout: Duration,
    pub worker_channel_capacity: usize,
    pub key_cache_ttl: Duration,
    pub status_batching: bool,
    pub status_write_window: Duration,
    pub redispatch_after: Duration,
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
    /// Database and cache checks behind the gRPC health status.
    pub health_check_interval: Duration,
    /// `None`: derived from the bound listen address at start.
    pub advertise_addr: Option<String>,
    pub internal_token: String,
    pub reconnect_grace: Duration,
    /// Unpaired sessions give their slot back after this (`None`: never).
    pub qr_timeout: Option<Duration>,
    /// Percent of fleet capacity BASIC users cannot take (0..=90).
    pub paid_reserve_percent: u8,
    /// Webhook delivery settings.
    pub webhooks: crate::webhooks::WebhookSettings,
    /// Email settings.
    pub email: crate::email::EmailSettings,
    pub limits: crate::limits::LimitSettings,
    /// Media store, size limits, retention, signed links.
    pub media: crate::media::MediaSettings,
    pub usage_flush: Duration,
    /// TLS of the gRPC listener (`None`: plaintext); also used on peer calls.
    pub tls: Option<wagate_proto::tls::ServerTls>,
    /// Bearer token `/metrics` requires (`None`: open, loopback by default).
    pub metrics_token: Option<String>,
}

impl ControlPlaneArgs {
    /// Resolves the configuration. An explicitly configured secret that is
    /// weak refuses start-up (see [`check_secret`]); so does, outside `--dev`,
    /// a missing secret that production needs (see [`Self::require_secrets`]),
    /// and any value that does not parse (never silently dropped).
    pub fn into_config(self) -> Result<ControlPlaneConfig, ConfigError> {
        for (name, value) in [
            ("JWT_SECRET", &self.jwt_secret),
            ("WORKER_AUTH_TOKEN", &self.worker_auth_token),
            ("WAGATE_AUTH_STATE_KEY", &self.auth_state_key),
            ("WAGATE_EDGE_TOKEN", &self.edge_token),
            ("WAGATE_INTERNAL_TOKEN", &self.internal_token),
            ("WAGATE_METRICS_TOKEN", &self.metrics_token),
            ("WAGATE_MEDIA_LINK_SECRET", &self.media.media_link_secret),
        ] {
            if let Some(s) = value.as_deref().filter(|s| !s.is_empty()) {
                check_secret(name, s)?;
            }
        }
        if self.dev {
            tracing::warn!("development mode (--dev / WAGATE_DEV): secrets that are not set are random");
        } else {
            self.require_secrets()?;
        }
        let metrics_listen = parse_metrics_listen(&self.metrics_listen)?;
        let auth_state_retired_keys = parse_retired_keys(&self.auth_state_retired_keys)?;
        let tls = self.tls()?;
        if tls.is_some() && self.advertise_addr.as_deref().is_some_and(|a| a.trim().starts_with("http://")) {
            return Err(ConfigError::Invalid {
                name: "WAGATE_ADVERTISE_ADDR",
                reason: "TLS is on (WAGATE_TLS_CERT): peers must dial https://".into(),
            });
        }
        let trusted_proxies = crate::auth::client_addr::parse_cidrs(&self.trusted_proxies)
            .map_err(|reason| ConfigError::Invalid { name: "WAGATE_TRUSTED_PROXIES", reason })?;
        if self.paid_reserve_percent > 90 {
            return Err(ConfigError::Invalid {
                name: "WAGATE_PAID_RESERVE_PERCENT",
                reason: format!("{} is above 90", self.paid_reserve_percent),
            });
        }
        let jwt_secret = self.jwt_secret.filter(|s| !s.is_empty()).unwrap_or_else(|| {
            tracing::warn!("JWT_SECRET is not set: using a random secret, tokens will not survive a restart");
            random_secret()
        });
        let worker_auth_token = self.worker_auth_token.filter(|s| !s.is_empty()).unwrap_or_else(|| {
            if self.allow_shared_worker_token {
                tracing::warn!(
                    "WORKER_AUTH_TOKEN is not set: using a random token, no external worker can use the shared token"
                );
            }
            random_secret()
        });
        Ok(ControlPlaneConfig {
            grpc_listen: self.grpc_listen,
            database_url: self.database_url,
            db_max_connections: self.db_max_connections,
            redis_url: self.redis_url.filter(|s| !s.is_empty()),
            redis_prefix: self.redis_prefix,
            jwt_secret,
            jwt_issuer: self.jwt_issuer,
            jwt_ttl: Duration::from_secs(self.jwt_ttl_secs.max(60)),
            refresh_ttl: Duration::from_secs(self.refresh_ttl_secs.max(60)),
            reauth_window: Duration::from_secs(self.reauth_window_secs),
            number_check_cache: Duration::from_secs(self.number_check_cache_secs),
            worker_auth_token,
            allow_shared_worker_token: self.allow_shared_worker_token,
            trusted_proxies,
            edge_token: self.edge_token.filter(|s| !s.is_empty()),
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval_ms.max(50)),
            heartbeat_tolerance: self.heartbeat_tolerance.max(1),
            hello_timeout: Duration::from_millis(self.hello_timeout_ms.max(100)),
            grpc_limits: crate::server::listener::ListenerLimits {
                first_bytes_timeout: Duration::from_millis(self.grpc_first_bytes_timeout_ms.max(100)),
                idle_timeout: (self.grpc_idle_timeout_ms > 0)
                    .then(|| Duration::from_millis(self.grpc_idle_timeout_ms.max(1000))),
                max_connections: self.grpc_max_connections.max(1),
                keepalive_interval: Duration::from_millis(self.grpc_keepalive_interval_ms.max(100)),
                keepalive_timeout: Duration::from_millis(self.grpc_keepalive_timeout_ms.max(100)),
            },
            command_timeout: Duration::from_millis(self.command_timeout_ms.max(100)),
            worker_channel_capacity: self.worker_channel_capacity.max(1),
            key_cache_ttl: Duration::from_millis(self.key_cache_ttl_ms),
            status_batching: self.status_batching,
            status_write_window: Duration::from_millis(self.status_write_window_ms.min(1000)),
            redispatch_after: Duration::from_millis(self.redispatch_after_ms.max(1000)),
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
            auth_state_retired_keys,
            sweep_interval: Duration::from_millis(self.sweep_interval_ms.max(100)),
            rebalance_interval: (self.rebalance_interval_secs > 0).then(|| Duration::from_secs(self.rebalance_interval_secs)),
            rebalance_max_moves: self.rebalance_max_moves,
            fleet_target_utilization: self.fleet_target_utilization.clamp(0.05, 1.0),
            failover_concurrency: self.failover_concurrency.max(1),
            metrics_retention: Duration::from_secs(u64::from(self.metrics_retention_days.max(1)) * 86_400),
            metrics_listen,
            key_usage_flush: Duration::from_millis(self.key_usage_flush_ms.max(100)),
            health_check_interval: Duration::from_millis(self.health_check_interval_ms.max(100)),
            advertise_addr: self.advertise_addr.filter(|s| !s.trim().is_empty()),
            internal_token: self.internal_token.filter(|s| !s.is_empty()).unwrap_or_else(|| {
                tracing::info!("WAGATE_INTERNAL_TOKEN is not set: using a random one (single replica only)");
                random_secret()
            }),
            reconnect_grace: Duration::from_millis(self.reconnect_grace_ms),
            qr_timeout: (self.qr_timeout_secs > 0).then(|| Duration::from_secs(self.qr_timeout_secs)),
            paid_reserve_percent: self.paid_reserve_percent,
            webhooks: self.webhooks.into_settings(),
            email: self.email.into_settings()?,
            limits: self.limits.into_settings()?,
            media: self.media.into_settings(),
            usage_flush: Duration::from_millis((self.usage_flush_secs * 1000).max(100)),
            tls,
            metrics_token: self.metrics_token.filter(|s| !s.is_empty()),
        })
    }

    /// Whether this replica can have peers: it shares its state with other
    /// processes through Redis (`REDIS_URL`) or PostgreSQL (`DATABASE_URL`).
    /// On SQLite with the in-process cache no other replica can see it.
    pub fn can_have_peers(&self) -> bool {
        self.redis_url.as_deref().is_some_and(|u| !u.trim().is_empty())
            || self.database_url.trim_start().to_ascii_lowercase().starts_with("postgres")
    }

    /// Production (no `--dev`): the secrets whose random default would break
    /// something must be set. `JWT_SECRET` (a user token signed here would
    /// not verify after a restart or on another replica),
    /// `WAGATE_AUTH_STATE_KEY` (every replica would encrypt saved logins with
    /// its own key under the same key id: unreadable after a restart or
    /// elsewhere), `WAGATE_INTERNAL_TOKEN` when the replica can have peers
    /// (they would refuse each other's forwarded commands) and
    /// `WORKER_AUTH_TOKEN` when the shared worker token is accepted.
    pub fn require_secrets(&self) -> Result<(), ConfigError> {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        let missing = |name, reason| Err(ConfigError::Missing { name, reason });
        if !set(&self.jwt_secret) {
            return missing(
                "JWT_SECRET",
                "user tokens would not survive a restart nor verify on another replica",
            );
        }
        if !set(&self.auth_state_key) {
            return missing(
                "WAGATE_AUTH_STATE_KEY",
                "saved WhatsApp logins would be encrypted with a key of this process only, unreadable after a restart or on another replica",
            );
        }
        if !set(&self.internal_token) && self.can_have_peers() {
            return missing(
                "WAGATE_INTERNAL_TOKEN",
                "this replica can have peers (REDIS_URL or a PostgreSQL DATABASE_URL) and every replica needs the same one",
            );
        }
        if !set(&self.worker_auth_token) && self.allow_shared_worker_token {
            return missing(
                "WORKER_AUTH_TOKEN",
                "WAGATE_ALLOW_SHARED_WORKER_TOKEN is on, and a random shared token would admit no worker",
            );
        }
        Ok(())
    }

    /// Reads and checks the `WAGATE_TLS_*` files (`None`: plaintext).
    pub fn tls(&self) -> Result<Option<wagate_proto::tls::ServerTls>, ConfigError> {
        let path = wagate_proto::tls::non_empty_path;
        Ok(wagate_proto::tls::ServerTls::from_files(
            path(&self.tls_cert),
            path(&self.tls_key),
            path(&self.tls_ca),
            &self.tls_client_auth,
            self.tls_server_name.as_deref(),
        )?)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    WeakSecret(#[from] wagate_proto::secret::WeakSecret),
    #[error(
        "{name} is required in production: {reason}; set it (e.g. `openssl rand -hex 32`), or run with --dev / WAGATE_DEV=true for a local run"
    )]
    Missing { name: &'static str, reason: &'static str },
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("tls: {0}")]
    Tls(#[from] wagate_proto::tls::TlsError),
}

/// Minimum length of a configured secret, in bytes.
pub use wagate_proto::secret::MIN_SECRET_BYTES;

/// Refuses a weak secret by the rule every binary shares
/// ([`wagate_proto::secret::check`]: placeholders, short values, runs,
/// keyboard sequences and repeats).
pub fn check_secret(name: &'static str, value: &str) -> Result<(), ConfigError> {
    Ok(wagate_proto::secret::check(name, value)?)
}

/// `WAGATE_METRICS_LISTEN`: empty is off; anything else must be `address:port`.
pub fn parse_metrics_listen(raw: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(|_| ConfigError::Invalid {
        name: "WAGATE_METRICS_LISTEN",
        reason: format!(
            "{raw:?} is not address:port (e.g. 0.0.0.0:9090); leave it empty to turn /metrics off"
        ),
    })
}

/// `WAGATE_AUTH_STATE_RETIRED_KEYS`: `id:hex` entries separated by commas
/// (empty entries are skipped). The error names the entry by its position,
/// never its value (it is key material).
pub fn parse_retired_keys(raw: &str) -> Result<Vec<(String, String)>, ConfigError> {
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .enumerate()
        .map(|(i, entry)| match entry.split_once(':') {
            Some((id, key)) if !id.trim().is_empty() && !key.trim().is_empty() => {
                Ok((id.trim().to_owned(), key.trim().to_owned()))
            }
            _ => Err(ConfigError::Invalid {
                name: "WAGATE_AUTH_STATE_RETIRED_KEYS",
                reason: format!("entry {} is not id:hex (the format is id:hex,id:hex)", i + 1),
            }),
        })
        .collect()
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
            jwt_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(30 * 86_400),
            reauth_window: Duration::from_secs(300),
            number_check_cache: Duration::from_secs(600),
            worker_auth_token: random_secret(),
            // One machine: the simulated workers use the (random) shared token.
            allow_shared_worker_token: true,
            // One machine: the edge on loopback is the forwarder.
            trusted_proxies: vec![
                ipnet::IpNet::new_assert(std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 0)), 8),
                ipnet::IpNet::new_assert(std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), 128),
            ],
            edge_token: Some(random_secret()),
            heartbeat_interval: Duration::from_millis(500),
            heartbeat_tolerance: 3,
            hello_timeout: Duration::from_secs(5),
            grpc_limits: crate::server::listener::ListenerLimits::default(),
            command_timeout: Duration::from_secs(10),
            worker_channel_capacity: 1024,
            key_cache_ttl: Duration::from_secs(2),
            status_batching: true,
            status_write_window: Duration::from_millis(20),
            redispatch_after: Duration::from_secs(30),
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
            health_check_interval: Duration::from_millis(500),
            advertise_addr: None,
            internal_token: random_secret(),
            reconnect_grace: Duration::from_millis(1000),
            qr_timeout: Some(Duration::from_secs(300)),
            paid_reserve_percent: 0,
            webhooks: crate::webhooks::WebhookSettings::default(),
            email: crate::email::EmailSettings::default(),
            // Every rule counts, nothing is reached by accident: tests of
            // the limits set their own.
            limits: crate::limits::LimitSettings::generous(),
            // A folder of its own (the cluster of the tests sets one in its temp folder).
            media: crate::media::MediaSettings::local(
                std::env::temp_dir()
                    .join(format!("wagate-media-{}", random_secret().get(..12).unwrap_or("x")))
                    .display()
                    .to_string(),
            ),
            usage_flush: Duration::from_secs(2),
            tls: None,
            metrics_token: None,
        }
    }

    /// How long a worker → replica record lives without a refresh.
    pub fn route_ttl(&self) -> Duration {
        self.liveness_timeout() * 4
    }

    /// The address other replicas reach this one at, given the bound address.
    pub fn resolve_advertise_addr(&self, bound: SocketAddr) -> String {
        let scheme = self.grpc_scheme();
        if let Some(a) = &self.advertise_addr {
            return if a.contains("://") { a.clone() } else { format!("{scheme}://{a}") };
        }
        if bound.ip().is_unspecified() {
            let host = std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "127.0.0.1".into());
            format!("{scheme}://{host}:{}", bound.port())
        } else {
            format!("{scheme}://{bound}")
        }
    }

    /// `https` when the gRPC listener speaks TLS, else `http`.
    pub fn grpc_scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        cp: ControlPlaneArgs,
    }

    fn args(argv: &[&str]) -> ControlPlaneArgs {
        let mut all = vec!["control-plane"];
        all.extend_from_slice(argv);
        Cli::try_parse_from(all).expect("arguments parse").cp
    }

    #[test]
    fn peers_come_with_redis_or_postgres() {
        assert!(!args(&["--database-url", "sqlite://x.db?mode=rwc"]).can_have_peers());
        assert!(args(&["--database-url", "postgres://u@h/db"]).can_have_peers());
        assert!(args(&["--database-url", "postgresql://u@h/db"]).can_have_peers());
        assert!(args(&["--database-url", "sqlite::memory:", "--redis-url", "redis://r"]).can_have_peers());
    }

    #[test]
    fn dev_flag_and_missing_secrets() {
        assert!(args(&["--dev"]).dev);
        assert!(!args(&[]).dev);
        let e = args(&[]).into_config().expect_err("production needs secrets").to_string();
        assert!(e.contains("JWT_SECRET is required in production"), "{e}");
        assert!(args(&["--dev"]).into_config().is_ok());
    }

    #[test]
    fn bad_values_are_errors_not_defaults() {
        assert_eq!(parse_metrics_listen(" ").ok(), Some(None));
        assert_eq!(parse_metrics_listen("0.0.0.0:9090").ok(), Some(Some(([0, 0, 0, 0], 9090).into())));
        for bad in ["0.0.0.0", "localhost:9090", ":9090", "9090"] {
            let e = parse_metrics_listen(bad).expect_err(bad).to_string();
            assert!(e.contains("WAGATE_METRICS_LISTEN"), "{e}");
        }
        assert_eq!(parse_retired_keys("").ok(), Some(vec![]));
        assert_eq!(
            parse_retired_keys(" k0:aa , k1:bb,").ok(),
            Some(vec![("k0".into(), "aa".into()), ("k1".into(), "bb".into())])
        );
        for bad in ["k0", "k0:", ":aa", "k0:aa,secretvalue"] {
            let e = parse_retired_keys(bad).expect_err(bad).to_string();
            assert!(e.contains("WAGATE_AUTH_STATE_RETIRED_KEYS"), "{e}");
            assert!(!e.contains("secretvalue"), "{e}");
        }
    }
}
