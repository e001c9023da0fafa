//! A whole wagate on one machine, in-process: control plane, edge gateway
//! and SDK workers with the simulated driver, on ephemeral loopback ports.
//!
//! Used by the embedded `wagate` binary, the integration tests and the
//! benchmark (like quickwit's sandbox). Storage is SQLite + in-process cache,
//! or PostgreSQL + Redis with a database and key prefix of its own (so tests
//! run in parallel against one server).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::ConnectionTrait;
use wagate_edge_gateway::{EdgeConfig, EdgeServer, RunningEdge};
use wagate_worker_sdk::simulated::{SimulatedConfig, SimulatedDriver};
use wagate_worker_sdk::{Worker, WorkerConfig, WorkerHandle};

use crate::config::ControlPlaneConfig;
use crate::server::{ControlPlane, RunningControlPlane};

/// Default PostgreSQL server for tests (a database per cluster is created on it).
pub const TEST_POSTGRES_URL_ENV: &str = "WAGATE_TEST_POSTGRES_URL";
pub const TEST_REDIS_URL_ENV: &str = "WAGATE_TEST_REDIS_URL";
const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_TEST_REDIS_URL: &str = "redis://127.0.0.1:6379";

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
}

impl WorkerSpec {
    pub fn new(id: impl Into<String>, max_sessions: u32) -> Self {
        Self { id: id.into(), max_sessions, simulated: SimulatedConfig::default() }
    }
}

type ConfigTweak = Box<dyn FnOnce(&mut ControlPlaneConfig) + Send>;

pub struct ClusterBuilder {
    storage: Storage,
    workers: Vec<WorkerSpec>,
    tweak: Option<ConfigTweak>,
    edge: Option<EdgeConfig>,
}

impl ClusterBuilder {
    pub fn new(storage: Storage) -> Self {
        Self { storage, workers: Vec::new(), tweak: None, edge: Some(EdgeConfig::default()) }
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

    pub fn configure(mut self, f: impl FnOnce(&mut ControlPlaneConfig) + Send + 'static) -> Self {
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

    pub async fn start(self) -> Result<Cluster, ClusterError> {
        let mut cleanup = Cleanup::default();
        let mut config = match self.storage {
            Storage::Sqlite => {
                let dir = std::env::temp_dir().join(format!("wagate-test-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir).map_err(|e| ClusterError::Storage(e.to_string()))?;
                let url = format!("sqlite://{}?mode=rwc", dir.join("wagate.db").display());
                cleanup.dir = Some(dir);
                ControlPlaneConfig::local(url)
            }
            Storage::PostgresRedis => {
                let (url, admin_url, db_name) = create_postgres_database().await?;
                cleanup.postgres = Some((admin_url, db_name));
                let mut config = ControlPlaneConfig::local(url);
                config.redis_url =
                    Some(std::env::var(TEST_REDIS_URL_ENV).unwrap_or_else(|_| DEFAULT_TEST_REDIS_URL.into()));
                config.redis_prefix = format!("wagate-test:{}:", uuid::Uuid::new_v4().simple());
                config
            }
        };
        if let Some(tweak) = self.tweak {
            tweak(&mut config);
        }
        let cp = match ControlPlane::start(config).await {
            Ok(cp) => cp,
            Err(e) => {
                cleanup.run().await;
                return Err(ClusterError::ControlPlane(e.to_string()));
            }
        };
        let edge = match self.edge {
            Some(mut edge_config) => {
                edge_config.listen = ([127, 0, 0, 1], 0).into();
                edge_config.control_plane_url = cp.url();
                Some(EdgeServer::bind(edge_config).await.map_err(|e| ClusterError::Edge(e.to_string()))?)
            }
            None => None,
        };
        let mut cluster = Cluster { storage: self.storage, cp: Some(cp), edge, workers: Vec::new(), cleanup };
        for spec in self.workers {
            cluster.add_worker(spec).await?;
        }
        Ok(cluster)
    }
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
}

pub struct Cluster {
    pub storage: Storage,
    cp: Option<RunningControlPlane>,
    pub edge: Option<RunningEdge>,
    pub workers: Vec<ClusterWorker>,
    cleanup: Cleanup,
}

impl Cluster {
    pub fn cp(&self) -> &RunningControlPlane {
        self.cp.as_ref().expect("control plane is running until shutdown")
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

    /// A worker configuration pointing at this cluster's control plane.
    pub fn worker_config(&self, id: &str, max_sessions: u32) -> WorkerConfig {
        let mut config =
            WorkerConfig::new(self.grpc_url(), self.cp().state().config.worker_auth_token.clone(), id);
        config.max_sessions = max_sessions;
        config.endpoint = format!("sim://{id}");
        config.backoff_base = Duration::from_millis(50);
        config.backoff_max = Duration::from_millis(500);
        config
    }

    /// Starts an SDK worker with the simulated driver and waits until its
    /// stream is up.
    pub async fn add_worker(&mut self, spec: WorkerSpec) -> Result<&ClusterWorker, ClusterError> {
        let driver = SimulatedDriver::new(spec.simulated.clone());
        let handle = Worker::spawn(self.worker_config(&spec.id, spec.max_sessions), driver.clone());
        if !handle.wait_connected(Duration::from_secs(10)).await {
            return Err(ClusterError::WorkerConnect(spec.id));
        }
        // The stream is up once Welcome arrived; the registry entry is made
        // before Welcome is sent, so the worker is placeable now.
        self.workers.push(ClusterWorker { id: spec.id, driver, handle: Some(handle) });
        Ok(self.workers.last().expect("just pushed"))
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
        let cp = self.cp.take().expect("control plane is running until shutdown");
        let mut config = cp.state().config.clone();
        config.grpc_listen = cp.local_addr();
        let db = cp.state().db.conn.clone();
        if crash {
            cp.crash().await;
        } else {
            cp.shutdown().await;
        }
        let _ = db.close().await;
        let mut last = None;
        for _ in 0..50 {
            match ControlPlane::start(config.clone()).await {
                Ok(cp) => {
                    self.cp = Some(cp);
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
        if let Some(cp) = self.cp.take() {
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
    postgres: Option<(String, String)>,
}

impl Cleanup {
    async fn run(&mut self) {
        if let Some(dir) = self.dir.take() {
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
