//! Workers are not trusted, as the security review attacked them: a worker
//! cannot raise the capacity an administrator set, and hostile inbound
//! fields are refused and never stored. SQLite + in-process and
//! PostgreSQL + Redis.

use std::time::Duration;

use crate::common::{Api, cluster, start, wait_for};
use reqwest::Method;
use serde_json::json;
use wagate_proto::v1::{MessageContent, MessageType};
use wagate_testkit::cluster::{Storage, WorkerSpec};

const ADMIN_EMAIL: &str = "root@wagate.test";
const ADMIN_PASSWORD: &str = "fleet-keeper-77";

async fn admin_capacity_wins(storage: Storage) {
    let mut cl = start(cluster(storage).worker(WorkerSpec::new("w-cap", 100_000)).configure(|c| {
        c.admin_email = Some(ADMIN_EMAIL.into());
        c.admin_password = Some(ADMIN_PASSWORD.into());
    }))
    .await;
    let api = Api::new(&cl);
    let r = api
        .post("/api/v1/auth/login", None, json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .await;
    let admin = r.data()["token"].as_str().expect("token").to_owned();
    let max_of = |api: Api, admin: String| async move {
        let r = api.get("/api/v1/admin/workers/w-cap", Some(&admin)).await;
        (r.status.as_u16() == 200).then(|| r.data()["maxSessions"].as_u64()).flatten()
    };
    // Without a cap the worker's advertisement applies.
    wait_for("worker registered", Duration::from_secs(5), || max_of(api.clone(), admin.clone())).await;
    assert_eq!(max_of(api.clone(), admin.clone()).await, Some(100_000));

    api.call(Method::PATCH, "/api/v1/admin/workers/w-cap", Some(&admin), Some(json!({ "maxSessions": 1 })))
        .await
        .expect(200);
    // The worker reconnects and advertises 100,000 again: the administrator's 1 stays.
    let old = cl.workers.iter_mut().find(|w| w.id == "w-cap").and_then(|w| w.handle.take()).expect("worker");
    old.kill().await;
    cl.add_worker(WorkerSpec::new("w-cap", 100_000)).await.expect("worker reconnects");
    wait_for("worker connected again", Duration::from_secs(10), || {
        let (api, admin) = (api.clone(), admin.clone());
        async move {
            let r = api.get("/api/v1/admin/workers/w-cap", Some(&admin)).await;
            (r.data()["status"] == json!("ONLINE") && r.data()["connected"] == json!(true)).then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(max_of(api.clone(), admin.clone()).await, Some(1), "the administrator's capacity wins");

    // Placement believes the cap: one session, then no capacity.
    let ann = api.register("ann@example.com").await;
    let bob = api.register("bob@example.com").await;
    api.post("/api/v1/sessions", Some(&ann), json!({ "name": "one" })).await.expect(201);
    let r = api.post("/api/v1/sessions", Some(&bob), json!({ "name": "two" })).await;
    assert!(
        r.status.as_u16() == 503 || r.data()["status"] == json!("INIT"),
        "no second slot on a worker capped at 1: {}",
        r.body
    );
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_capacity_wins_sqlite() {
    admin_capacity_wins(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_capacity_wins_postgres_redis() {
    admin_capacity_wins(Storage::PostgresRedis).await;
}

async fn hostile_inbound_refused(storage: Storage) {
    let cl = start(cluster(storage).workers(1, 10)).await;
    let api = Api::new(&cl);
    let ann = api.register("ann@example.com").await;
    let (sid, _) = api.connected_session(&cl, &ann, "shop").await;
    let driver = cl.driver_of(&sid).expect("driver").clone();
    let text =
        |t: &str| MessageContent { r#type: MessageType::Text as i32, text: t.into(), ..Default::default() };
    let hostile = [
        ("<script>alert(1)</script>", text("hi")),
        ("628111@s.whatsapp.net", text(&"x".repeat(100_000))),
        (
            "628111@s.whatsapp.net",
            MessageContent {
                r#type: MessageType::Image as i32,
                media_url: Some("javascript:alert(1)".into()),
                ..Default::default()
            },
        ),
        (
            "628111@s.whatsapp.net",
            MessageContent {
                r#type: MessageType::Document as i32,
                media_url: Some("https://cdn.example.com/a.pdf".into()),
                filename: Some("../../etc/passwd".into()),
                ..Default::default()
            },
        ),
        (
            "628111@s.whatsapp.net",
            MessageContent {
                r#type: MessageType::Image as i32,
                media_url: Some("https://cdn.example.com/a.jpg".into()),
                caption: Some("c".repeat(100_000)),
                ..Default::default()
            },
        ),
    ];
    for (from, content) in hostile {
        assert!(driver.inject_inbound_content(&sid, from, content), "injected");
    }
    // A well-formed message after them is stored (events are applied in order).
    assert!(driver.inject_inbound(&sid, "628111@s.whatsapp.net", "hello"));
    let path = format!("/api/v1/sessions/{sid}/messages?direction=INBOUND");
    let stored = wait_for("the valid inbound message", Duration::from_secs(5), || {
        let api = api.clone();
        let (path, ann) = (path.clone(), ann.clone());
        async move {
            let r = api.get(&path, Some(&ann)).await;
            let items = r.data()["messages"].as_array().cloned().unwrap_or_default();
            (!items.is_empty()).then_some(items)
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = api.get(&path, Some(&ann)).await;
    let items = r.data()["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "only the valid message is stored: {}", r.body);
    assert_eq!(stored.len(), 1);
    let text = items[0].to_string();
    assert!(!text.contains("script") && !text.contains("javascript") && !text.contains("passwd"), "{text}");
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inbound_refused_sqlite() {
    hostile_inbound_refused(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inbound_refused_postgres_redis() {
    hostile_inbound_refused(Storage::PostgresRedis).await;
}

/// The shared worker token is opt-in: refused unless allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_worker_token_is_opt_in() {
    let cl = start(cluster(Storage::Sqlite).configure(|c| c.allow_shared_worker_token = false)).await;
    let shared = cl.cp().state().config.worker_auth_token.clone();
    let channel = wagate_proto::connect(cl.grpc_url()).await.expect("channel");
    let mut client = wagate_proto::v1::worker_service_client::WorkerServiceClient::new(channel);
    let (_tx, rx) = tokio::sync::mpsc::channel::<wagate_proto::v1::WorkerMessage>(1);
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.metadata_mut().insert("authorization", format!("Bearer {shared}").parse().expect("ascii"));
    let err = client.connect(req).await.expect_err("shared token refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    cl.shutdown().await;
}
