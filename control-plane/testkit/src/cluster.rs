//! A whole wagate on one machine, in-process: control plane, edge gateway
//! and SDK workers with the simulated driver, on ephemeral loopback ports.
//!
//! Used by the integration tests (like quickwit's sandbox). Storage is SQLite + in-process cache,
//! or PostgreSQL + Redis with a database and key prefix of its own (so tests
//! run in parallel against one server).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::ConnectionTrait;
use wagate_control_plane::cache::Cache;
use wagate_control_plane::config::ControlPlaneConfig;
use wagate_control_plane::server::{ControlPlane, RunningControlPlane};
use wagate_edge_gateway::{EdgeConfig, EdgeServer, RunningEdge};
use wagate_worker_sdk::simulated::{SimulatedConfig, SimulatedDriver};
use wagate_worker_sdk::{DriverError, EventSink, SessionDriver, Worker, WorkerConfig, WorkerHandle, v1};

use crate::tcp_proxy::TcpProxy;

/// Default PostgreSQL server for tests (a database per cluster is created on it).
pub const TEST_POSTGRES_URL_ENV: &str = "WAGATE_TEST_POSTGRES_URL";
pub const TEST_REDIS_URL_ENV: &str = "WAGATE_TEST_REDIS_URL";
const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_TEST_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// S3-compatible server of the media tests (`.ci/run` starts moto there).
pub const TEST_S3_ENDPOINT_ENV: &str = "WAGATE_TEST_S3_ENDPOINT";
const DEFAULT_TEST_S3_ENDPOINT: &str = "http://127.0.0.1:5055";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// SQLite file in a fresh temp folder + in-process cache.
    Sqlite,
    /// A fresh PostgreSQL database + Redis with a unique key prefix.
    PostgresRedis,
}

impl Storage {
    /// Both storages, for tests that must pass on each.
    pub const ALL: [Storage; 2] = [Storage::Sqlite, Storage::PostgresRedis];
}

#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub id: String,
    pub max_sessions: u32,
    pub simulated: SimulatedConfig,
    /// The replica the worker's stream goes to (index into the replicas).
    pub replica: usize,
    /// Runs the simulated phone behind [`LegacyDriver`]: a driver built
    /// before any command newer than the original five existed.
    pub legacy: bool,
}

impl WorkerSpec {
    pub fn new(id: impl Into<String>, max_sessions: u32) -> Self {
        Self { id: id.into(), max_sessions, simulated: SimulatedConfig::default(), replica: 0, legacy: false }
    }

    /// Connects this worker to replica `replica`.
    pub fn on(mut self, replica: usize) -> Self {
        self.replica = replica;
        self
    }

    /// Runs a driver that implements only the original five commands (see [`LegacyDriver`]).
    pub fn legacy(mut self) -> Self {
        self.legacy = true;
        self
    }
}

/// A driver written before the command table grew: it implements the five
/// required `SessionDriver` methods by forwarding to the simulated phone,
/// and nothing else — no newer command, no `supported_commands` — exactly
/// what an external driver compiled against an older SDK looks like.
pub struct LegacyDriver(pub Arc<SimulatedDriver>);

#[async_trait::async_trait]
impl SessionDriver for LegacyDriver {
    async fn start_session(&self, cmd: v1::StartSession, events: EventSink) -> Result<(), DriverError> {
        self.0.start_session(cmd, events).await
    }
    async fn stop_session(&self, cmd: v1::StopSession) -> Result<(), DriverError> {
        self.0.stop_session(cmd).await
    }
    async fn logout(&self, cmd: v1::Logout) -> Result<(), DriverError> {
        self.0.logout(cmd).await
    }
    async fn send_message(&self, cmd: v1::SendMessage) -> Result<v1::SendReceipt, DriverError> {
        self.0.send_message(cmd).await
    }
    async fn get_status(&self, cmd: v1::GetStatus) -> Result<v1::SessionState, DriverError> {
        self.0.get_status(cmd).await
    }
    fn held_sessions(&self) -> Vec<v1::HeldSession> {
        self.0.held_sessions()
    }
}

