//! A session's API key reads its own session — status, QR, history, one
//! message — as server-to-server integrations expect, and nothing else: not
//! another session (404, as if it did not exist), not the account's routes.

use reqwest::Method;
use serde_json::json;
use wagate_testkit::cluster::{Storage, WorkerSpec};

use crate::common::*;

#[tokio::test]
async fn a_session_key_reads_its_own_session_only_sqlite() {
    a_session_key_reads_its_own_session_only(Storage::Sqlite).await;
}

#[tokio::test]
async fn a_session_key_reads_its_own_session_only_postgres() {
    a_session_key_reads_its_own_session_only(Storage::PostgresRedis).await;
}

async fn a_session_key_reads_its_own_session_only(storage: Storage) {
    let cl = start(
        cluster(storage).worker(WorkerSpec::new("w1", 10)).configure(|c| c.webhooks.allow_private = true),
    )
    .await;
    let api = Api::new(&cl);
    let alice = api.register("alice-keys@example.com").await;
    let bob = api.register("bob-keys@example.com").await;
    let (mine, my_key) = api.connected_session(&cl, &alice, "mine").await;
    let (theirs, their_key) = api.connected_session(&cl, &bob, "theirs").await;
    let sent = api.send_text(&mine, &my_key, "hello").await;
    let my_message = sent.expect(200).data()["messageId"].as_str().unwrap().to_owned();
    let sent = api.send_text(&theirs, &their_key, "hi").await;
    let their_message = sent.expect(200).data()["messageId"].as_str().unwrap().to_owned();

    // Its own session, by `Authorization: Bearer <key>` and by `X-API-Key`.
    let r = api.get(&format!("/api/v1/sessions/{mine}"), Some(&my_key)).await;
    assert_eq!(r.expect(200).data()["status"], json!("CONNECTED"));
    let r = api
        .raw(api.http.get(format!("{}/api/v1/sessions/{mine}", api.base)).header("X-API-Key", &my_key))
        .await;
    assert_eq!(r.expect(200).data()["sessionId"], json!(mine));
    api.get(&format!("/api/v1/sessions/{mine}/qr"), Some(&my_key)).await.expect(200);
    let r = api.get(&format!("/api/v1/sessions/{mine}/messages"), Some(&my_key)).await;
    let listed = r.expect(200).data()["messages"].as_array().unwrap().clone();
    assert!(listed.iter().any(|m| m["id"] == json!(my_message)), "{}", r.body);
    let r = api.get(&format!("/api/v1/sessions/{mine}/messages/{my_message}"), Some(&my_key)).await;
    assert_eq!(r.expect(200).data()["id"], json!(my_message));

    // Another session (another account's): as if it did not exist.
    for path in [
        format!("/api/v1/sessions/{theirs}"),
        format!("/api/v1/sessions/{theirs}/qr"),
        format!("/api/v1/sessions/{theirs}/messages"),
        format!("/api/v1/sessions/{theirs}/messages/{their_message}"),
    ] {
        api.get(&path, Some(&my_key)).await.expect_code(404, "SESSION_NOT_FOUND");
    }
    // Its own session's id with another session's message: not found either.
    api.get(&format!("/api/v1/sessions/{mine}/messages/{their_message}"), Some(&my_key))
        .await
        .expect_code(404, "NOT_FOUND");

    // Its own webhook: configured, read, tested against and removed by the key;
    // another session's: not found.
    let hook = json!({ "url": "http://127.0.0.1:9/wagate" });
    let (mine_hook, theirs_hook) =
        (format!("/api/v1/sessions/{mine}/webhook"), format!("/api/v1/sessions/{theirs}/webhook"));
    api.call(Method::PUT, &mine_hook, Some(&my_key), Some(hook.clone())).await.expect(201);
    api.get(&format!("/api/v1/sessions/{mine}/webhook"), Some(&my_key)).await.expect(200);
    api.get(&format!("/api/v1/sessions/{mine}/webhook/deliveries"), Some(&my_key)).await.expect(200);
    api.call(Method::PUT, &theirs_hook, Some(&my_key), Some(hook))
        .await
        .expect_code(404, "SESSION_NOT_FOUND");
    api.get(&format!("/api/v1/sessions/{theirs}/webhook"), Some(&my_key))
        .await
        .expect_code(404, "SESSION_NOT_FOUND");
    api.delete(&format!("/api/v1/sessions/{theirs}/webhook"), Some(&my_key))
        .await
        .expect_code(404, "SESSION_NOT_FOUND");
    api.get(&format!("/api/v1/sessions/{mine}/webhook"), Some(&alice)).await.expect(200);
    api.delete(&format!("/api/v1/sessions/{mine}/webhook"), Some(&my_key)).await.expect(200);

    // The account's routes and the session's management stay with the user.
    for (method, path) in [
        (Method::GET, "/api/v1/sessions".to_owned()),
        (Method::GET, "/api/v1/me".to_owned()),
        (Method::DELETE, format!("/api/v1/sessions/{mine}")),
        (Method::GET, format!("/api/v1/sessions/{mine}/api-key")),
        (Method::POST, format!("/api/v1/sessions/{mine}/api-key/rotate")),
    ] {
        let r = api.call(method.clone(), &path, Some(&my_key), Some(json!({}))).await;
        assert_eq!(r.status.as_u16(), 401, "{method} {path}: {}", r.body);
    }
    api.get(&format!("/api/v1/sessions/{mine}"), Some(&alice)).await.expect(200);

    // A revoked key reads nothing.
    api.delete(&format!("/api/v1/sessions/{mine}/api-key"), Some(&alice)).await.expect(200);
    api.get(&format!("/api/v1/sessions/{mine}"), Some(&my_key)).await.expect_code(401, "INVALID_API_KEY");
    cl.shutdown().await;
}
