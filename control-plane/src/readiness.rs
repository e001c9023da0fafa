//! Readiness: `grpc.health.v1` reports NOT_SERVING while the database is
//! unreachable (so a Kubernetes readiness probe, and the edge's
//! `/health/ready`, take the replica out of rotation), and SERVING again
//! once it answers. Checked every second with a short deadline.

use std::time::Duration;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing::Instrument;

use crate::state::SharedState;

const EVERY: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(2);

pub fn spawn(state: &SharedState, health: HealthReporter, services: &'static [&'static str]) {
    let st = state.clone();
    state.tasks.spawn(
        async move {
            let mut serving = true;
            let mut ticker = tokio::time::interval(EVERY);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = st.shutdown.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                let ok = matches!(tokio::time::timeout(PING_TIMEOUT, st.db.ping()).await, Ok(Ok(())));
                if ok == serving || st.shutdown.is_cancelled() {
                    continue;
                }
                serving = ok;
                let status = if ok { ServingStatus::Serving } else { ServingStatus::NotServing };
                if ok {
                    tracing::info!("database reachable again: serving");
                } else {
                    tracing::error!("database unreachable: not serving");
                }
                ::metrics::gauge!("wagate_cp_ready").set(if ok { 1.0 } else { 0.0 });
                for name in services {
                    health.set_service_status(*name, status).await;
                }
            }
        }
        .instrument(tracing::debug_span!("readiness")),
    );
}