type ConfigTweak = Box<dyn Fn(&mut ControlPlaneConfig) + Send>;

pub struct ClusterBuilder {
    storage: Storage,
    workers: Vec<WorkerSpec>,
    tweak: Option<ConfigTweak>,
    edge: Option<EdgeConfig>,
    replicas: usize,
    edge_replica: usize,
    db_proxy: bool,
    redis_proxy: bool,
    redis_down_at_start: bool,
    tls: Option<wagate_proto::tls::ServerTls>,
    s3_media: bool,
}

impl ClusterBuilder {
    pub fn new(storage: Storage) -> Self {
        Self {
            storage,
            workers: Vec::new(),
            tweak: None,
            edge: Some(EdgeConfig::default()),
            replicas: 1,
            edge_replica: 0,
            db_proxy: false,
            redis_proxy: false,
            redis_down_at_start: false,
            tls: None,
            s3_media: false,
        }
    }

    pub fn worker(mut self, spec: WorkerSpec) -> Self {
        self.workers.push(spec);
        self
    }

    pub fn workers(mut self, n: usize, max_sessions: u32) -> Self {
        for i in 0..n {
            self.workers.push(WorkerSpec::new(format!("worker-{}", i + 1), max_sessions));
        }
        self
    }

    /// Applied to the configuration of every replica.
    pub fn configure(mut self, f: impl Fn(&mut ControlPlaneConfig) + Send + 'static) -> Self {
        self.tweak = Some(Box::new(f));
        self
    }

    pub fn edge_config(mut self, config: EdgeConfig) -> Self {
        self.edge = Some(config);
        self
    }

    pub fn without_edge(mut self) -> Self {
        self.edge = None;
        self
    }

