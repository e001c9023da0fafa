//! `wagate`: the whole system on one machine (the embedded default).
//!
//! Control plane + edge gateway + worker(s) in one process (simulated phones,
//! or real ones with `WAGATE_WORKER_DRIVER=whatsapp`), on
//! SQLite under `./data` and the in-process cache unless `DATABASE_URL` /
//! `REDIS_URL` say otherwise. Prints the URLs and a bootstrap admin login.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use std::sync::Arc;
use wagate_control_plane::bootstrap;
use wagate_control_plane::{ControlPlane, ControlPlaneArgs};
use wagate_edge_gateway::{EdgeConfig, EdgeServer};

use wagate_driver_whatsapp::WhatsAppDriver;
use wagate_driver_whatsapp::cli::{DriverArgs, DriverKind};
use wagate_worker_sdk::simulated::{SimulatedConfig, SimulatedDriver};
use wagate_worker_sdk::{SessionDriver, Worker, WorkerConfig};

#[derive(Parser)]
#[command(
    name = "wagate",
    version,
    about = "wagate on one machine: control plane + edge gateway + worker (simulated or real phones)"
)]
struct Cli {
    #[command(flatten)]
    control_plane: ControlPlaneArgs,
    /// The embedded workers' driver (`WAGATE_WORKER_DRIVER=whatsapp`: pair a real phone).
    #[command(flatten)]
    driver: DriverArgs,
    /// REST listen address of the edge gateway.
    #[arg(long, env = "WAGATE_EDGE_LISTEN", default_value = "127.0.0.1:8080")]
    http_listen: SocketAddr,
    /// Simulated workers to start in-process.
    #[arg(long, env = "WAGATE_SIM_WORKERS", default_value_t = 1)]
    sim_workers: usize,
    /// Sessions each simulated worker accepts.
    #[arg(long, env = "WAGATE_SIM_MAX_SESSIONS", default_value_t = 50)]
    sim_max_sessions: u32,
    /// The simulated phone "scans" the QR code this long after it is shown (0: never).
    #[arg(long, env = "WAGATE_SIM_AUTO_SCAN_MS", default_value_t = 5000)]
    sim_auto_scan_ms: u64,
    /// Echo mode: each text sent is answered by an inbound message from the
    /// recipient half a second later (so `message.received` webhooks can be
    /// seen without a phone).
    #[arg(long, env = "WAGATE_SIM_ECHO", default_value_t = false, action = clap::ArgAction::Set)]
    sim_echo: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wagate_control_plane::server::tune_allocator();
    wagate_proto::telemetry::init_logging("info,sqlx=warn");
    let cli = Cli::parse();
    let mut cp_args = cli.control_plane;
    if cp_args.grpc_listen.ip().is_unspecified() {
        cp_args.grpc_listen = SocketAddr::from(([127, 0, 0, 1], cp_args.grpc_listen.port()));
    }
    // One machine, one data folder: secrets that are not configured are
    // generated once and kept beside the SQLite file, so user tokens and saved
    // auth states survive a restart of the embedded system.
    if cp_args.jwt_secret.is_none() || cp_args.auth_state_key.is_none() {
        let secrets = dev_secrets(std::path::Path::new("data").join("dev-secrets.json").as_path())?;
        cp_args.jwt_secret.get_or_insert(secrets.jwt_secret);
        cp_args.auth_state_key.get_or_insert(secrets.auth_state_key);
    }
    // The simulated workers run in this process with the shared token.
    cp_args.allow_shared_worker_token = true;
    // Zero configuration: whatever is not set gets a local default (the
    // production `control-plane` refuses to start without its secrets).
    cp_args.dev = true;
    let mut config = cp_args.into_config()?;
    if let Some(m) = config.metrics_listen.as_mut()
        && m.ip().is_unspecified()
    {
        m.set_ip([127, 0, 0, 1].into());
    }
    let cp = ControlPlane::start(config).await?;
    let state = cp.state().clone();

