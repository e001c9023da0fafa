//! `grpc.health.v1` status of every service, set with tonic-health's typed
//! reporter and tied to the dependencies: SERVING while the database and
//! the cache answer, NOT_SERVING while either does not (and from the start
//! of a shutdown). The overall status (`""`) follows the same rule.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use wagate_proto::v1::{
    admin_service_server::AdminServiceServer, api_key_service_server::ApiKeyServiceServer,
    auth_service_server::AuthServiceServer, fleet_service_server::FleetServiceServer,
    internal_service_server::InternalServiceServer,
    message_history_service_server::MessageHistoryServiceServer,
    message_service_server::MessageServiceServer, session_service_server::SessionServiceServer,
    usage_service_server::UsageServiceServer, user_service_server::UserServiceServer,
    webhook_service_server::WebhookServiceServer, worker_service_server::WorkerServiceServer,
};

use crate::dispatch::internal_api::InternalApi;
use crate::services::{
    admin::AdminApi, api_keys::ApiKeyApi, auth::AuthApi, fleet::FleetApi, message_history::MessageHistoryApi,
    messages::MessageApi, sessions::SessionApi, users::UserApi,
};
use crate::state::SharedState;
use crate::stream::connect::WorkerApi;

/// How long one dependency check may take before it counts as a failure.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Sets every service (and the overall status) SERVING or NOT_SERVING.
pub async fn set_all(reporter: &HealthReporter, serving: bool) {
    macro_rules! each {
        ($($svc:ty),+ $(,)?) => {
            $(
                if serving {
                    reporter.set_serving::<$svc>().await;
                } else {
                    reporter.set_not_serving::<$svc>().await;
                }
            )+
        };
    }
    each!(
        WorkerServiceServer<WorkerApi>,
        AuthServiceServer<AuthApi>,
        SessionServiceServer<SessionApi>,
        MessageServiceServer<MessageApi>,
        FleetServiceServer<FleetApi>,
        MessageHistoryServiceServer<MessageHistoryApi>,
        ApiKeyServiceServer<ApiKeyApi>,
        UserServiceServer<UserApi>,
        AdminServiceServer<AdminApi>,
        InternalServiceServer<InternalApi>,
        WebhookServiceServer<crate::webhooks::service::WebhookApi>,
        UsageServiceServer<crate::usage::service::UsageApi>,
    );
    let overall = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
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
