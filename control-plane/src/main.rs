//! `control-plane`: one replica of the gRPC control plane (production entry).

use clap::Parser;
use wagate_control_plane::{ControlPlane, ControlPlaneArgs};

#[derive(Parser)]
#[command(name = "control-plane", version, about = "wagate control plane (gRPC)")]
struct Cli {
    #[command(flatten)]
    control_plane: ControlPlaneArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wagate_control_plane::server::tune_allocator();
    wagate_proto::telemetry::init_logging("info");
    let cli = Cli::parse();
    let running = ControlPlane::start(cli.control_plane.into_config()?).await?;
    wagate_control_plane::server::shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}
