//! Session create as another tenant and a failing dependency see it: a
//! client-chosen id taken by another tenant answers like an id that does
//! not exist (404, never a 409 that confirms it), and once the create is
//! committed nothing after it (Redis gone) turns it into an error that
//! loses the API key shown once. SQLite + in-process and PostgreSQL + Redis.

use std::time::Duration;

use crate::common::{Api, cluster, start};
use serde_json::json;
use wagate_testkit::cluster::Storage;

const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "fleet-keeper-77";

/// Ann's client-chosen id: Bob's create with it answers exactly what his
/// look-up of an id that does not exist answers; Ann's own create again is
/// the 409 it always was.
async fn taken_ids_of_other_tenants_are_not_found(storage: Storage) {
    let cl = start(cluster(storage).workers(1, 10).configure(|c| {
        c.admin_email = Some(ADMIN_EMAIL.into());
        c.admin_password = Some(ADMIN_PASSWORD.into());
    }))
    .await;
    let api = Api::new(&cl);
    let ann = api.register("ann@example.com").await;
    let bob = api.register("bob@example.com").await;
    // Ann on PRO: room for more than one session
    let r = api
        .post("/api/v1/auth/login", None, json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .await;
    r.expect(200);
    let admin = r.data()["token"].as_str().expect("token").to_owned();
    let r = api.get("/api/v1/me", Some(&ann)).await;
    let ann_id = r.data()["id"].as_str().expect("id").to_owned();
    api.call(
        reqwest::Method::PATCH,
        &format!("/api/v1/admin/users/{ann_id}"),
        Some(&admin),
        Some(json!({ "tier": "PRO" })),
    )
    .await
    .expect(200);
    let create = |token: String, id: &'static str| {
        let api = api.clone();
        async move { api.post("/api/v1/sessions", Some(&token), json!({ "name": "main", "sessionId": id })).await }
    };
    let r = create(ann.clone(), "shop-main").await;
    r.expect(201);
    assert_eq!(r.data()["sessionId"], "shop-main");

    let taken = create(bob.clone(), "shop-main").await;
    taken.expect_code(404, "SESSION_NOT_FOUND");
    let free_lookup = api.get("/api/v1/sessions/no-such-session", Some(&bob)).await;
    free_lookup.expect_code(404, "SESSION_NOT_FOUND");
    assert_eq!(taken.body, free_lookup.body, "the same answer as an id that does not exist");
    let taken_lookup = api.get("/api/v1/sessions/shop-main", Some(&bob)).await;
    assert_eq!(taken.body, taken_lookup.body);

    create(ann.clone(), "shop-main").await.expect_code(409, "ALREADY_EXISTS");
    // Bob is not blocked from ids of his own
    create(bob.clone(), "bob-main").await.expect(201);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_ids_of_other_tenants_are_not_found_sqlite() {
    taken_ids_of_other_tenants_are_not_found(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_ids_of_other_tenants_are_not_found_postgres_redis() {
    taken_ids_of_other_tenants_are_not_found(Storage::PostgresRedis).await;
}

/// Redis cut (through a proxy; the shared server is untouched): a session
/// create is still 201 with its API key, and that key is the session's; the
/// same for a key rotation. Nothing after the commit depends on Redis.
///
/// The worker stream renews its replica record in Redis from its reader,
/// once per liveness period, and waits for Redis there: with a long
/// liveness period that renewal stays out of this test's way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_answers_its_key_while_redis_is_down() {
    let cl = start(
        cluster(Storage::PostgresRedis)
            .workers(1, 10)
            .redis_proxy()
            .configure(|c| c.heartbeat_tolerance = 120),
    )
    .await;
    let api = Api::new(&cl);
    let ann = api.register("ann@example.com").await;
    let bob = api.register("bob@example.com").await;

    cl.redis_proxy().expect("proxy").cut();
    let r = api.post("/api/v1/sessions", Some(&ann), json!({ "name": "during" })).await;
    r.expect(201);
    let id = r.data()["sessionId"].as_str().expect("sessionId").to_owned();
    let key = r.data()["apiKey"].as_str().expect("the key, shown once").to_owned();
    assert!(key.starts_with("wag_"), "{key}");
    let r = api.get(&format!("/api/v1/sessions/{id}/api-key"), Some(&ann)).await;
    r.expect(200);
    assert!(
        key.starts_with(r.data()["prefix"].as_str().expect("prefix")),
        "the key answered is the session's"
    );
    let r = api
        .post(&format!("/api/v1/sessions/{id}/api-key/rotate"), Some(&ann), json!({ "expiresInDays": 30 }))
        .await;
    r.expect(200);
    assert!(r.data()["apiKey"].as_str().is_some_and(|k| k.starts_with("wag_")), "{}", r.body);

    cl.redis_proxy().expect("proxy").restore();
    tokio::time::sleep(Duration::from_millis(100)).await;
    api.create_session(&bob, "after").await;
    cl.shutdown().await;
}
