//! `wagate-bench`: throughput, latency and memory of the send path, against
//! the ceiling of this machine in the same run.
//!
//! Starts the real stack as separate processes on loopback (the release
//! `control-plane`, `edge-gateway` and K `wagate-worker`s with simulated
//! sessions that pair themselves), on a fresh SQLite file or a fresh
//! PostgreSQL database + Redis prefix; creates S connected sessions; then,
//! for each connection count C, drives for T seconds:
//! - a bare hyper handler returning a fixed JSON body (the ceiling),
//! - `GET /health` of the edge (the edge's own overhead),
//! - `GET /health/ready` of the edge: one gRPC call to the control plane
//!   that touches no database, cache or worker (the floor of any proxied
//!   route: the customer's edge → gRPC shape),
//! - `POST /api/v1/sessions/{id}/send` across all sessions (the full path),
//!
//! and a second scenario: `GET /sessions` of a user with 20 sessions, and
//! session create + delete churn. Reports a table and JSON (stdout and
//! `bench-results/`), peak RSS of every process, CPU split between the
//! processes, and verifies that every accepted send is in the database.

mod load;
mod procs;
mod stats;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http::{HeaderValue, Method};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde::Serialize;
use serde_json::{Value, json};

use load::Prepared;
use procs::{Mem, Proc};
use stats::Summary;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum StorageArg {
    Sqlite,
    Postgres,
    Both,
}

/// Rate limits and quotas of the control plane under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum LimitsArg {
    /// Every rule counted on every call (per-IP, session operations, the
    /// tier quota, login and sign-up), with limits the load never reaches.
    On,
    /// No rule at all (the cost of the limiter is the difference).
    Off,
}

impl LimitsArg {
    fn env(self) -> Vec<(&'static str, String)> {
        let (count, rate) = match self {
            LimitsArg::On => ("1000000000", "1000000000/1h"),
            LimitsArg::Off => ("0", "off"),
        };
        let mut env: Vec<(&'static str, String)> =
            ["WAGATE_QUOTA_BASIC", "WAGATE_QUOTA_PRO", "WAGATE_QUOTA_MAX"]
                .iter()
                .map(|k| (*k, count.to_owned()))
                .collect();
        for k in [
            "WAGATE_LIMIT_IP",
            "WAGATE_LIMIT_SESSION_OPS",
            "WAGATE_LIMIT_LOGIN_ACCOUNT",
            "WAGATE_LIMIT_LOGIN_IP",
            "WAGATE_LIMIT_REGISTER_IP",
        ] {
            env.push((k, rate.to_owned()));
        }
        env
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Send,
    Churn,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Lifecycle {
    Realistic,
    Fast,
}

/// The simulated lifecycle in effect: (delivered min, max, read min, max ms, read share).
#[derive(Debug, Clone, Copy, Serialize)]
struct LifecycleParams {
    delivered_ms: u64,
    delivered_max_ms: u64,
    read_ms: u64,
    read_max_ms: u64,
    read_share: f64,
}

impl Args {
    fn lifecycle(&self) -> LifecycleParams {
        let base = match self.lifecycle {
            Lifecycle::Realistic => LifecycleParams {
                delivered_ms: 300,
                delivered_max_ms: 3000,
                read_ms: 1000,
                read_max_ms: 8000,
                read_share: 0.6,
            },
            Lifecycle::Fast => LifecycleParams {
                delivered_ms: 50,
                delivered_max_ms: 50,
                read_ms: 100,
                read_max_ms: 100,
                read_share: 1.0,
            },
        };
        let delivered_ms = self.delivered_ms.unwrap_or(base.delivered_ms);
        let read_ms = self.read_ms.unwrap_or(base.read_ms);
        LifecycleParams {
            delivered_ms,
            delivered_max_ms: self.delivered_max_ms.unwrap_or(base.delivered_max_ms).max(delivered_ms),
            read_ms,
            read_max_ms: self.read_max_ms.unwrap_or(base.read_max_ms).max(read_ms),
            read_share: self.read_share.unwrap_or(base.read_share).clamp(0.0, 1.0),
        }
    }
}

#[derive(Parser, Debug, Clone)]
#[command(name = "wagate-bench", about = "wagate send-path benchmark (real processes on loopback)")]
struct Args {
    /// Storage of the control plane: SQLite file + in-process cache, or PostgreSQL + Redis.
    #[arg(long, value_enum, default_value = "sqlite")]
    storage: StorageArg,
    /// Concurrent HTTP/1.1 keep-alive connections, comma-separated (one run each).
    #[arg(short = 'c', long, value_delimiter = ',', default_value = "1,64,256")]
    connections: Vec<usize>,
    /// Measured seconds per run.
    #[arg(short = 't', long, default_value_t = 3.0)]
    seconds: f64,
    /// Warm-up seconds before each run (not measured).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Simulated worker processes.
    #[arg(short = 'k', long, default_value_t = 2)]
    workers: usize,
    /// Connected sessions the sends are spread over.
    #[arg(short = 's', long, default_value_t = 20)]
    sessions: usize,
    /// Which scenarios to run.
    #[arg(long, value_enum, default_value = "all")]
    scenario: Scenario,
    /// Connections of the churn / listing scenario.
    #[arg(long, default_value_t = 8)]
    churn_connections: usize,
    /// Message lifecycle the simulated workers report: `realistic` (DELIVERED
    /// for every message after 0.3–3 s, READ for 60 % of them 1–8 s later)
    /// or `fast` (DELIVERED after 50 ms, READ for all 100 ms later: the old
    /// figures). The flags below override single values.
    #[arg(long, value_enum, default_value = "realistic")]
    lifecycle: Lifecycle,
    /// DELIVERED after at least this many ms (per message, uniform up to --delivered-max-ms).
    #[arg(long)]
    delivered_ms: Option<u64>,
    #[arg(long)]
    delivered_max_ms: Option<u64>,
    /// READ at least this many ms after DELIVERED (uniform up to --read-max-ms).
    #[arg(long)]
    read_ms: Option<u64>,
    #[arg(long)]
    read_max_ms: Option<u64>,
    /// Share of delivered messages that are read (0 to 1).
    #[arg(long)]
    read_share: Option<f64>,
    /// PostgreSQL server (a fresh database is created on it and dropped after).
    /// Loopback without TLS by default, as the brief's Node design runs
    /// (Debian clusters have `ssl = on`, and sqlx's default
    /// `sslmode=prefer` would encrypt loopback traffic); drop the
    /// `sslmode` parameter to measure with TLS.
    #[arg(
        long,
        env = "WAGATE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
    )]
    postgres_url: String,
    #[arg(long, env = "WAGATE_BENCH_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Folder of the release binaries (default: next to this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Results folder.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Free-form label stored in the JSON (e.g. "before", "after-key-cache").
    #[arg(long, default_value = "")]
    label: String,
    /// Extra environment of the control plane, `KEY=VALUE` (repeatable), e.g.
    /// `--cp-env WAGATE_KEY_CACHE_TTL_MS=0` to measure without the key cache.
    #[arg(long = "cp-env", value_parser = parse_kv)]
    cp_env: Vec<(String, String)>,
    /// Rate limits of the control plane, comma-separated (one whole run
    /// each, in this order): `on,off` measures what the limiter adds.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "on")]
    limits: Vec<LimitsArg>,
    /// Control-plane replicas (PostgreSQL + Redis only). With 2 the workers'
    /// streams are on the first and the edge talks to the second, so every
    /// send is forwarded one hop; a second edge on the first replica sends
    /// locally in the same run (`send (local)` vs `send (forwarded)`: the
    /// cost of cluster dispatch).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Another edge-gateway binary (e.g. an older build) started beside the
    /// edge on the same control plane: its `/health` and send rows follow
    /// the edge's in the same run (`… (compare)`), for before/after figures
    /// that share the machine's noise.
    #[arg(long)]
    compare_edge: Option<PathBuf>,
    /// Internal: serve the bare hyper ceiling handler on this port.
    #[arg(long, hide = true)]
    serve_ceiling: Option<u16>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

const JSON_BODY: &[u8] = br#"{"success":true,"data":{"messageId":"01936f5e-0000-7000-8000-000000000000","status":"SENT","to":"6281234567890@s.whatsapp.net"}}"#;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Some(port) = args.serve_ceiling {
        return rt.block_on(serve_ceiling(port));
    }
    rt.block_on(run(args))
}

