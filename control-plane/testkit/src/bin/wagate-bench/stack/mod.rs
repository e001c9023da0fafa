//! The stack under test: the release binaries started as processes on
//! loopback (the ceiling, the control plane and its second replica, the
//! edge and its extra edges, K simulated workers), their free ports, their
//! CPU and memory readings, and their teardown.

pub mod ceiling;
pub mod procs;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::{Args, LimitsArg, StorageArg};
use procs::{Mem, Proc};

/// The stack of one storage.
pub struct Stack {
    pub storage: &'static str,
    pub limits: LimitsArg,
    pub ceiling: Proc,
    pub cp: Proc,
    /// The second replica (`--replicas 2`): the edge's, not the workers'.
    pub cp2: Option<Proc>,
    pub edge: Proc,
    /// `--replicas 2`: an edge on the workers' replica (sends not forwarded).
    pub edge_local: Option<(Proc, SocketAddr)>,
    /// `--compare-edge`: the other edge binary, on the edge's control plane.
    pub edge_compare: Option<(Proc, SocketAddr)>,
    pub workers: Vec<Proc>,
    pub ceiling_addr: SocketAddr,
    pub edge_addr: SocketAddr,
    /// The control plane's Prometheus listener.
    pub metrics_addr: SocketAddr,
    pub db: DatabaseConnection,
    /// PostgreSQL: (admin url, database) to drop afterwards.
    pub pg_drop: Option<(String, String)>,
    pub dir: PathBuf,
}

impl Stack {
    /// The storage, and the limits when they are off (rows of an `on,off` run).
    pub fn label(&self) -> String {
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
    pub fn cpu(&self) -> Vec<(String, u64)> {
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

    pub fn mem(&self) -> BTreeMap<String, Mem> {
        let mut m: BTreeMap<String, Mem> =
            self.procs().iter().map(|p| (p.name.clone(), procs::mem(p.pid()))).collect();
        m.insert("bench".into(), procs::mem(std::process::id()));
        m
    }

    pub fn check_alive(&mut self) -> anyhow::Result<()> {
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

    pub async fn teardown(self) {
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

pub async fn start(
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
    // The webhook scenario's receiver is on loopback.
    env.push(("WAGATE_WEBHOOK_ALLOW_PRIVATE", "true".to_owned()));
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

pub async fn count(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql.to_owned()))
        .await?
        .context("no row")?;
    Ok(row.try_get("", "n")?)
}
