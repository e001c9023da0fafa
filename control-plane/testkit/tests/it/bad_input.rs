//! Hostile and malformed input gets a clear 4xx envelope, never a 5xx, and
//! the process stays up. Tenancy: another user's session is invisible.

use crate::common::{Api, cluster, start};
use reqwest::Method;
use serde_json::json;
use wagate_testkit::cluster::Storage;

async fn bad_input_and_tenancy(storage: Storage) {
    let cl = start(cluster(storage).workers(1, 10)).await;
    let api = Api::new(&cl);
    let base = api.base.clone();
    let http = api.http.clone();

    // --- auth input
    let raw = |path: &str, body: &'static str| {
        http.post(format!("{base}{path}")).header("content-type", "application/json").body(body)
    };
    api.raw(raw("/api/v1/auth/register", "{\"email\": ")).await.expect_code(400, "INVALID_JSON");
    api.raw(raw("/api/v1/auth/register", "[1,2]")).await.expect(400);
    let r = api.post("/api/v1/auth/register", None, json!({ "email": "a@example.com" })).await;
    r.expect(400);
    assert_eq!(r.body["field"], "password", "{}", r.body);
    let r =
        api.post("/api/v1/auth/register", None, json!({ "email": 42, "password": "long-enough-1" })).await;
    r.expect(400);
    assert_eq!(r.body["field"], "email", "{}", r.body);
    let r = api
        .post("/api/v1/auth/register", None, json!({ "email": "not-an-email", "password": "long-enough-1" }))
        .await;
    r.expect_code(400, "VALIDATION_ERROR");
    assert_eq!(r.body["field"], "email");
    let r = api
        .post("/api/v1/auth/register", None, json!({ "email": "b@example.com", "password": "short" }))
        .await;
    r.expect_code(400, "VALIDATION_ERROR");
    assert_eq!(r.body["field"], "password");
    let token_a = api.register("alice@example.com").await;
    api.post(
        "/api/v1/auth/register",
        None,
        json!({ "email": "ALICE@example.com", "password": "correct-horse-9" }),
    )
    .await
    .expect_code(409, "ALREADY_EXISTS");
    api.post(
        "/api/v1/auth/login",
        None,
        json!({ "email": "alice@example.com", "password": "wrong-horse-9" }),
    )
    .await
    .expect_code(401, "INVALID_CREDENTIALS");
    api.post(
        "/api/v1/auth/login",
        None,
        json!({ "email": "nobody@example.com", "password": "wrong-horse-9" }),
    )
    .await
    .expect_code(401, "INVALID_CREDENTIALS");
    // just over the 1 MiB limit: a readable 413
    let big = "x".repeat(1024 * 1024 + 64 * 1024);
    api.raw(
        http.post(format!("{base}/api/v1/auth/register"))
            .header("content-type", "application/json")
            .body(big),
    )
    .await
    .expect_code(413, "PAYLOAD_TOO_LARGE");
    // far over it: refused early (413 or the connection is cut), never a 5xx, server stays up
    let huge = "x".repeat(16 * 1024 * 1024);
    if let Ok(resp) = http
        .post(format!("{base}/api/v1/auth/register"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
    {
        assert_eq!(resp.status().as_u16(), 413);
    }
    api.raw(http.post(format!("{base}/api/v1/auth/login")).header("content-type", "text/plain").body("hi"))
        .await
        .expect(415);

    // --- tokens
    api.get("/api/v1/sessions", None).await.expect(401);
    api.get("/api/v1/sessions", Some("garbage")).await.expect_code(401, "INVALID_TOKEN");
    api.get("/api/v1/sessions", Some("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."))
        .await
        .expect_code(401, "INVALID_TOKEN");

    // --- sessions
    api.post("/api/v1/sessions", Some(&token_a), json!({})).await.expect_code(400, "VALIDATION_ERROR");
    api.post("/api/v1/sessions", Some(&token_a), json!({ "name": ["x"] })).await.expect(400);
    api.post("/api/v1/sessions", Some(&token_a), json!({ "name": "ok", "sessionId": "../../etc" }))
        .await
        .expect_code(400, "VALIDATION_ERROR");
    api.get("/api/v1/sessions/does-not-exist", Some(&token_a)).await.expect_code(404, "SESSION_NOT_FOUND");
    api.get("/api/v1/sessions/%00%ff", Some(&token_a)).await.expect(404);
    api.get("/api/v1/sessions?page=abc", Some(&token_a)).await.expect(400);
    let (sid_a, key_a) = api.connected_session(&cl, &token_a, "alice").await;

    // --- send input
    let send = |body: serde_json::Value, key: &str| {
        http.post(format!("{base}/api/v1/sessions/{sid_a}/send")).header("x-api-key", key).json(&body)
    };
    api.raw(
        http.post(format!("{base}/api/v1/sessions/{sid_a}/send"))
            .json(&json!({ "to": "6281234567890", "message": "x" })),
    )
    .await
    .expect_code(401, "UNAUTHENTICATED");
    api.raw(send(json!({ "to": "6281234567890", "message": "x" }), "wag_0000"))
        .await
        .expect_code(401, "INVALID_API_KEY");
    let forged = format!("wag_{}", "ab".repeat(24));
    api.raw(send(json!({ "to": "6281234567890", "message": "x" }), &forged))
        .await
        .expect_code(401, "INVALID_API_KEY");
    let r = api.raw(send(json!({ "message": "x" }), &key_a)).await;
    r.expect(400);
    assert_eq!(r.body["field"], "to");
    let r = api.raw(send(json!({ "to": "hello", "message": "x" }), &key_a)).await;
    r.expect(400);
    assert_eq!(r.body["field"], "to");
    api.raw(send(json!({ "to": "6281234567890", "type": "hologram", "message": "x" }), &key_a))
        .await
        .expect(400);
    api.raw(send(json!({ "to": "6281234567890", "type": "text", "message": "" }), &key_a)).await.expect(400);
    api.raw(send(json!({ "to": "6281234567890", "type": "image" }), &key_a)).await.expect(400);
    api.raw(send(json!({ "to": "6281234567890", "type": "location", "latitude": "north" }), &key_a))
        .await
        .expect(400);
    api.raw(send(json!({ "to": 6281234567890u64, "message": "x" }), &key_a)).await.expect(400);
    api.raw(
        http.post(format!("{base}/api/v1/sessions/{sid_a}/send"))
            .header("x-api-key", &key_a)
            .header("content-type", "application/json")
            .body("{oops"),
    )
    .await
    .expect_code(400, "INVALID_JSON");

    // --- tenancy: bob sees none of alice's session
    let token_b = api.register("bob@example.com").await;
    let (sid_b, key_b) = api.create_session(&token_b, "bob").await;
    for (method, path) in [
        (Method::GET, format!("/api/v1/sessions/{sid_a}")),
        (Method::GET, format!("/api/v1/sessions/{sid_a}/qr")),
        (Method::DELETE, format!("/api/v1/sessions/{sid_a}")),
    ] {
        api.call(method, &path, Some(&token_b), None).await.expect_code(404, "SESSION_NOT_FOUND");
    }
    let r = api.get("/api/v1/sessions", Some(&token_b)).await;
    r.expect(200);
    let ids: Vec<_> = r.data()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![sid_b.clone()]);
    // bob's key cannot send through alice's session, and vice versa
    api.raw(send(json!({ "to": "6281234567890", "message": "x" }), &key_b))
        .await
        .expect_code(404, "SESSION_NOT_FOUND");
    // a user token is not a session key
    api.raw(send(json!({ "to": "6281234567890", "message": "x" }), &token_a)).await.expect(401);
    // alice's session survived bob's delete attempt
    api.get(&format!("/api/v1/sessions/{sid_a}"), Some(&token_a)).await.expect(200);

    // --- unknown route / method, and still alive
    api.get("/api/v1/nope", None).await.expect_code(404, "NOT_FOUND");
    let r = api.call(Method::PUT, "/api/v1/sessions", Some(&token_a), None).await;
    r.expect_code(405, "METHOD_NOT_ALLOWED");
    api.get("/health", None).await.expect(200);
    api.send_text(&sid_a, &key_a, "still works").await.expect(200);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_tenancy_sqlite() {
    bad_input_and_tenancy(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_tenancy_postgres() {
    bad_input_and_tenancy(Storage::PostgresRedis).await;
}