/// The ceiling: a bare hyper handler (same server builder as the edge:
/// HTTP/1.1 + HTTP/2 auto, TCP_NODELAY) that reads the body and answers a
/// fixed JSON body.
async fn serve_ceiling(port: u16) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                use http_body_util::BodyExt;
                let _ = req.into_body().collect().await;
                http::Response::builder()
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(Bytes::from_static(JSON_BODY)))
            });
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

/// The stack of one storage.
struct Stack {
    storage: &'static str,
    limits: LimitsArg,
    ceiling: Proc,
    cp: Proc,
    /// The second replica (`--replicas 2`): the edge's, not the workers'.
    cp2: Option<Proc>,
    edge: Proc,
    /// `--replicas 2`: an edge on the workers' replica (sends not forwarded).
    edge_local: Option<(Proc, SocketAddr)>,
    /// `--compare-edge`: the other edge binary, on the edge's control plane.
    edge_compare: Option<(Proc, SocketAddr)>,
    workers: Vec<Proc>,
    ceiling_addr: SocketAddr,
    edge_addr: SocketAddr,
    /// The control plane's Prometheus listener.
    metrics_addr: SocketAddr,
    db: DatabaseConnection,
    /// PostgreSQL: (admin url, database) to drop afterwards.
    pg_drop: Option<(String, String)>,
    dir: PathBuf,
}

impl Stack {
    /// The storage, and the limits when they are off (rows of an `on,off` run).
    fn label(&self) -> String {
        match self.limits {
            LimitsArg::On => self.storage.to_owned(),
            LimitsArg::Off => format!("{} (limits off)", self.storage),
        }
    }

    fn procs(&self) -> Vec<&Proc> {
        let mut v = vec![&self.ceiling, &self.cp, &self.edge];
        v.extend(self.cp2.iter());
        v.extend(self.edge_local.iter().map(|(p, _)| p));
        v.extend(self.edge_compare.iter().map(|(p, _)| p));
        v.extend(self.workers.iter());
        v
    }

    /// (name, cpu ticks) of every process, and the bench itself.
    fn cpu(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> =
            self.procs().iter().map(|p| (p.name.clone(), procs::cpu_ticks(&p.pid().to_string()))).collect();
        v.push(("bench".into(), procs::cpu_ticks("self")));
        if self.storage == "postgres" {
            // The database servers share the machine too (backends that exit
            // during a run are not counted).
            v.push(("postgres".into(), procs::cpu_ticks_by_comm("postgres")));
            v.push(("redis".into(), procs::cpu_ticks_by_comm("redis-server")));
        }
        v
    }

    fn mem(&self) -> BTreeMap<String, Mem> {
        let mut m: BTreeMap<String, Mem> =
            self.procs().iter().map(|p| (p.name.clone(), procs::mem(p.pid()))).collect();
        m.insert("bench".into(), procs::mem(std::process::id()));
        m
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        self.ceiling.check_alive()?;
        self.cp.check_alive()?;
        if let Some(cp2) = &mut self.cp2 {
            cp2.check_alive()?;
        }
        self.edge.check_alive()?;
        for (p, _) in self.edge_local.iter_mut().chain(self.edge_compare.iter_mut()) {
            p.check_alive()?;
        }
        for w in &mut self.workers {
            w.check_alive()?;
        }
        Ok(())
    }

