//! `grpc.health.v1` status of every `wagate.v1` service (the contract's
//! list, [`wagate_proto::contract::services`]), tied to the dependencies: SERVING while the database and
//! the cache answer, NOT_SERVING while either does not (and from the start
//! of a shutdown). The overall status (`""`) follows the same rule.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use wagate_proto::contract::services;

use crate::state::SharedState;

/// How long one dependency check may take before it counts as a failure.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Sets every service (and the overall status) SERVING or NOT_SERVING.
pub async fn set_all(reporter: &HealthReporter, serving: bool) {
    let overall = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
    super::metrics::SERVING.set(i64::from(serving));
    for service in services::wagate() {
        reporter.set_service_status(service.name, overall).await;
    }
    reporter.set_service_status("", overall).await;
}

/// True when the database and the cache both answer in time.
pub async fn dependencies_up(state: &SharedState) -> bool {
    let db = tokio::time::timeout(CHECK_TIMEOUT, state.db.ping()).await;
    let cache = tokio::time::timeout(CHECK_TIMEOUT, state.cache.ping()).await;
    match (db, cache) {
        (Ok(Ok(())), Ok(Ok(()))) => true,
        (db, cache) => {
            tracing::warn!(
                database_ok = matches!(db, Ok(Ok(()))),
                cache_ok = matches!(cache, Ok(Ok(()))),
                "dependency check failed: health NOT_SERVING"
            );
            false
        }
    }
}

/// Checks the dependencies every `interval` until `stop`, publishing the
/// status on each change. `published` is what the reporter shows now (the
/// result of the check made at start): the first change is measured against
/// it, so a replica that started NOT_SERVING turns SERVING as soon as its
/// dependencies answer.
pub fn spawn_watch(
    state: SharedState,
    reporter: HealthReporter,
    interval: Duration,
    published: bool,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let mut serving = published;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
            }
            let up = dependencies_up(&state).await;
            if stop.is_cancelled() {
                break;
            }
            if up != serving {
                serving = up;
                tracing::info!(serving, "health status changed");
                set_all(&reporter, serving).await;
            }
        }
    });
}
