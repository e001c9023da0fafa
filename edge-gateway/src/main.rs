//! `edge-gateway`: the REST/JSON face of wagate.

use anyhow::Context;
use clap::Parser;
use wagate_edge_gateway::{EdgeArgs, EdgeServer};

/// mimalloc instead of glibc malloc: a request allocates and frees many small
/// buffers across threads, which glibc served at ~15 % of the edge's CPU
/// (`_int_malloc`, `_int_free`, `malloc_consolidate` in the send profile).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "edge-gateway",
    version,
    about = "wagate edge gateway: REST/JSON in front of the control plane"
)]
struct Cli {
    #[command(flatten)]
    edge: EdgeArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wagate_proto::telemetry::init_logging("info");
    let cli = Cli::parse();
    let metrics_stop = wagate_edge_gateway::CancellationToken::new();
    // Read first: a weak token, a bad address or a bad TLS file refuses
    // start-up before anything listens.
    let metrics_token = cli.edge.metrics_token();
    let metrics_listen = cli.edge.metrics_listen().context("configuration")?;
    let config = cli.edge.into_config().context("configuration")?;
    if let Some(addr) = metrics_listen {
        wagate_proto::telemetry::serve_metrics_with_token(addr, metrics_token, metrics_stop.clone())
            .await
            .with_context(|| format!("metrics listener on {addr}"))?;
    }
    let control_plane = config.control_plane_url.clone();
    let edge = EdgeServer::bind(config).await.context("starting the edge gateway")?;
    tracing::info!(rest = %format!("http://{}", edge.local_addr()), %control_plane, tls = wagate_proto::tls::is_https(&control_plane), "edge gateway ready");
    shutdown_signal().await;
    tracing::info!("shutdown signal received");
    edge.shutdown().await;
    metrics_stop.cancel();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