    let mut admin_line = String::from("(an administrator already exists)");
    if state.config.admin_email.is_none() && !bootstrap::has_admin(&state).await? {
        let email = "admin@wagate.local";
        let password = format!("wg-{}", &wagate_control_plane::config::random_secret()[..20]);
        bootstrap::ensure_admin(&state, email, &password).await?;
        admin_line = format!("{email} / {password}   (shown once; change it)");
    } else if let Some(email) = &state.config.admin_email {
        admin_line = format!("{email} (from WAGATE_ADMIN_EMAIL)");
    }

    let edge = EdgeServer::bind(EdgeConfig {
        listen: cli.http_listen,
        control_plane_url: cp.url(),
        edge_token: state.config.edge_token.clone(),
        tls: cp.client_tls(),
        ..EdgeConfig::default()
    })
    .await?;

    let mut workers = Vec::new();
    let real = cli.driver.driver == DriverKind::Whatsapp;
    for i in 0..cli.sim_workers.max(1) {
        let (id, driver): (String, Arc<dyn SessionDriver>) = if real {
            (format!("wa-worker-{}", i + 1), Arc::new(WhatsAppDriver::new(cli.driver.whatsapp_config())))
        } else {
            let driver = SimulatedDriver::new(SimulatedConfig {
                auto_scan_after: (cli.sim_auto_scan_ms > 0)
                    .then(|| Duration::from_millis(cli.sim_auto_scan_ms)),
                echo_after: cli.sim_echo.then_some(Duration::from_millis(500)),
                ..SimulatedConfig::default()
            });
            (format!("sim-worker-{}", i + 1), driver)
        };
        let mut wc = WorkerConfig::new(cp.url(), state.config.worker_auth_token.clone(), id.clone());
        wc.max_sessions = cli.sim_max_sessions;
        wc.endpoint = if real { format!("wa://{id}") } else { format!("sim://{id}") };
        wc.tls = cp.client_tls();
        let handle = Worker::spawn(wc, driver);
        if !handle.wait_connected(Duration::from_secs(10)).await {
            anyhow::bail!("worker {id} did not connect");
        }
        workers.push(handle);
    }

    let http = edge.local_addr();
    println!();
    println!("  wagate is running");
    println!("  REST API     http://{http}/api/v1   (alias /api)");
    println!("  API docs     http://{http}/api-docs");
    println!("  health       http://{http}/health");
    println!("  gRPC         {}   (grpc.health.v1 + reflection)", cp.url());
    if let Some(m) = cp.metrics_addr() {
        println!("  metrics      http://{m}/metrics");
    }
    println!("  database     {}", redact(&state.config.database_url));
    println!("  cache        {}", state.cache.kind());
    if real {
        println!(
            "  workers      {} on WhatsApp (real phones: scan the QR of GET /api/v1/sessions/{{id}}/qr)",
            workers.len()
        );
    } else {
        println!("  workers      {} simulated (QR auto-scan {} ms)", workers.len(), cli.sim_auto_scan_ms);
    }
    println!("  admin        {admin_line}");
    println!();

    wagate_control_plane::server::shutdown_signal().await;
    tracing::info!("shutting down");
    for w in workers {
        w.shutdown().await;
    }
    edge.shutdown().await;
    cp.shutdown().await;
    Ok(())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct DevSecrets {
    jwt_secret: String,
    auth_state_key: String,
}

/// Reads the embedded system's generated secrets, creating them (mode 0600) on first start.
fn dev_secrets(path: &std::path::Path) -> anyhow::Result<DevSecrets> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return Ok(serde_json::from_str(&text)?);
    }
    let secrets = DevSecrets {
        jwt_secret: wagate_control_plane::config::random_secret(),
        auth_state_key: wagate_control_plane::config::random_secret(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(&secrets)?)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(secrets)
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_owned(),
    }
}