    async fn teardown(self) {
        let Stack { ceiling, cp, cp2, edge, edge_local, edge_compare, workers, db, pg_drop, dir, .. } = self;
        drop(workers);
        drop(edge);
        drop(edge_local);
        drop(edge_compare);
        drop(cp2);
        drop(cp);
        drop(ceiling);
        let _ = db.close().await;
        if let Some((admin_url, name)) = pg_drop
            && let Ok(admin) = sea_orm::Database::connect(admin_url).await
        {
            let _ =
                admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
            let _ = admin.close().await;
        }
        let _ = std::fs::remove_file(dir.join("wagate.db"));
        let _ = std::fs::remove_file(dir.join("wagate.db-wal"));
        let _ = std::fs::remove_file(dir.join("wagate.db-shm"));
    }
}

async fn start_stack(
    args: &Args,
    storage: StorageArg,
    limits: LimitsArg,
    dir: &Path,
    bins: &Path,
) -> anyhow::Result<Stack> {
    std::fs::create_dir_all(dir)?;
    let token = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let (db_url, redis, pg_drop, storage_name) = match storage {
        StorageArg::Postgres => {
            let name = format!("wagate_bench_{}", uuid::Uuid::new_v4().simple());
            let admin = sea_orm::Database::connect(args.postgres_url.clone())
                .await
                .with_context(|| format!("PostgreSQL at {}", args.postgres_url))?;
            admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await?;
            let _ = admin.close().await;
            // Query parameters of the server URL (e.g. `?sslmode=disable`) carry over.
            let (server, query) = match args.postgres_url.split_once('?') {
                Some((s, q)) => (s, format!("?{q}")),
                None => (args.postgres_url.as_str(), String::new()),
            };
            let base = server.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or_default();
            let tls = if query.contains("sslmode=disable") { "off" } else { "as negotiated (sslmode)" };
            eprintln!("== PostgreSQL {base}/{name}{query} (TLS {tls})");
            (
                format!("{base}/{name}{query}"),
                Some(args.redis_url.clone()),
                Some((args.postgres_url.clone(), name)),
                "postgres",
            )
        }
        _ => (format!("sqlite://{}?mode=rwc", dir.join("wagate.db").display()), None, None, "sqlite"),
    };

    let ceiling_port = procs::free_port()?;
    let exe = std::env::current_exe()?;
    let mut ceiling =
        Proc::spawn("ceiling", &exe, &["--serve-ceiling", &ceiling_port.to_string()], &[], dir)?;
    let ceiling_addr: SocketAddr = ([127, 0, 0, 1], ceiling_port).into();
    procs::wait_listening(&mut ceiling, ceiling_addr, Duration::from_secs(10)).await?;

    let grpc_port = procs::free_port()?;
    let grpc_addr: SocketAddr = ([127, 0, 0, 1], grpc_port).into();
    let metrics_addr: SocketAddr = ([127, 0, 0, 1], procs::free_port()?).into();
    let mut env = vec![
        ("WAGATE_GRPC_LISTEN", grpc_addr.to_string()),
        ("WAGATE_METRICS_LISTEN", metrics_addr.to_string()),
        ("DATABASE_URL", db_url.clone()),
        ("WORKER_AUTH_TOKEN", token.clone()),
        ("WAGATE_ALLOW_SHARED_WORKER_TOKEN", "true".to_owned()),
        ("JWT_SECRET", wagate_control_plane::config::random_secret()),
        ("WAGATE_AUTH_STATE_KEY", wagate_control_plane::config::random_secret()),
        // Every replica the same (required by the production binary on PostgreSQL + Redis).
        ("WAGATE_INTERNAL_TOKEN", wagate_control_plane::config::random_secret()),
    ];
    env.extend(limits.env());
    for (k, v) in &args.cp_env {
        env.push((k.as_str(), v.clone()));
    }
    if let Some(r) = &redis {
        env.push(("REDIS_URL", r.clone()));
        env.push(("WAGATE_REDIS_PREFIX", format!("wagate-bench:{}:", uuid::Uuid::new_v4().simple())));
    }
    if args.replicas > 1 {
        anyhow::ensure!(redis.is_some(), "--replicas 2 needs --storage postgres (a shared Redis)");
    }
    let mut cp = Proc::spawn("control-plane", &bins.join("control-plane"), &[], &env, dir)?;
    procs::wait_listening(&mut cp, grpc_addr, Duration::from_secs(60)).await?;
    // `--replicas 2`: the edge talks to a second replica; the workers stay on the first.
    let (cp2, edge_cp_addr) = if args.replicas > 1 {
        let addr: SocketAddr = ([127, 0, 0, 1], procs::free_port()?).into();
        let mut env2 = env.clone();
        env2.retain(|(k, _)| *k != "WAGATE_GRPC_LISTEN" && *k != "WAGATE_METRICS_LISTEN");
        env2.push(("WAGATE_GRPC_LISTEN", addr.to_string()));
        env2.push(("WAGATE_METRICS_LISTEN", String::new()));
        let mut p = Proc::spawn("control-plane-2", &bins.join("control-plane"), &[], &env2, dir)?;
        procs::wait_listening(&mut p, addr, Duration::from_secs(60)).await?;
        (Some(p), addr)
    } else {
        (None, grpc_addr)
    };

    let edge_port = procs::free_port()?;
    let edge_addr: SocketAddr = ([127, 0, 0, 1], edge_port).into();
    let mut edge = Proc::spawn(
        "edge-gateway",
        &bins.join("edge-gateway"),
        &[],
        &[
            ("WAGATE_EDGE_LISTEN", edge_addr.to_string()),
            ("WAGATE_EDGE_CONTROL_PLANE_URL", format!("http://{edge_cp_addr}")),
        ],
        dir,
    )?;
    procs::wait_listening(&mut edge, edge_addr, Duration::from_secs(30)).await?;
    let edge_local = match cp2 {
        Some(_) => Some(spawn_edge("edge-gateway-local", &bins.join("edge-gateway"), grpc_addr, dir).await?),
        None => None,
    };
    let edge_compare = match &args.compare_edge {
        Some(bin) => Some(spawn_edge("edge-gateway-compare", bin, edge_cp_addr, dir).await?),
        None => None,
    };

    let k = args.workers.max(1);
    let life = args.lifecycle();
    let per_worker = args.sessions.div_ceil(k) + args.churn_connections + 4;
    let mut workers = Vec::new();
    for i in 0..k {
        let id = format!("bench-worker-{}", i + 1);
        let w = Proc::spawn(
            &id,
            &bins.join("wagate-worker"),
            &[],
            &[
                ("WAGATE_WORKER_CONTROL_PLANE_URL", format!("http://{grpc_addr}")),
                ("WORKER_AUTH_TOKEN", token.clone()),
                ("WAGATE_WORKER_ID", id.clone()),
                ("WAGATE_WORKER_ENDPOINT", format!("sim://{id}")),
                ("WAGATE_WORKER_MAX_SESSIONS", per_worker.to_string()),
                ("WAGATE_WORKER_AUTO_SCAN_MS", "50".into()),
                ("WAGATE_WORKER_DELIVERED_MS", life.delivered_ms.to_string()),
                ("WAGATE_WORKER_DELIVERED_MAX_MS", life.delivered_max_ms.to_string()),
                ("WAGATE_WORKER_READ_MS", life.read_ms.to_string()),
                ("WAGATE_WORKER_READ_MAX_MS", life.read_max_ms.to_string()),
                ("WAGATE_WORKER_READ_SHARE", life.read_share.to_string()),
            ],
            dir,
        )?;
        workers.push(w);
    }
    let db = sea_orm::Database::connect(db_url).await?;
    // Wait until every worker is ONLINE in the database.
    let start = Instant::now();
    loop {
        let online =
            count(&db, "SELECT COUNT(*) AS n FROM workers WHERE status = 'ONLINE'").await.unwrap_or(0);
        if online as usize >= k {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("only {online} of {k} workers came online");
        }
        for w in &mut workers {
            w.check_alive()?;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Stack {
        storage: storage_name,
        limits,
        ceiling,
        cp,
        cp2,
        edge,
        edge_local,
        edge_compare,
        workers,
        ceiling_addr,
        edge_addr,
        metrics_addr,
        db,
        pg_drop,
        dir: dir.to_path_buf(),
    })
}

/// One more edge-gateway process on `cp` (a free loopback port, no metrics
/// listener), once it listens.
async fn spawn_edge(
    name: &str,
    bin: &Path,
    cp: SocketAddr,
    dir: &Path,
) -> anyhow::Result<(Proc, SocketAddr)> {
    let addr: SocketAddr = ([127, 0, 0, 1], procs::free_port()?).into();
    let mut p = Proc::spawn(
        name,
        bin,
        &[],
        &[
            ("WAGATE_EDGE_LISTEN", addr.to_string()),
            ("WAGATE_EDGE_CONTROL_PLANE_URL", format!("http://{cp}")),
            // the first edge has the metrics port
            ("WAGATE_EDGE_METRICS_LISTEN", String::new()),
        ],
        dir,
    )?;
    procs::wait_listening(&mut p, addr, Duration::from_secs(30)).await?;
    Ok((p, addr))
}

async fn count(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql.to_owned()))
        .await?
        .context("no row")?;
    Ok(row.try_get("", "n")?)
}

