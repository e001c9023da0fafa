//! `control-plane`: one replica of the gRPC control plane (production entry).
//! Strict: it refuses to start without the secrets production needs, with a
//! weak secret or with a value that does not parse (see `config.rs`);
//! `--dev` / `WAGATE_DEV=true` keeps random defaults for a local run.

use clap::Parser;
use wagate_control_plane::{ControlPlane, ControlPlaneArgs};

#[derive(Parser)]
#[command(name = "control-plane", version, about = "wagate control plane (gRPC)")]
struct Cli {
    #[command(flatten)]
    control_plane: ControlPlaneArgs,
    /// Asks the replica listening on WAGATE_GRPC_LISTEN's port (on loopback)
    /// for its `grpc.health.v1` "liveness" status and exits 0 if SERVING
    /// (the container image's HEALTHCHECK).
    /// With TLS on (`WAGATE_TLS_CERT`), it connects over TLS with this
    /// replica's certificate, checking the name `WAGATE_TLS_SERVER_NAME`.
    #[arg(long)]
    health_check: bool,
    /// The `grpc.health.v1` service `--health-check` asks about ("" = readiness).
    #[arg(long, default_value = wagate_control_plane::server::LIVENESS_SERVICE)]
    health_service: String,
}

async fn health_check(args: &wagate_control_plane::ControlPlaneArgs, service: String) -> anyhow::Result<()> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let port = args.grpc_listen.port();
    let tls = args.tls()?.map(|t| t.peer_client());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let channel = wagate_proto::endpoint_with_tls(
        format!("{scheme}://127.0.0.1:{port}"),
        &wagate_proto::ConnectOptions::default(),
        tls.as_ref(),
    )?
    .connect()
    .await?;
    let reply = HealthClient::new(channel).check(HealthCheckRequest { service }).await?.into_inner();
    anyhow::ensure!(reply.status() == ServingStatus::Serving, "not serving: {:?}", reply.status());
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wagate_control_plane::server::tune_allocator();
    wagate_proto::telemetry::init_logging("info");
    let cli = Cli::parse();
    if cli.health_check {
        return tokio::time::timeout(
            std::time::Duration::from_secs(3),
            health_check(&cli.control_plane, cli.health_service.clone()),
        )
        .await
        .map_err(|_| anyhow::anyhow!("health check timed out"))?;
    }
    let running = ControlPlane::start(cli.control_plane.into_config()?).await?;
    wagate_control_plane::server::shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}
