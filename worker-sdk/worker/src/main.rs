//! The reference wagate worker: runs WhatsApp sessions behind the
//! control-plane stream, on the simulated driver ([`SimulatedDriver`]: for
//! development, tests and benchmarks; the default) or on real WhatsApp Web
//! connections ([`WhatsAppDriver`], `WAGATE_WORKER_DRIVER=whatsapp`).
//!
//! Configuration comes from flags or `WAGATE_WORKER_*` environment variables
//! (see `wagate-worker --help`); logs follow `RUST_LOG` (default `info`).

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use std::sync::Arc;
use tracing::info;
use tracing_subscriber::EnvFilter;

use wagate_driver_whatsapp::WhatsAppDriver;
use wagate_driver_whatsapp::cli::{DriverArgs, DriverKind};
use wagate_worker_sdk::config::Args;
use wagate_worker_sdk::simulated::SimulatedDriver;
use wagate_worker_sdk::{ConnectionState, SessionDriver, Worker};

#[derive(Parser)]
#[command(
    name = "wagate-worker",
    version,
    about = "wagate reference worker (simulated or real WhatsApp sessions)"
)]
struct Cli {
    #[command(flatten)]
    args: Args,
    #[command(flatten)]
    driver: DriverArgs,
    /// Rewritten every 5 s while the stream to the control plane is up (for a
    /// Kubernetes exec probe: the file is fresh ⇔ the worker is connected).
    #[arg(long, env = "WAGATE_WORKER_HEALTH_FILE")]
    health_file: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = cli.args;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // WAGATE_LOG_FORMAT=json: one JSON object per line.
    if std::env::var("WAGATE_LOG_FORMAT").is_ok_and(|v| v.trim().eq_ignore_ascii_case("json")) {
        tracing_subscriber::fmt().json().flatten_event(true).with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }

    let config = args.worker_config().context("configuration")?;
    let (driver, simulated): (Arc<dyn SessionDriver>, Option<Arc<SimulatedDriver>>) = match cli.driver.driver
    {
        DriverKind::Simulated => {
            let driver = SimulatedDriver::new(args.simulated_config());
            (driver.clone(), Some(driver))
        }
        DriverKind::Whatsapp => (Arc::new(WhatsAppDriver::new(cli.driver.whatsapp_config())), None),
    };
    info!(
        worker_id = %config.worker_id,
        control_plane = %config.control_plane_url,
        max_sessions = config.max_sessions,
        driver = ?cli.driver.driver,
        wa_server_url = cli.driver.wa_server_url.as_deref().unwrap_or("whatsapp"),
        auto_scan_ms = args.auto_scan_ms,
        "starting reference worker"
    );
    let handle = Worker::spawn(config, driver);
    let mut state = handle.subscribe();
    if let Some(path) = cli.health_file.clone() {
        let state = handle.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                if matches!(*state.borrow(), ConnectionState::Connected { .. })
                    && let Err(e) = tokio::fs::write(&path, b"connected\n").await
                {
                    tracing::warn!(path = %path.display(), error = %e, "cannot write the health file");
                }
            }
        });
    }

    let reason = tokio::select! {
        r = shutdown_signal() => r.context("cannot listen for shutdown signals")?,
        _ = state.wait_for(|s| *s == ConnectionState::Stopped) => {
            let why = handle.refusal().unwrap_or_else(|| "worker stopped".to_owned());
            tracing::error!(reason = %why, "worker stopped: exiting");
            anyhow::bail!("control plane refused this worker: {why}");
        }
    };
    match &simulated {
        Some(sim) => info!(
            signal = reason,
            sessions = sim.session_count(),
            total_sent = sim.total_sent(),
            "shutting down"
        ),
        None => info!(signal = reason, "shutting down"),
    }
    handle.shutdown_with_reason(format!("worker received {reason}")).await;
    info!("worker shut down");
    // Let the last log lines out.
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}

/// Waits for ctrl-c or (on unix) SIGTERM; returns which one.
async fn shutdown_signal() -> anyhow::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map(|()| "ctrl-c").context("ctrl-c handler"),
            _ = term.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("ctrl-c handler")?;
        Ok("ctrl-c")
    }
}