    /// Runs `n` control-plane replicas on the one database and cache (their
    /// workers then connect through a TCP proxy each, standing in for the
    /// Kubernetes Service: see [`Cluster::move_worker`], [`Cluster::kill_replica`]).
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n.max(1);
        self
    }

    /// The replica the edge gateway talks to.
    pub fn edge_on(mut self, replica: usize) -> Self {
        self.edge_replica = replica;
        self
    }

    /// Puts a TCP proxy between the control plane and PostgreSQL
    /// ([`Cluster::db_proxy`]: cut and restore it to simulate an outage).
    pub fn db_proxy(mut self) -> Self {
        self.db_proxy = true;
        self
    }

    /// Puts a TCP proxy between the control planes and Redis
    /// ([`Cluster::redis_proxy`]: cut and restore it to simulate an outage,
    /// without touching the shared Redis server).
    pub fn redis_proxy(mut self) -> Self {
        self.redis_proxy = true;
        self
    }

    /// With [`ClusterBuilder::redis_proxy`]: the replicas get a Redis
    /// connection made through the proxy, which is then cut before they
    /// start, so their first dependency check fails
    /// ([`Cluster::redis_proxy`]'s `restore` brings Redis back).
    pub fn redis_down_at_start(mut self) -> Self {
        self.redis_proxy = true;
        self.redis_down_at_start = true;
        self
    }

    /// TLS on every replica's gRPC listener; the edge and the workers then
    /// dial `https://`, trusting its CA and presenting its certificate (a
    /// worker's [`WorkerConfig::tls`] can be changed with [`Cluster::worker_config`]).
    pub fn tls(mut self, tls: wagate_proto::tls::ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Media in a fresh bucket of the test S3 server (`WAGATE_TEST_S3_ENDPOINT`,
    /// moto started by `.ci/run`) instead of a local folder; the cluster
    /// fails to start (never skips) when that server does not answer.
    pub fn s3_media(mut self) -> Self {
        self.s3_media = true;
        self
    }

    pub async fn start(self) -> Result<Cluster, ClusterError> {
        let mut cleanup = Cleanup::default();
        let mut db_proxy = None;
        let mut redis_proxy = None;
        let mut shared_cache = None;
        let mut config = match self.storage {
            Storage::Sqlite => {
                let dir = std::env::temp_dir().join(format!("wagate-test-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir).map_err(|e| ClusterError::Storage(e.to_string()))?;
                let url = format!("sqlite://{}?mode=rwc", dir.join("wagate.db").display());
                cleanup.dir = Some(dir);
                if self.replicas > 1 {
                    // One in-process "Redis" for every replica.
                    shared_cache = Some(Cache::Memory(wagate_control_plane::cache::MemoryCache::default()));
                }
                ControlPlaneConfig::local(url)
            }
            Storage::PostgresRedis => {
                let (mut url, admin_url, db_name) = create_postgres_database().await?;
                cleanup.postgres = Some((admin_url, db_name));
                if self.db_proxy {
                    let (rewritten, proxy) = proxied_url(&url).await?;
                    url = rewritten;
                    db_proxy = Some(proxy);
                }
                let mut config = ControlPlaneConfig::local(url);
                let mut redis_url =
                    std::env::var(TEST_REDIS_URL_ENV).unwrap_or_else(|_| DEFAULT_TEST_REDIS_URL.into());
                if self.redis_proxy {
                    let (rewritten, proxy) = proxied_url(&redis_url).await?;
                    redis_url = rewritten;
                    redis_proxy = Some(proxy);
                }
                config.redis_url = Some(redis_url);
                config.redis_prefix = format!("wagate-test:{}:", uuid::Uuid::new_v4().simple());
                if let (true, Some(proxy)) = (self.redis_down_at_start, &redis_proxy) {
                    let cache = Cache::connect(config.redis_url.as_deref(), &config.redis_prefix)
                        .await
                        .map_err(|e| ClusterError::Storage(format!("redis: {e}")))?;
                    proxy.cut();
                    shared_cache = Some(cache);
                }
                config
            }
        };
        let media_dir = std::env::temp_dir().join(format!("wagate-media-{}", uuid::Uuid::new_v4().simple()));
        config.media = wagate_control_plane::media::MediaSettings::local(media_dir.display().to_string());
        cleanup.media_dir = Some(media_dir);
        if self.s3_media {
            let (endpoint, bucket) = create_s3_bucket().await?;
            config.media.url = format!("s3://{bucket}/media");
            config.media.s3 = wagate_control_plane::media::S3Overrides {
                endpoint: Some(endpoint),
                access_key_id: Some("testing".into()),
                secret_access_key: Some("testing".into()),
                region: Some("us-east-1".into()),
                allow_http: true,
            };
        }
        if let Some(tweak) = &self.tweak {
            tweak(&mut config);
        }
        if self.tls.is_some() {
            config.tls = self.tls.clone();
        }
        let mut cps = Vec::with_capacity(self.replicas);
        for i in 0..self.replicas {
            let mut c = config.clone();
            if self.replicas > 1 {
                c.replica_id = format!("replica-{i}");
            }
            match ControlPlane::start_with_cache(c, shared_cache.clone()).await {
                Ok(cp) => cps.push(Some(cp)),
                Err(e) => {
                    for cp in cps.into_iter().flatten() {
                        cp.shutdown().await;
                    }
                    cleanup.run().await;
                    return Err(ClusterError::ControlPlane(e.to_string()));
                }
            }
        }
        let edge_replica = self.edge_replica.min(cps.len() - 1);
        let mut cluster = Cluster {
            storage: self.storage,
            cps,
            edge: None,
            extra_edges: Vec::new(),
            workers: Vec::new(),
            cleanup,
            db_proxy,
            redis_proxy,
        };
        if let Some(edge_config) = self.edge {
            let edge = cluster.start_edge(edge_config, edge_replica).await?;
            cluster.edge = Some(edge);
        }
        for spec in self.workers {
            cluster.add_worker(spec).await?;
        }
        Ok(cluster)
    }
}

/// Rewrites a PostgreSQL URL to go through a new TCP proxy.
async fn proxied_url(url: &str) -> Result<(String, TcpProxy), ClusterError> {
    let storage = |e: String| ClusterError::Storage(e);
    let (scheme, rest) = url.split_once("://").ok_or_else(|| storage(format!("bad url {url}")))?;
    let (auth_host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (auth, host) = match auth_host.rsplit_once('@') {
        Some((a, h)) => (format!("{a}@"), h),
        None => (String::new(), auth_host),
    };
    let host = if host.contains(':') { host.to_owned() } else { format!("{host}:5432") };
    let target = tokio::net::lookup_host(host.clone())
        .await
        .map_err(|e| storage(e.to_string()))?
        .next()
        .ok_or_else(|| storage(format!("cannot resolve {host}")))?;
    let proxy = TcpProxy::start(target).await.map_err(|e| storage(e.to_string()))?;
    Ok((format!("{scheme}://{auth}127.0.0.1:{}/{path}", proxy.addr().port()), proxy))
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("storage: {0}")]
    Storage(String),
    #[error("control plane: {0}")]
    ControlPlane(String),
    #[error("edge gateway: {0}")]
    Edge(String),
    #[error("worker {0} did not connect in time")]
    WorkerConnect(String),
}

pub struct ClusterWorker {
    pub id: String,
    pub driver: Arc<SimulatedDriver>,
    pub handle: Option<WorkerHandle>,
    /// The replica its stream goes to.
    pub replica: usize,
    /// Its "Service" in front of the replicas (clusters of several replicas).
    pub proxy: Option<TcpProxy>,
}

pub struct Cluster {
    pub storage: Storage,
    cps: Vec<Option<RunningControlPlane>>,
    pub edge: Option<RunningEdge>,
    extra_edges: Vec<RunningEdge>,
    pub workers: Vec<ClusterWorker>,
    cleanup: Cleanup,
    db_proxy: Option<TcpProxy>,
    redis_proxy: Option<TcpProxy>,
}

impl Cluster {
    /// The first replica still running.
    pub fn cp(&self) -> &RunningControlPlane {
        self.cps.iter().flatten().next().expect("a control plane is running until shutdown")
    }

    /// Replica `i` (panics if it was killed).
    pub fn cp_at(&self, i: usize) -> &RunningControlPlane {
        self.cps.get(i).and_then(Option::as_ref).expect("replica is running")
    }

    pub fn replica_count(&self) -> usize {
        self.cps.len()
    }

    /// The proxy between the control plane and PostgreSQL, if asked for.
    pub fn db_proxy(&self) -> Option<&TcpProxy> {
        self.db_proxy.as_ref()
    }

    /// The proxy between the control planes and Redis, if asked for.
    pub fn redis_proxy(&self) -> Option<&TcpProxy> {
        self.redis_proxy.as_ref()
    }

    /// Base URL of the edge gateway, e.g. `http://127.0.0.1:34567`.
    pub fn http_url(&self) -> String {
        match &self.edge {
            Some(e) => format!("http://127.0.0.1:{}", e.local_addr().port()),
            None => String::new(),
        }
    }

    pub fn grpc_url(&self) -> String {
        self.cp().url()
    }

    async fn start_edge(&self, mut config: EdgeConfig, replica: usize) -> Result<RunningEdge, ClusterError> {
        config.listen = ([127, 0, 0, 1], 0).into();
        config.control_plane_url = self.cp_at(replica).url();
        if config.tls.is_none() {
            // TLS replicas (`configure(|c| c.tls = …)`): the edge trusts their CA
            // and presents their certificate.
            config.tls = self.cp_at(replica).client_tls();
        }
        if config.edge_token.is_none() {
            config.edge_token = self.cp_at(replica).state().config.edge_token.clone();
        }
        EdgeServer::bind(config).await.map_err(|e| ClusterError::Edge(e.to_string()))
    }

    /// Starts another edge gateway talking to `replica`; returns its base URL.
    pub async fn add_edge(&mut self, replica: usize) -> Result<String, ClusterError> {
        self.add_edge_with(replica, EdgeConfig::default()).await
    }

    /// [`Cluster::add_edge`] with its own configuration.
    pub async fn add_edge_with(
        &mut self,
        replica: usize,
        config: EdgeConfig,
    ) -> Result<String, ClusterError> {
        let edge = self.start_edge(config, replica).await?;
        let url = format!("http://127.0.0.1:{}", edge.local_addr().port());
        self.extra_edges.push(edge);
        Ok(url)
    }

    /// A worker configuration pointing at this cluster's control plane.
    pub fn worker_config(&self, id: &str, max_sessions: u32) -> WorkerConfig {
        self.worker_config_to(self.grpc_url(), id, max_sessions)
    }

    fn worker_config_to(&self, url: String, id: &str, max_sessions: u32) -> WorkerConfig {
        let mut config = WorkerConfig::new(url, self.cp().state().config.worker_auth_token.clone(), id);
        config.max_sessions = max_sessions;
        config.endpoint = format!("sim://{id}");
        config.backoff_base = Duration::from_millis(50);
        config.backoff_max = Duration::from_millis(500);
        config.tls = self.cp().client_tls();
        config
    }

    /// Starts an SDK worker with the simulated driver and waits until its
    /// stream is up.
    pub async fn add_worker(&mut self, spec: WorkerSpec) -> Result<&ClusterWorker, ClusterError> {
        let driver = SimulatedDriver::new(spec.simulated.clone());
        let replica = spec.replica.min(self.cps.len() - 1);
        let (url, proxy) = if self.cps.len() > 1 {
            let proxy = TcpProxy::start(self.cp_at(replica).local_addr())
                .await
                .map_err(|e| ClusterError::Storage(e.to_string()))?;
            let scheme = self.cp_at(replica).state().config.grpc_scheme();
            (format!("{scheme}://127.0.0.1:{}", proxy.addr().port()), Some(proxy))
        } else {
            (self.cp_at(replica).url(), None)
        };
        let sdk_driver: Arc<dyn SessionDriver> =
            if spec.legacy { Arc::new(LegacyDriver(driver.clone())) } else { driver.clone() };
        let handle = Worker::spawn(self.worker_config_to(url, &spec.id, spec.max_sessions), sdk_driver);
        if !handle.wait_connected(Duration::from_secs(10)).await {
            return Err(ClusterError::WorkerConnect(spec.id));
        }
        // The stream is up once Welcome arrived; the registry entry is made
        // right after Welcome is queued, so the worker is placeable now.
        self.workers.push(ClusterWorker { id: spec.id, driver, handle: Some(handle), replica, proxy });
        Ok(self.workers.last().expect("just pushed"))
    }

    /// Moves a worker's stream to `replica`: its "Service" now leads there
    /// and its current connection is dropped (it reconnects by itself).
    pub fn move_worker(&mut self, id: &str, replica: usize) {
        let addr = self.cp_at(replica).local_addr();
        let w = self.workers.iter_mut().find(|w| w.id == id).expect("worker exists");
        let proxy = w.proxy.as_ref().expect("moving workers needs a cluster of several replicas");
        proxy.set_upstream(addr);
        proxy.reset();
        w.replica = replica;
    }

    /// Kills replica `i` (as if its process died) and points its workers'
    /// "Service" at the next running replica, as Kubernetes would.
    pub async fn kill_replica(&mut self, i: usize) {
        let Some(cp) = self.cps.get_mut(i).and_then(Option::take) else { return };
        cp.kill().await;
        let Some(next) =
            (0..self.cps.len()).map(|k| (i + 1 + k) % self.cps.len()).find(|k| self.cps[*k].is_some())
        else {
            return;
        };
        let addr = self.cp_at(next).local_addr();
        for w in self.workers.iter_mut().filter(|w| w.replica == i) {
            if let Some(p) = &w.proxy {
                p.set_upstream(addr);
                p.reset();
            }
            w.replica = next;
        }
    }

    pub fn worker(&self, id: &str) -> Option<&ClusterWorker> {
        self.workers.iter().find(|w| w.id == id)
    }

    /// The simulated driver that runs `session_id`, if any.
    pub fn driver_of(&self, session_id: &str) -> Option<&Arc<SimulatedDriver>> {
        self.workers.iter().map(|w| &w.driver).find(|d| d.session_status(session_id).is_some())
    }

    /// The driver of a still-running worker that runs `session_id`.
    pub fn driver_of_live(&self, session_id: &str) -> Option<&Arc<SimulatedDriver>> {
        self.workers
            .iter()
            .filter(|w| w.handle.is_some())
            .map(|w| &w.driver)
            .find(|d| d.session_status(session_id).is_some())
    }

    /// Stops the control plane (gracefully, or at once like `kill -9` when
    /// `crash`) and starts a new one on the same address and storage; the
    /// workers and the edge reconnect to it.
    pub async fn restart_control_plane(&mut self, crash: bool) -> Result<(), ClusterError> {
        let cp =
            self.cps.first_mut().and_then(Option::take).expect("control plane is running until shutdown");
        let mut config = cp.state().config.clone();
        config.grpc_listen = cp.local_addr();
        let db = cp.state().db.conn.clone();
        if crash {
            cp.kill().await;
        } else {
            cp.shutdown().await;
        }
        let _ = db.close().await;
        let mut last = None;
        for _ in 0..50 {
            match ControlPlane::start(config.clone()).await {
                Ok(cp) => {
                    self.cps[0] = Some(cp);
                    return Ok(());
                }
                Err(e) => {
                    last = Some(e.to_string());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        Err(ClusterError::ControlPlane(last.unwrap_or_default()))
    }

    /// Stops everything and removes the test database / folder.
    pub async fn shutdown(mut self) {
        for w in &mut self.workers {
            if let Some(h) = w.handle.take() {
                h.shutdown().await;
            }
        }
        if let Some(edge) = self.edge.take() {
            edge.shutdown().await;
        }
        for edge in self.extra_edges.drain(..) {
            edge.shutdown().await;
        }
        if let Some(p) = &self.db_proxy {
            p.restore();
        }
        if let Some(p) = &self.redis_proxy {
            p.restore();
        }
        for cp in self.cps.iter_mut().filter_map(Option::take) {
            let db = cp.state().db.conn.clone();
            cp.shutdown().await;
            let _ = db.close().await;
        }
        self.cleanup.run().await;
    }
}

#[derive(Default)]
struct Cleanup {
    dir: Option<PathBuf>,
    media_dir: Option<PathBuf>,
    postgres: Option<(String, String)>,
}

impl Cleanup {
    async fn run(&mut self) {
        for dir in [self.dir.take(), self.media_dir.take()].into_iter().flatten() {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((admin_url, name)) = self.postgres.take()
            && let Ok(admin) = sea_orm::Database::connect(admin_url).await
        {
            let _ =
                admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
            let _ = admin.close().await;
        }
    }
}

/// Creates a uniquely named database on the test PostgreSQL server.
/// Fails (never skips) when the server is not reachable.
async fn create_postgres_database() -> Result<(String, String, String), ClusterError> {
    let admin_url = std::env::var(TEST_POSTGRES_URL_ENV).unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.into());
    let name = format!("wagate_t_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(admin_url.clone()).await.map_err(|e| {
        ClusterError::Storage(format!("PostgreSQL at {admin_url} is required for this test: {e}"))
    })?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .map_err(|e| ClusterError::Storage(format!("create database: {e}")))?;
    let _ = admin.close().await;
    let base = admin_url.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin_url.clone());
    Ok((format!("{base}/{name}"), admin_url, name))
}

/// Creates a uniquely named bucket on the test S3 server; fails (never
/// skips) when it is not reachable. Returns (endpoint, bucket).
async fn create_s3_bucket() -> Result<(String, String), ClusterError> {
    use http_body_util::Empty;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let endpoint = std::env::var(TEST_S3_ENDPOINT_ENV).unwrap_or_else(|_| DEFAULT_TEST_S3_ENDPOINT.into());
    let endpoint = endpoint.trim_end_matches('/').to_owned();
    let bucket = format!("wagate-t-{}", uuid::Uuid::new_v4().simple());
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let request = http::Request::put(format!("{endpoint}/{bucket}"))
        .body(Empty::new())
        .map_err(|e| ClusterError::Storage(e.to_string()))?;
    let unreachable = |e: String| {
        ClusterError::Storage(format!(
            "the S3 server at {endpoint} is required for this test ({TEST_S3_ENDPOINT_ENV}): {e}"
        ))
    };
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .map_err(|_| unreachable("timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(unreachable(format!("creating bucket {bucket}: HTTP {}", response.status())));
    }
    Ok((endpoint, bucket))
}
