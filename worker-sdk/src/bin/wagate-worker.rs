//! The reference wagate worker: runs simulated WhatsApp sessions
//! ([`SimulatedDriver`]) behind the control-plane stream. For development,
//! tests and benchmarks.
//!
//! Configuration comes from flags or `WAGATE_WORKER_*` environment variables
//! (see `wagate-worker --help`); logs follow `RUST_LOG` (default `info`).

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tracing::info;
use tracing_subscriber::EnvFilter;
use wagate_worker_sdk::config::Args;
use wagate_worker_sdk::simulated::SimulatedDriver;
use wagate_worker_sdk::{ConnectionState, Worker};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // WAGATE_LOG_FORMAT=json: one JSON object per line.
    if std::env::var("WAGATE_LOG_FORMAT").is_ok_and(|v| v.trim().eq_ignore_ascii_case("json")) {
        tracing_subscriber::fmt().json().flatten_event(true).with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }

    let config = args.worker_config().context("configuration")?;
    let driver = SimulatedDriver::new(args.simulated_config());
    info!(
        worker_id = %config.worker_id,
        control_plane = %config.control_plane_url,
        max_sessions = config.max_sessions,
        auto_scan_ms = args.auto_scan_ms,
        "starting reference worker with simulated sessions"
    );
    let handle = Worker::spawn(config, driver.clone());
    let mut state = handle.subscribe();

    let reason = tokio::select! {
        r = shutdown_signal() => r.context("cannot listen for shutdown signals")?,
        _ = state.wait_for(|s| *s == ConnectionState::Stopped) => {
            let why = handle.refusal().unwrap_or_else(|| "worker stopped".to_owned());
            tracing::error!(reason = %why, "worker stopped: exiting");
            anyhow::bail!("control plane refused this worker: {why}");
        }
    };
    info!(
        signal = reason,
        sessions = driver.session_count(),
        total_sent = driver.total_sent(),
        "shutting down"
    );
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
