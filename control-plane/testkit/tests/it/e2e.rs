//! The whole slice over HTTP, on SQLite + in-process cache and on
//! PostgreSQL + Redis: register, login, create a session, QR, scan,
//! CONNECTED, send with the session key, SENT, DELIVERED/READ in the
//! database, delete.

use std::time::Duration;

use crate::common::{Api, cluster, start, wait_for};
use sea_orm::EntityTrait;
use serde_json::json;
use wagate_control_plane::persistence::entities::{message, worker};
use wagate_control_plane::persistence::enums::MessageStatus;
use wagate_testkit::cluster::Storage;

async fn full_flow(storage: Storage) {
    let cl = start(cluster(storage).workers(1, 10)).await;
    let api = Api::new(&cl);

    // register + login (login updates lastLoginAt)
    let r = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({ "email": "Ann@Example.com", "password": "correct-horse-9", "name": "Ann" }),
        )
        .await;
    r.expect(201);
    assert_eq!(r.data()["user"]["email"], "ann@example.com");
    assert_eq!(r.data()["user"]["role"], "USER");
    assert_eq!(r.data()["user"]["tier"], "BASIC");
    assert!(r.data()["user"].get("passwordHash").is_none());
    let r = api
        .post("/api/auth/login", None, json!({ "email": "ann@example.com", "password": "correct-horse-9" }))
        .await;
    r.expect(200);
    assert!(r.data()["user"]["lastLoginAt"].is_string(), "{}", r.body);
    let token = r.data()["token"].as_str().unwrap().to_owned();

    // create: placed on the worker, key shown once with its prefix
    let r = api.post("/api/v1/sessions", Some(&token), json!({ "name": "Shop WhatsApp" })).await;
    r.expect(201);
    let sid = r.data()["sessionId"].as_str().unwrap().to_owned();
    let key = r.data()["apiKey"].as_str().unwrap().to_owned();
    assert!(key.starts_with("wag_"), "{key}");
    assert_eq!(r.data()["workerId"], "worker-1");
    assert!(key.starts_with(r.data()["apiKeyPrefix"].as_str().unwrap()));

    // QR appears, then the simulated phone scans it
    let qr = wait_for("qr code", Duration::from_secs(5), || async {
        let r = api.get(&format!("/api/v1/sessions/{sid}/qr"), Some(&token)).await;
        r.expect(200);
        r.data()["qrCode"].as_str().map(str::to_owned).filter(|_| r.data()["status"] == "QR_REQUIRED")
    })
    .await;
    let driver = cl.driver_of(&sid).expect("driver holds the session").clone();
    assert_eq!(driver.qr_code(&sid).as_deref(), Some(qr.as_str()));
    assert!(driver.scan(&sid));
    let phone = wait_for("CONNECTED", Duration::from_secs(5), || async {
        let r = api.get(&format!("/api/v1/sessions/{sid}"), Some(&token)).await;
        r.expect(200);
        (r.data()["status"] == "CONNECTED")
            .then(|| r.data()["phoneNumber"].as_str().map(str::to_owned))
            .flatten()
    })
    .await;
    assert_eq!(Some(phone), driver.phone_number(&sid));
    let r = api.get("/api/v1/sessions", Some(&token)).await;
    r.expect(200);
    assert_eq!(r.data()["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(r.data()["pagination"]["total"], 1);
    let r = api.get(&format!("/api/v1/sessions/{sid}/qr"), Some(&token)).await;
    assert!(r.data()["qrCode"].is_null(), "no QR once connected: {}", r.body);

    // send with the key as X-API-Key, and as Bearer
    let r = api.send_text(&sid, &key, "Hello from wagate").await;
    r.expect(200);
    assert_eq!(r.data()["status"], "SENT");
    assert_eq!(r.data()["to"], "6281234567890@s.whatsapp.net");
    let first = r.data()["messageId"].as_str().unwrap().to_owned();
    let r = api
        .post(
            &format!("/api/v1/sessions/{sid}/send"),
            Some(&key),
            json!({ "to": "6281234567890@s.whatsapp.net", "type": "TEXT", "message": "second" }),
        )
        .await;
    r.expect(200);
    let second = r.data()["messageId"].as_str().unwrap().to_owned();
    assert_eq!(driver.sent_count(&sid), 2);

    // later status events: DELIVERED then READ, in the database
    let db = &cl.cp().state().db.conn;
    for id in [&first, &second] {
        let row = wait_for("READ", Duration::from_secs(5), || async {
            message::Entity::find_by_id(id.clone())
                .one(db)
                .await
                .unwrap()
                .filter(|m| m.status == MessageStatus::Read)
        })
        .await;
        assert!(row.sent_at.is_some() && row.delivered_at.is_some() && row.read_at.is_some(), "{row:?}");
        assert!(row.wa_message_id.is_some());
    }

    // delete: stopped on the worker, rows and counts cleaned, key dead
    assert_eq!(
        worker::Entity::find_by_id("worker-1".to_owned()).one(db).await.unwrap().unwrap().session_count,
        1
    );
    api.delete(&format!("/api/v1/sessions/{sid}"), Some(&token)).await.expect(200);
    api.get(&format!("/api/v1/sessions/{sid}"), Some(&token)).await.expect_code(404, "SESSION_NOT_FOUND");
    assert!(driver.session_status(&sid).is_none(), "worker stopped the session");
    assert_eq!(
        worker::Entity::find_by_id("worker-1".to_owned()).one(db).await.unwrap().unwrap().session_count,
        0
    );
    assert!(message::Entity::find_by_id(first.clone()).one(db).await.unwrap().is_none(), "messages cascade");
    api.send_text(&sid, &key, "after delete").await.expect_code(401, "INVALID_API_KEY");
    // the slot is free again
    api.create_session(&token, "again").await;

    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_on_sqlite_and_in_process_cache() {
    full_flow(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_on_postgres_and_redis() {
    full_flow(Storage::PostgresRedis).await;
}
