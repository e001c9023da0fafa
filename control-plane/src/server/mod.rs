//! Starting and stopping one control-plane replica: database, cache,
//! registry, the tonic server with health and reflection, graceful shutdown.
//! `listener` guards the gRPC listener; `run_to_completion` runs every
//! handler in a tracked task.

pub mod listener;
pub(crate) mod run_to_completion;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic_health::server::HealthReporter;
use wagate_proto::v1::{
    admin_service_server::AdminServiceServer, api_key_service_server::ApiKeyServiceServer,
    auth_service_server::AuthServiceServer, fleet_service_server::FleetServiceServer,
    internal_service_server::InternalServiceServer, media_service_server::MediaServiceServer,
    message_history_service_server::MessageHistoryServiceServer,
    message_service_server::MessageServiceServer, session_service_server::SessionServiceServer,
    usage_service_server::UsageServiceServer, user_service_server::UserServiceServer,
    webhook_service_server::WebhookServiceServer, worker_service_server::WorkerServiceServer,
};

use crate::auth::Authenticator;
use crate::auth::client_addr::Forwarders;
use crate::auth::jwt::JwtKeys;
use crate::auth::key_cache::KeyCache;
use crate::auth::key_usage::{self, KeyUsage};
use crate::bootstrap;
use crate::cache::{Cache, CacheError};
use crate::config::ControlPlaneConfig;
use crate::dispatch::Dispatcher;
use crate::dispatch::internal_api::InternalApi;
use crate::persistence::Db;
use crate::persistence::message_inserter::MessageInserter;
use crate::persistence::status_writer::StatusWriter;
use crate::services::{
    admin::AdminApi, api_keys::ApiKeyApi, auth::AuthApi, fleet::FleetApi, message_history::MessageHistoryApi,
    messages::MessageApi, sessions::SessionApi, users::UserApi,
};
use crate::state::{AppState, SharedState};
use crate::stream::connect::WorkerApi;
use crate::stream::custody::Vault;
use crate::stream::registry::Registry;
use crate::webhooks::Webhooks;
use crate::webhooks::service::WebhookApi;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Db(#[from] crate::persistence::DbErr),
    #[error("cache: {0}")]
    Cache(#[from] CacheError),
    #[error("bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("bootstrap: {0}")]
    Bootstrap(String),
    #[error("webhooks: {0}")]
    Webhooks(#[from] crate::webhooks::WebhookInitError),
    #[error("email: {0}")]
    Email(#[from] crate::email::EmailInitError),
    #[error("tls: {0}")]
    Tls(#[from] wagate_proto::tls::TlsError),
    #[error("media: {0}")]
    Media(#[from] crate::media::MediaError),
}

/// A running replica.
pub struct RunningControlPlane {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    state: SharedState,
    health: HealthReporter,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    stop_listener: CancellationToken,
    stop_health: CancellationToken,
}

pub struct ControlPlane;

/// Writer tasks of the message group commit: SQLite has one connection
/// (one writer); PostgreSQL gets a few so batches overlap their commits.
fn insert_writers(db: &Db, group_commit: bool) -> usize {
    match (group_commit, db.is_postgres()) {
        (false, _) => 0,
        (true, false) => 1,
        (true, true) => 4,
    }
}

/// Cached API-key lookups kept at most (about 200 bytes each).
const KEY_CACHE_CAPACITY: usize = 100_000;

/// `grpc.health.v1` service name of the liveness check.
pub const LIVENESS_SERVICE: &str = "liveness";

impl ControlPlane {
    /// Connects storage, applies migrations, binds the gRPC listener (port 0
    /// allowed) and starts serving.
    pub async fn start(config: ControlPlaneConfig) -> Result<RunningControlPlane, StartError> {
        Self::start_with_cache(config, None).await
    }

    /// Like [`ControlPlane::start`], with a given cache (the replicas of an
    /// in-process cluster share one in-process cache: their "Redis").
    pub async fn start_with_cache(
        config: ControlPlaneConfig,
        cache: Option<Cache>,
    ) -> Result<RunningControlPlane, StartError> {
        // Checked before anything starts: a bad certificate refuses start-up.
        let server_tls = config.tls.as_ref().map(wagate_proto::tls::ServerTls::tonic).transpose()?;
        let db = Db::connect(&config.database_url, config.db_max_connections).await?;
        let cache = match cache {
            Some(c) => c,
            None => Cache::connect(config.redis_url.as_deref(), &config.redis_prefix).await?,
        };
        let listener = TcpListener::bind(config.grpc_listen)
            .await
            .map_err(|source| StartError::Bind { addr: config.grpc_listen, source })?;
        let addr =
            listener.local_addr().map_err(|source| StartError::Bind { addr: config.grpc_listen, source })?;
        let registry = Registry::new();
        let dispatcher = Dispatcher::new(
            registry.clone(),
            cache.clone(),
            config.resolve_advertise_addr(addr),
            &config.internal_token,
            config.tls.as_ref().map(wagate_proto::tls::ServerTls::peer_client),
            config.command_timeout,
        );
        let jwt = JwtKeys::new(&config.jwt_secret, &config.jwt_issuer, config.jwt_ttl);
        let (key_id, key) = &config.auth_state_key;
        let vault = Vault::new(key_id, key, &config.auth_state_retired_keys)
            .map_err(|e| StartError::Bootstrap(e.to_string()))?;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let send_tracker = Arc::new(crate::send::tracker::SendTracker::new());
        let webhooks = Arc::new(Webhooks::new(config.webhooks.clone())?);
        let usage = Arc::new(crate::usage::UsageMeter::new());
        let email = Arc::new(crate::email::Mailer::new(config.email.clone())?);
        let media = crate::media::store::MediaStore::open(&config.media)?;
        let media_links =
            crate::media::links::LinkSigner::new(config.media.link_secret.as_deref(), &config.jwt_secret);
        let state: SharedState = Arc::new(AppState {
            auth: Authenticator::new(
                db.clone(),
                jwt,
                cache.clone(),
                config.reauth_window,
                Forwarders::new(config.trusted_proxies.clone(), config.edge_token.clone()),
                usage.clone(),
            ),
            limiter: crate::limits::Limiter::new(&cache, config.limits.clock.clone()),
            usage,
            vault,
            key_cache: KeyCache::new(config.key_cache_ttl, KEY_CACHE_CAPACITY),
            status_writer: StatusWriter::spawn(
                db.clone(),
                config.status_batching,
                config.status_write_window,
                send_tracker.clone(),
                &tasks,
                shutdown.clone(),
            ),
            send_tracker,
            message_inserter: MessageInserter::spawn(
                db.clone(),
                insert_writers(&db, config.group_commit),
                &tasks,
                shutdown.clone(),
            ),
            key_usage: KeyUsage::new(),
            webhooks,
            email,
            db,
            cache,
            registry,
            dispatcher,
            shutdown,
            tasks,
            redispatches: Default::default(),
            number_checks: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(config.number_check_cache.max(std::time::Duration::from_millis(1)))
                .build(),
            media,
            media_links,
            config,
        });
        // `message.status` webhook events commit with the status batches.
        state.status_writer.set_hook(state.webhooks.clone());
        if let (Some(email), Some(password)) = (&state.config.admin_email, &state.config.admin_password) {
            bootstrap::ensure_admin(&state, email, password)
                .await
                .map_err(|e| StartError::Bootstrap(e.to_string()))?;
        }

        key_usage::spawn_flusher(&state, state.config.key_usage_flush);
        crate::usage::spawn_flusher(&state, state.config.usage_flush);
        crate::auth::invalidation::spawn_listener(&state);

        let (health, health_service) = tonic_health::server::health_reporter();
        let serving = crate::telemetry::health::dependencies_up(&state).await;
        crate::telemetry::health::set_all(&health, serving).await;
        // The process is alive (for a liveness probe): stays SERVING while the
        // database is unreachable, unlike "" and the API services (readiness).
        health.set_service_status(LIVENESS_SERVICE, tonic_health::ServingStatus::Serving).await;
        let stop_health = CancellationToken::new();
        crate::telemetry::health::spawn_watch(
            state.clone(),
            health.clone(),
            state.config.health_check_interval,
            serving,
            stop_health.clone(),
        );
        // Reflection v1 and v1alpha (grpcio-reflection, Postman and older grpcurl speak only v1alpha).
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(wagate_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1alpha = reflection().build_v1alpha()?;
        let reflection = reflection().build_v1()?;
        crate::telemetry::metrics::describe();

        let incoming = tonic::transport::server::TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(Duration::from_secs(30)));
        let limits = state.config.grpc_limits;
        let (incoming, activity) = crate::server::listener::Guarded::new(incoming, limits);
        let stop_listener = CancellationToken::new();
        let stop = stop_listener.clone();
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = server_tls {
            builder =
                builder.tls_config(tls).map_err(|e| wagate_proto::tls::TlsError::Config(e.to_string()))?;
        }
        let router = builder
            .http2_keepalive_interval(Some(limits.keepalive_interval))
            .http2_keepalive_timeout(Some(limits.keepalive_timeout))
            .layer(activity)
            // A call's handler (with the layers below) finishes even when its
            // client goes away (see `run_to_completion`).
            .layer(crate::server::run_to_completion::RunToCompletionLayer::new(state.tasks.clone()))
            .layer(crate::telemetry::grpc::GrpcMetricsLayer)
            .layer(crate::limits::layer::ClientLimitLayer::new(state.clone()))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(WorkerServiceServer::new(WorkerApi::new(state.clone())))
            .add_service(AuthServiceServer::new(AuthApi::new(state.clone())))
            .add_service(SessionServiceServer::new(SessionApi::new(state.clone())))
            .add_service(MessageServiceServer::new(MessageApi::new(state.clone())))
            .add_service(FleetServiceServer::new(FleetApi::new(state.clone())))
            .add_service(MessageHistoryServiceServer::new(MessageHistoryApi::new(state.clone())))
            .add_service(ApiKeyServiceServer::new(ApiKeyApi::new(state.clone())))
            .add_service(UserServiceServer::new(UserApi::new(state.clone())))
            .add_service(AdminServiceServer::new(AdminApi::new(state.clone())))
            .add_service(InternalServiceServer::new(InternalApi::new(state.clone())))
            .add_service(WebhookServiceServer::new(WebhookApi::new(state.clone())))
            .add_service(UsageServiceServer::new(crate::usage::service::UsageApi::new(state.clone())))
            .add_service(MediaServiceServer::new(crate::media::service::MediaApi::new(state.clone())));
        let server =
            // The builder's tcp_nodelay / tcp_keepalive only apply to listeners
            // tonic binds itself; set them on this one's accepted sockets, or
            // Nagle + the peer's delayed ACK add up to 40 ms to small replies
            // and commands on the worker streams.
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, async move {
                stop.cancelled().await
            }));
        crate::fleet::sweeper::spawn(&state);
        crate::webhooks::dispatcher::spawn(&state);
        crate::email::outbox::spawn(&state);
        let metrics_addr = match state.config.metrics_listen {
            Some(a) => Some(
                crate::telemetry::http::serve(a, state.config.metrics_token.clone(), stop_listener.clone())
                    .await
                    .map_err(|source| StartError::Bind { addr: a, source })?,
            ),
            None => None,
        };
        tracing::info!(
            %addr,
            replica_id = state.config.replica_id,
            database = state.db.backend().as_str(),
            cache = state.cache.kind(),
            advertise = state.dispatcher.self_addr(),
            tls = state.config.tls.is_some(),
            client_certs = state.config.tls.as_ref().is_some_and(wagate_proto::tls::ServerTls::requires_client_cert),
            "control plane listening"
        );
        Ok(RunningControlPlane { addr, metrics_addr, state, health, server, stop_listener, stop_health })
    }
}

impl RunningControlPlane {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served, if on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// `http://127.0.0.1:<port>` (`https://` with TLS) for clients on this machine.
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.state.config.grpc_scheme(), self.addr.port())
    }

    /// What a client on this machine needs to reach this replica: its own
    /// certificate and `WAGATE_TLS_CA` (`None` without TLS).
    pub fn client_tls(&self) -> Option<wagate_proto::tls::ClientTls> {
        self.state.config.tls.as_ref().map(wagate_proto::tls::ServerTls::peer_client)
    }

    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// Graceful stop: health NOT_SERVING, refuse new work (503), end worker
    /// streams, stop the listener, join background tasks within the grace
    /// period.
    pub async fn shutdown(self) {
        let grace = self.state.config.shutdown_grace;
        self.stop_health.cancel();
        crate::telemetry::health::set_all(&self.health, false).await;
        self.state.shutdown.cancel();
        self.state.registry.cancel_all();
        self.stop_listener.cancel();
        self.state.tasks.close();
        let joined = tokio::time::timeout(grace, async {
            let _ = self.server.await;
            self.state.tasks.wait().await;
        })
        .await;
        if joined.is_err() {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "shutdown deadline passed with work in flight"
            );
        }
        tracing::info!("control plane stopped");
    }

    /// Abrupt stop, as if the process died (tests): nothing more is written
    /// for this replica (no OFFLINE marks, no route records cleared), its
    /// worker streams and listener go away, nothing is awaited.
    pub async fn kill(self) {
        // Queued status writes are lost, like in a killed process.
        self.state.status_writer.abort();
        self.state.shutdown.cancel();
        self.state.registry.cancel_all();
        self.stop_listener.cancel();
        self.server.abort();
        let _ = self.server.await;
        self.state.tasks.close();
        tracing::warn!(replica_id = self.state.config.replica_id, "control plane killed");
    }
}

/// Resolves on SIGTERM or Ctrl-C (the binaries' shutdown trigger).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Makes glibc serve large allocations (argon2id's 19 MiB working memory per
/// password hash) with mmap, so they go back to the system when freed instead
/// of staying in a heap arena: measured with 1,000 sessions on PostgreSQL,
/// peak RSS of the control plane 669 MiB → 57 MiB. Call once at start-up.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called at start-up
    // before other threads allocate heavily, with a valid option and value.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