/// A small REST client for set-up calls (not measured).
struct Rest {
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<Bytes>,
    >,
    base: String,
}

impl Rest {
    fn new(addr: SocketAddr) -> Self {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        Self { client, base: format!("http://{addr}") }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        use http_body_util::BodyExt;
        let mut b = http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let resp = self.client.request(b.body(http_body_util::Full::new(body))?).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, v))
    }

    async fn expect(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        want: u16,
    ) -> anyhow::Result<Value> {
        let (status, v) = self.call(method.clone(), path, token, body).await?;
        if status != want {
            bail!("{method} {path}: expected {want}, got {status}: {v}");
        }
        Ok(v["data"].clone())
    }
}

/// Registers `n` users (tier raised to MAX through SQL); returns their tokens.
async fn make_users(stack: &Stack, rest: &Arc<Rest>, prefix: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let mut tokens = Vec::with_capacity(n);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let rest = rest.clone();
        let email = format!("{prefix}-{i}@bench.local");
        set.spawn(async move {
            let d = rest
                .expect(
                    Method::POST,
                    "/api/v1/auth/register",
                    None,
                    Some(json!({"email": email, "password": "bench-password-1"})),
                    201,
                )
                .await?;
            d["token"].as_str().map(str::to_owned).context("token")
        });
        if set.len() >= 4
            && let Some(r) = set.join_next().await
        {
            tokens.push(r??);
        }
    }
    while let Some(r) = set.join_next().await {
        tokens.push(r??);
    }
    stack
        .db
        .execute_unprepared(&format!("UPDATE users SET tier = 'MAX' WHERE email LIKE '{prefix}-%'"))
        .await?;
    Ok(tokens)
}

