//! Readiness (`grpc.health.v1` "" and every API service) follows the
//! database and the cache, also when a replica starts with one of them down:
//! NOT_SERVING at start, SERVING as soon as it answers, while "liveness"
//! stays SERVING throughout (no restart storm).

use std::time::{Duration, Instant};

use crate::common::{cluster, start, wait_for};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use wagate_testkit::cluster::{Cluster, Storage};

async fn health(cl: &Cluster, service: &str) -> ServingStatus {
    let channel = wagate_proto::connect(cl.grpc_url()).await.expect("control plane reachable");
    HealthClient::new(channel)
        .check(HealthCheckRequest { service: service.into() })
        .await
        .expect("health answers")
        .into_inner()
        .status()
}

/// Redis is down when the replica makes its first dependency check and back
/// before the watcher's first tick: readiness must still turn SERVING (it
/// used to stay NOT_SERVING for good: the watcher assumed SERVING at start,
/// so "up" never looked like a change).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_recovers_after_a_failed_first_check() {
    // The watcher's first tick comes after Redis is back (the client
    // reconnects within its 5 s backoff cap).
    let interval = Duration::from_secs(8);
    let cl = start(
        cluster(Storage::PostgresRedis)
            .without_edge()
            .redis_down_at_start()
            .configure(move |c| c.health_check_interval = interval),
    )
    .await;
    let started = Instant::now();
    for service in ["", "wagate.v1.SessionService", "wagate.v1.WorkerService"] {
        assert_eq!(health(&cl, service).await, ServingStatus::NotServing, "{service:?} at start");
    }
    assert_eq!(health(&cl, "liveness").await, ServingStatus::Serving);

    cl.redis_proxy().expect("redis proxy").restore();
    wait_for("redis answers again", Duration::from_secs(10), || async {
        cl.cp().state().cache.ping().await.ok()
    })
    .await;
    assert!(started.elapsed() < interval, "redis came back after the watcher's first tick: test is void");
    wait_for("readiness SERVING again", interval * 3, || async {
        (health(&cl, "").await == ServingStatus::Serving).then_some(())
    })
    .await;
    for service in ["wagate.v1.SessionService", "wagate.v1.WorkerService", "liveness"] {
        assert_eq!(health(&cl, service).await, ServingStatus::Serving, "{service:?}");
    }

    cl.shutdown().await;
}
