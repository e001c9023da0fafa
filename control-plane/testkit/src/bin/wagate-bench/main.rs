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
//!
//! Layout: `stack` starts and stops the processes (ports, the ceiling,
//! /proc readings), `scenarios` drives the load and checks the database,
//! `report` holds the figures (percentiles, table rows, peak RSS); this file
//! reads the arguments and runs one stack per storage and limits setting.

mod report;
mod scenarios;
mod stack;

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Parser, ValueEnum};
use serde::Serialize;
use serde_json::{Value, json};

use report::StorageReport;

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
    /// Every session with a webhook (`message.status`) to a fast receiver in
    /// the bench, sends at C for T s, then the outbox drain (issue 25).
    Webhooks,
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
    /// Webhooks scenario: hold deliveries during the load (the webhooks
    /// disabled, their events still recorded) and let them go when it
    /// stops, so the drain of the whole backlog is measured.
    #[arg(long)]
    hold_webhooks: bool,
    /// Webhooks scenario: how long to wait after the load for the outbox to drain.
    #[arg(long, default_value_t = 60.0)]
    drain_secs: f64,
    /// Internal: serve the bare hyper ceiling handler on this port.
    #[arg(long, hide = true)]
    serve_ceiling: Option<u16>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Some(port) = args.serve_ceiling {
        return rt.block_on(stack::ceiling::serve(port));
    }
    rt.block_on(run(args))
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
    let mut stack = stack::start(args, storage, limits, &dir, bins).await?;
    let result = scenarios::run(args, &mut stack).await;
    stack.teardown().await;
    result
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
    let bins = stack::procs::bin_dir(args.bin_dir.clone())?;
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
        print!("{}", report::peak_rss(&r));
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