/// Creates `n` sessions spread over `tokens` (20 each) and waits until all are CONNECTED.
async fn make_sessions(
    stack: &Stack,
    rest: &Arc<Rest>,
    tokens: &[String],
    n: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(n);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let rest = rest.clone();
        let token = tokens[i / 20].clone();
        set.spawn(async move {
            let d = rest
                .expect(
                    Method::POST,
                    "/api/v1/sessions",
                    Some(&token),
                    Some(json!({"name": format!("bench {i}")})),
                    201,
                )
                .await?;
            Ok::<_, anyhow::Error>((
                d["sessionId"].as_str().context("sessionId")?.to_owned(),
                d["apiKey"].as_str().context("apiKey")?.to_owned(),
            ))
        });
        if set.len() >= 8
            && let Some(r) = set.join_next().await
        {
            out.push(r??);
        }
    }
    while let Some(r) = set.join_next().await {
        out.push(r??);
    }
    let start = Instant::now();
    loop {
        let connected =
            count(&stack.db, "SELECT COUNT(*) AS n FROM sessions WHERE status = 'CONNECTED'").await?;
        if connected as usize >= n {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("only {connected} of {n} sessions connected");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
struct Row {
    storage: String,
    target: String,
    connections: usize,
    #[serde(flatten)]
    summary: Summary,
    /// sends/s ÷ ceiling req/s at the same C (send rows only).
    ratio_to_ceiling: Option<f64>,
    /// CPU used during the run, in % of one core, per process.
    cpu_pct: BTreeMap<String, f64>,
    /// VmRSS (KiB) of each process right after the run.
    rss_kib: BTreeMap<String, u64>,
    /// Send rows: what the run left behind and what it dispatched twice.
    #[serde(skip_serializing_if = "Option::is_none")]
    backlog: Option<Backlog>,
}

impl Row {
    /// This (send) row with its ratio to the ceiling row of the same C.
    fn against(mut self, ceiling: &Row) -> Row {
        if ceiling.summary.rps > 0.0 {
            self.ratio_to_ceiling = Some(self.summary.rps / ceiling.summary.rps);
        }
        self
    }

    /// CPU µs that process `name` spent per request of this row (0 when
    /// nothing was served).
    fn cpu_us_per_request(&self, name: &str) -> f64 {
        if self.summary.rps <= 0.0 {
            return 0.0;
        }
        self.cpu_pct.get(name).copied().unwrap_or(0.0) * 10_000.0 / self.summary.rps
    }
}

/// The state of the pipeline right after a send run stopped.
#[derive(Debug, Clone, Default, Serialize)]
struct Backlog {
    /// Messages still PENDING when the load stopped.
    pending_at_stop: i64,
    /// Of those, not acknowledged by any worker (the dispatch ledger).
    unacked_at_stop: i64,
    /// Time until no message was PENDING any more (capped at 20 s).
    pending_gone_ms: u64,
    /// `wagate_send_redispatches_total` of the control plane during the run
    /// and the drain.
    redispatches: u64,
    /// DELIVERED / READ rows written by the end of the drain (lifecycle check).
    delivered_or_read: i64,
}

#[derive(Debug, Clone, Serialize)]
struct StorageReport {
    storage: String,
    limits: LimitsArg,
    sessions: usize,
    workers: usize,
    rows: Vec<Row>,
    /// Peak (VmHWM) and current RSS of each process at the end, KiB.
    memory: BTreeMap<String, Mem>,
    verification: Verification,
    /// PostgreSQL's own counters of the message tables (pg_stat_user_tables).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    table_stats: Vec<Value>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Verification {
    accepted: usize,
    found_sent_or_later: usize,
    missing: usize,
    by_status: BTreeMap<String, i64>,
    /// How long after the last run until every accepted send was found.
    settle_ms: u64,
    ok: bool,
}

/// CPU % of each process between two [`Stack::cpu`] readings `wall` seconds
/// apart; the workers are summed as one.
fn cpu_pct(before: &[(String, u64)], after: &[(String, u64)], wall: f64) -> BTreeMap<String, f64> {
    let mut pct = BTreeMap::new();
    for ((name, b), (_, a)) in before.iter().zip(after.iter()) {
        let p = (a.saturating_sub(*b)) as f64 / procs::TICKS_PER_SEC / wall * 100.0;
        if name.starts_with("bench-worker") {
            *pct.entry("workers".to_owned()).or_insert(0.0) += p;
        } else {
            pct.insert(name.clone(), p);
        }
    }
    pct
}

async fn measure<F, Fut>(
    stack: &mut Stack,
    target: &str,
    conns: usize,
    f: F,
) -> anyhow::Result<(Row, load::RunOutput)>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = load::RunOutput>,
{
    let before = stack.cpu();
    let t0 = Instant::now();
    let mut out = f().await;
    let wall = t0.elapsed().as_secs_f64();
    let after = stack.cpu();
    stack.check_alive()?;
    let cpu_pct = cpu_pct(&before, &after, wall);
    let rss_kib = stack.mem().into_iter().map(|(k, m)| (k, m.vm_rss_kib)).collect();
    let summary = std::mem::take(&mut out.samples).summarize(out.seconds);
    let row = Row {
        storage: stack.label(),
        target: target.to_owned(),
        connections: conns,
        summary,
        ratio_to_ceiling: None,
        cpu_pct,
        rss_kib,
        backlog: None,
    };
    Ok((row, out))
}

fn print_header() {
    println!(
        "| storage | target | C | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | ÷ceiling | CPU% cp / edge / workers / bench / ceiling / pg / redis |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|");
}

fn print_row(r: &Row) {
    let c = |k: &str| r.cpu_pct.get(k).copied().unwrap_or(0.0);
    println!(
        "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} | {:.0} / {:.0} / {:.0} / {:.0} / {:.0} / {:.0} / {:.0} |",
        r.storage,
        r.target,
        r.connections,
        r.summary.rps,
        r.summary.p50_ms,
        r.summary.p90_ms,
        r.summary.p99_ms,
        r.summary.max_ms,
        r.summary.error_text(),
        r.ratio_to_ceiling.map(|x| format!("{x:.2}")).unwrap_or_else(|| "".into()),
        c("control-plane"),
        c("edge-gateway"),
        c("workers"),
        c("bench"),
        c("ceiling"),
        c("postgres"),
        c("redis"),
    );
}

async fn run_storage(
    args: &Args,
    storage: StorageArg,
    limits: LimitsArg,
    run_dir: &Path,
    bins: &Path,
) -> anyhow::Result<StorageReport> {
    let dir = run_dir.join(match storage {
        StorageArg::Postgres => "postgres",
        _ => "sqlite",
    });
    eprintln!("== {storage:?}, limits {limits:?}: starting control plane, edge, {} workers", args.workers);
    let mut stack = start_stack(args, storage, limits, &dir, bins).await?;
    let result = run_scenarios(args, &mut stack).await;
    stack.teardown().await;
    result
}

async fn run_scenarios(args: &Args, stack: &mut Stack) -> anyhow::Result<StorageReport> {
    let rest = Arc::new(Rest::new(stack.edge_addr));
    let s = args.sessions.max(1);
    let t_setup = Instant::now();
    let tokens = make_users(stack, &rest, "send", s.div_ceil(20)).await?;
    let sessions = make_sessions(stack, &rest, &tokens, s).await?;
    eprintln!(
        "== {} users, {} sessions CONNECTED in {:.1}s",
        tokens.len(),
        sessions.len(),
        t_setup.elapsed().as_secs_f64()
    );

    let warmup = Duration::from_secs_f64(args.warmup.max(0.0));
    let duration = Duration::from_secs_f64(args.seconds.max(0.1));
    let mut rows = Vec::new();
    let mut accepted: Vec<String> = Vec::new();
    print_header();

    if matches!(args.scenario, Scenario::Send | Scenario::All) {
        let send_body = Bytes::from_static(
            br#"{"to":"6281234567890","type":"text","message":"Hello from wagate-bench: a message of a typical size."}"#,
        );
        let send_reqs: Arc<Vec<Prepared>> = Arc::new(
            sessions
                .iter()
                .map(|(id, key)| Prepared {
                    method: Method::POST,
                    path: format!("/api/v1/sessions/{id}/send"),
                    headers: vec![(
                        "x-api-key",
                        HeaderValue::from_str(key).unwrap_or(HeaderValue::from_static("")),
                    )],
                    body: send_body.clone(),
                })
                .collect(),
        );
        let ceiling_reqs = Arc::new(vec![Prepared {
            method: Method::POST,
            path: "/api/v1/sessions/x/send".into(),
            headers: vec![("x-api-key", HeaderValue::from_static("wag_x"))],
            body: send_body.clone(),
        }]);
        let health_reqs = Arc::new(vec![Prepared::get("/health")]);
        let hop_reqs = Arc::new(vec![Prepared::get("/health/ready")]);
        let (ceiling_addr, edge) = (stack.ceiling_addr, stack.edge_addr);
        for &c in &args.connections {
            let c = c.max(1);
            let (ceil, _) = measure(stack, "ceiling", c, || {
                load::run(ceiling_addr, ceiling_reqs.clone(), c, warmup, duration, false)
            })
            .await?;
            let (health, _) = measure(stack, "edge /health", c, || {
                load::run(edge, health_reqs.clone(), c, warmup, duration, false)
            })
            .await?;
            let (hop, _) = measure(stack, "edge /health/ready", c, || {
                load::run(edge, hop_reqs.clone(), c, warmup, duration, false)
            })
            .await?;
            let hop = hop.against(&ceil);
            // `--replicas 2`: the same sends through the workers' replica first.
            let local = match stack.edge_local.as_ref().map(|(_, a)| *a) {
                Some(addr) => {
                    let (r, out) = measure(stack, "send (local)", c, || {
                        load::run(addr, send_reqs.clone(), c, warmup, duration, true)
                    })
                    .await?;
                    accepted.extend(out.accepted_ids);
                    Some(r.against(&ceil))
                }
                None => None,
            };
            let send_name = if local.is_some() { "send (forwarded)" } else { "send" };
            let redispatched_before = redispatches(stack.metrics_addr).await;
            let (send, out) = measure(stack, send_name, c, || {
                load::run(edge, send_reqs.clone(), c, warmup, duration, true)
            })
            .await?;
            let mut send = send.against(&ceil);
            let mut backlog = backlog(stack).await?;
            let after = redispatches(stack.metrics_addr).await;
            backlog.redispatches = after.unwrap_or(0).saturating_sub(redispatched_before.unwrap_or(0));
            // `--compare-edge`: the other edge's /health and sends, right after.
            let mut compare = Vec::new();
            if let Some(addr) = stack.edge_compare.as_ref().map(|(_, a)| *a) {
                let (h, _) = measure(stack, "edge /health (compare)", c, || {
                    load::run(addr, health_reqs.clone(), c, warmup, duration, false)
                })
                .await?;
                let (r, out) = measure(stack, "send (compare)", c, || {
                    load::run(addr, send_reqs.clone(), c, warmup, duration, true)
                })
                .await?;
                accepted.extend(out.accepted_ids);
                compare.extend([h, r.against(&ceil)]);
            }
            for r in [&ceil, &health, &hop].into_iter().chain(local.as_ref()).chain([&send]).chain(&compare) {
                print_row(r);
            }
            eprintln!(
                "== after C={c}: {} PENDING at stop ({} unacknowledged), none PENDING after {} ms, {} re-dispatches{}, {} DELIVERED/READ",
                backlog.pending_at_stop,
                backlog.unacked_at_stop,
                backlog.pending_gone_ms,
                backlog.redispatches,
                if after.is_none() { " (metrics not scraped)" } else { "" },
                backlog.delivered_or_read,
            );
            if send.summary.rps > 0.0 {
                let per = |k: &str| send.cpu_us_per_request(k);
                eprintln!(
                    "== CPU per send at C={c}: control plane {:.0} µs, edge {:.0} µs, workers {:.0} µs, postgres {:.0} µs, redis {:.0} µs",
                    per("control-plane"),
                    per("edge-gateway"),
                    per("workers"),
                    per("postgres"),
                    per("redis"),
                );
            }
            if hop.summary.rps > 0.0 {
                let per = |k: &str| hop.cpu_us_per_request(k);
                eprintln!(
                    "== one edge -> control plane gRPC hop at C={c} (/health/ready): {:.0} req/s = {:.2} of the ceiling; CPU per request: control plane {:.0} µs, edge {:.0} µs",
                    hop.summary.rps,
                    hop.ratio_to_ceiling.unwrap_or(0.0),
                    per("control-plane"),
                    per("edge-gateway"),
                );
            }
            send.backlog = Some(backlog);
            accepted.extend(out.accepted_ids);
            rows.extend([ceil, health, hop].into_iter().chain(local).chain([send]).chain(compare));
        }
    }

    if matches!(args.scenario, Scenario::Churn | Scenario::All) {
        // GET /sessions of a user holding 20 sessions (the first send user).
        let list_token = tokens[0].clone();
        let n_first = sessions.len().min(20);
        let list_reqs = Arc::new(vec![Prepared {
            method: Method::GET,
            path: "/api/v1/sessions?page=1&limit=20".into(),
            headers: vec![("authorization", HeaderValue::from_str(&format!("Bearer {list_token}"))?)],
            body: Bytes::new(),
        }]);
        let cc = args.churn_connections.max(1);
        let edge = stack.edge_addr;
        let (list, _) = measure(stack, &format!("GET /sessions ({n_first} sessions)"), cc, || {
            load::run(edge, list_reqs.clone(), cc, warmup, duration, false)
        })
        .await?;
        print_row(&list);
        rows.push(list);
        // create + delete churn: one MAX user per connection.
        let churn_tokens = make_users(stack, &rest, "churn", cc).await?;
        let (create_row, delete_row) = churn(stack, &rest, &churn_tokens, warmup, duration).await?;
        rows.push(create_row);
        rows.push(delete_row);
    }

    // No lost messages: every accepted send is in the database as SENT or later.
    let verification = verify(stack, &accepted).await?;
    let memory = stack.mem();
    let table_stats = table_stats(stack).await;
    Ok(StorageReport {
        storage: stack.storage.to_owned(),
        limits: stack.limits,
        sessions: sessions.len(),
        workers: args.workers,
        rows,
        memory,
        verification,
        table_stats,
    })
}

/// Inserts, updates, HOT updates and deletes of the message tables.
async fn table_stats(stack: &Stack) -> Vec<Value> {
    if stack.storage != "postgres" {
        return Vec::new();
    }
    // The statistics are flushed shortly after each transaction.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let rows = stack
        .db
        .query_all_raw(Statement::from_string(
            stack.db.get_database_backend(),
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, n_live_tup, n_dead_tup \
             FROM pg_stat_user_tables WHERE relname IN ('messages', 'message_dispatch') ORDER BY relname"
                .to_owned(),
        ))
        .await
        .unwrap_or_default();
    let mut out = Vec::new();
    for r in rows {
        let g = |c: &str| r.try_get::<i64>("", c).unwrap_or(-1);
        let name: String = r.try_get("", "relname").unwrap_or_default();
        let (upd, hot) = (g("n_tup_upd"), g("n_tup_hot_upd"));
        eprintln!(
            "== pg_stat_user_tables {name}: {} inserts, {upd} updates ({hot} HOT, {:.0} %), {} deletes, {} live, {} dead",
            g("n_tup_ins"),
            if upd > 0 { hot as f64 * 100.0 / upd as f64 } else { 0.0 },
            g("n_tup_del"),
            g("n_live_tup"),
            g("n_dead_tup"),
        );
        out.push(json!({
            "table": name, "inserts": g("n_tup_ins"), "updates": upd, "hot_updates": hot,
            "deletes": g("n_tup_del"), "live": g("n_live_tup"), "dead": g("n_dead_tup"),
        }));
    }
    out
}

/// Session create + delete churn: each connection loops create → delete with its own user.
async fn churn(
    stack: &mut Stack,
    rest: &Arc<Rest>,
    tokens: &[String],
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<(Row, Row)> {
    let before = stack.cpu();
    let t0 = Instant::now();
    let measure_from = t0 + warmup;
    let end = measure_from + duration;
    let mut set = tokio::task::JoinSet::new();
    for (i, token) in tokens.iter().enumerate() {
        let rest = rest.clone();
        let token = token.clone();
        set.spawn(async move {
            let mut create = stats::Samples::default();
            let mut delete = stats::Samples::default();
            let mut n = 0u64;
            while Instant::now() < end {
                n += 1;
                let t = Instant::now();
                let r = rest
                    .call(
                        Method::POST,
                        "/api/v1/sessions",
                        Some(&token),
                        Some(json!({"name": format!("churn {i}-{n}")})),
                    )
                    .await;
                let measured = t >= measure_from;
                let (status, v) = match r {
                    Ok(x) => x,
                    Err(_) => {
                        create.io_errors += 1;
                        continue;
                    }
                };
                if measured {
                    create.record(status, t.elapsed().as_micros() as u64);
                }
                let Some(id) = v["data"]["sessionId"].as_str() else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let t = Instant::now();
                match rest.call(Method::DELETE, &format!("/api/v1/sessions/{id}"), Some(&token), None).await {
                    Ok((status, _)) if t >= measure_from => {
                        delete.record(status, t.elapsed().as_micros() as u64)
                    }
                    Ok(_) => {}
                    Err(_) => delete.io_errors += 1,
                }
            }
            (create, delete)
        });
    }
    let mut create = stats::Samples::default();
    let mut delete = stats::Samples::default();
    while let Some(r) = set.join_next().await {
        let (c, d) = r?;
        create.merge(c);
        delete.merge(d);
    }
    let wall = t0.elapsed().as_secs_f64();
    let after = stack.cpu();
    stack.check_alive()?;
    let cpu_pct = cpu_pct(&before, &after, wall);
    let rss_kib: BTreeMap<String, u64> = stack.mem().into_iter().map(|(k, m)| (k, m.vm_rss_kib)).collect();
    let secs = duration.as_secs_f64();
    let mk = |target: &str, s: stats::Samples| Row {
        storage: stack.label(),
        target: target.to_owned(),
        connections: tokens.len(),
        summary: s.summarize(secs),
        ratio_to_ceiling: None,
        cpu_pct: cpu_pct.clone(),
        rss_kib: rss_kib.clone(),
        backlog: None,
    };
    let (a, b) = (mk("churn: create session", create), mk("churn: delete session", delete));
    print_row(&a);
    print_row(&b);
    Ok((a, b))
}

/// Measures the PENDING backlog right after a send run and how long it
/// takes to drain.
async fn backlog(stack: &Stack) -> anyhow::Result<Backlog> {
    const PENDING: &str = "SELECT COUNT(*) AS n FROM messages WHERE status = 'PENDING'";
    let t0 = Instant::now();
    let pending_at_stop = count(&stack.db, PENDING).await?;
    let unacked_at_stop = count(&stack.db, "SELECT COUNT(*) AS n FROM message_dispatch").await.unwrap_or(-1);
    let mut pending = pending_at_stop;
    while pending > 0 && t0.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        pending = count(&stack.db, PENDING).await?;
    }
    let pending_gone_ms = t0.elapsed().as_millis() as u64;
    let delivered_or_read =
        count(&stack.db, "SELECT COUNT(*) AS n FROM messages WHERE status IN ('DELIVERED', 'READ')").await?;
    Ok(Backlog { pending_at_stop, unacked_at_stop, pending_gone_ms, redispatches: 0, delivered_or_read })
}

/// Re-dispatched sends so far: `wagate_send_redispatches_total`, or on
/// control planes before it, `wagate_cp_messages_redispatched_total`.
async fn redispatches(addr: SocketAddr) -> Option<u64> {
    match scrape(addr, "wagate_send_redispatches_total").await {
        Some(n) => Some(n),
        None => scrape(addr, "wagate_cp_messages_redispatched_total").await,
    }
}

/// One counter of the control plane's `/metrics` (None: not served / absent).
async fn scrape(addr: SocketAddr, name: &str) -> Option<u64> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>();
    let uri: http::Uri = format!("http://{addr}/metrics").parse().ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(2), client.get(uri)).await.ok()?.ok()?;
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| v.trim().parse::<f64>().unwrap_or(0.0) as u64)
        .reduce(|a, b| a + b)
}

