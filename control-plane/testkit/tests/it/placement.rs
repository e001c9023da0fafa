//! Tier limits and least-loaded placement under concurrent creates.

use std::collections::HashMap;

use crate::common::{Api, cluster, start};
use sea_orm::EntityTrait;
use serde_json::json;
use wagate_control_plane::persistence::entities::worker;
use wagate_testkit::cluster::Storage;

async fn tier_limit(storage: Storage) {
    let cl = start(cluster(storage).workers(1, 10)).await;
    let api = Api::new(&cl);
    let token = api.register("basic@example.com").await;
    api.create_session(&token, "first").await;
    let r = api.post("/api/v1/sessions", Some(&token), json!({ "name": "second" })).await;
    r.expect_code(403, "TIER_LIMIT_EXCEEDED");
    assert!(r.body["error"].as_str().unwrap().contains("BASIC"), "{}", r.body);

    // concurrent creates by one user cannot overshoot the limit either
    let other = api.register("racer@example.com").await;
    let attempts = (0..6).map(|i| {
        let api = api.clone();
        let other = other.clone();
        async move {
            api.post("/api/v1/sessions", Some(&other), json!({ "name": format!("s{i}") }))
                .await
                .status
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 201 || *s == 403), "{statuses:?}");
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_tier_second_session_is_403_sqlite() {
    tier_limit(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_tier_second_session_is_403_postgres() {
    tier_limit(Storage::PostgresRedis).await;
}

async fn placement(storage: Storage) {
    let cl = start(cluster(storage).workers(3, 2)).await;
    let api = Api::new(&cl);
    // six BASIC users create one session each, all at once
    let mut tokens = Vec::new();
    for i in 0..7 {
        tokens.push(api.register(&format!("user{i}@example.com")).await);
    }
    let creates = tokens[..6].iter().enumerate().map(|(i, t)| {
        let api = api.clone();
        let t = t.clone();
        async move { api.post("/api/v1/sessions", Some(&t), json!({ "name": format!("s{i}") })).await }
    });
    let replies = futures::future::join_all(creates).await;
    let mut per_worker: HashMap<String, usize> = HashMap::new();
    for r in &replies {
        r.expect(201);
        *per_worker.entry(r.data()["workerId"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(per_worker.len(), 3, "{per_worker:?}");
    assert!(per_worker.values().all(|n| *n == 2), "{per_worker:?}");
    for w in &cl.workers {
        assert_eq!(w.driver.session_count(), 2, "{} runs 2 sessions", w.id);
    }
    let db = &cl.cp().state().db.conn;
    for w in worker::Entity::find().all(db).await.unwrap() {
        assert_eq!(w.session_count, 2, "{}", w.id);
    }
    // the 7th finds no capacity
    let r = api.post("/api/v1/sessions", Some(&tokens[6]), json!({ "name": "s7" })).await;
    r.expect_code(503, "NO_AVAILABLE_WORKERS");
    assert!(r.headers.get("retry-after").is_some());
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_concurrent_creates_spread_two_per_worker_sqlite() {
    placement(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_concurrent_creates_spread_two_per_worker_postgres() {
    placement(Storage::PostgresRedis).await;
}