async fn verify(stack: &Stack, accepted: &[String]) -> anyhow::Result<Verification> {
    if accepted.is_empty() {
        return Ok(Verification { ok: true, ..Default::default() });
    }
    // Batched status writes land shortly after the answer: poll until every
    // accepted send is found, or 20 s passed.
    let backend = stack.db.get_database_backend();
    let t0 = Instant::now();
    let found: HashSet<String> = loop {
        let rows = stack
            .db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT id FROM messages WHERE status IN ('SENT','DELIVERED','READ')".to_owned(),
            ))
            .await?;
        let found: HashSet<String> = rows.iter().filter_map(|r| r.try_get::<String>("", "id").ok()).collect();
        if accepted.iter().all(|id| found.contains(id)) || t0.elapsed() > Duration::from_secs(20) {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let settle_ms = t0.elapsed().as_millis() as u64;
    let present = accepted.iter().filter(|id| found.contains(*id)).count();
    let by = stack
        .db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT status, COUNT(*) AS n FROM messages GROUP BY status".to_owned(),
        ))
        .await?;
    let by_status = by
        .iter()
        .filter_map(|r| Some((r.try_get::<String>("", "status").ok()?, r.try_get::<i64>("", "n").ok()?)))
        .collect();
    let v = Verification {
        accepted: accepted.len(),
        found_sent_or_later: present,
        missing: accepted.len() - present,
        by_status,
        settle_ms,
        ok: present == accepted.len(),
    };
    eprintln!(
        "== verification: {} accepted sends, {} in the database as SENT or later (after {} ms), {} missing {:?}",
        v.accepted, v.found_sent_or_later, v.settle_ms, v.missing, v.by_status
    );
    Ok(v)
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_default()
        .to_owned();
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "mem_total_kib": mem_kib,
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let bins = procs::bin_dir(args.bin_dir.clone())?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let run_dir = args.out.join(format!("run-{stamp}"));
    std::fs::create_dir_all(&run_dir)?;
    let storages: Vec<StorageArg> = match args.storage {
        StorageArg::Both => vec![StorageArg::Sqlite, StorageArg::Postgres],
        s => vec![s],
    };
    let machine = machine();
    eprintln!("== machine {machine}; results under {}", run_dir.display());
    let mut reports = Vec::new();
    let mut failed = false;
    let runs = storages.iter().flat_map(|s| args.limits.iter().map(move |l| (*s, *l)));
    for (s, limits) in runs {
        let r = run_storage(&args, s, limits, &run_dir, &bins).await?;
        failed |= !r.verification.ok;
        println!();
        println!("peak RSS (VmHWM) per process, {}, limits {limits:?}:", r.storage);
        for (name, m) in &r.memory {
            println!(
                "  {name:<16} {:>8.1} MiB peak, {:>8.1} MiB now",
                m.vm_hwm_kib as f64 / 1024.0,
                m.vm_rss_kib as f64 / 1024.0
            );
        }
        println!();
        reports.push(r);
    }
    let report = json!({
        "label": args.label,
        "started_at": stamp,
        "machine": machine,
        "rustc_running_at_end": rustc_count(),
        "params": {
            "connections": args.connections,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "workers": args.workers,
            "sessions": args.sessions,
            "churn_connections": args.churn_connections,
            "lifecycle": args.lifecycle,
            "lifecycle_params": args.lifecycle(),
            "cp_env": args.cp_env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "replicas": args.replicas,
            "limits": args.limits,
        },
        "storages": reports,
    });
    let text = serde_json::to_string_pretty(&report)?;
    let file = args.out.join(format!("bench-{stamp}.json"));
    std::fs::write(&file, &text)?;
    println!("{text}");
    eprintln!("== JSON written to {}", file.display());
    if failed {
        bail!("verification failed: accepted sends missing from the database");
    }
    Ok(())
}

/// How many `rustc` processes run now (other builds make numbers noisy).
fn rustc_count() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "rustc"))
        .count()
}
