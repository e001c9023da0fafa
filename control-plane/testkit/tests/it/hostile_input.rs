//! Issue 20, hostile input: NUL characters in any text (REST and direct
//! gRPC), what workers report (phone numbers, Hello fields, capacity), the
//! password policy on every path that sets a password, bounded metric
//! labels, and the gRPC listener's guards (first bytes, cap, idle).
//! SQLite + in-process and PostgreSQL + Redis where storage is involved.

use std::time::Duration;

use crate::common::{self, Api, cluster, label, scrape, series, start, wait_for};
use futures::StreamExt;
use reqwest::Method;
use serde_json::json;
use tokio::io::AsyncReadExt;
use wagate_control_plane::server::listener::ListenerLimits;
use wagate_proto::v1;
use wagate_testkit::cluster::{Storage, WorkerSpec};

const ADMIN_EMAIL: &str = "root@wagate.test";
const ADMIN_PASSWORD: &str = "fleet-keeper-77";

#[track_caller]
fn field_is(r: &common::Reply, field: &str) {
    r.expect_code(400, "VALIDATION_ERROR");
    assert_eq!(r.body["field"], json!(field), "{}", r.body);
    assert!(r.body["error"].as_str().is_some_and(|e| e.contains("NUL")), "{}", r.body);
}

async fn nul_is_refused(storage: Storage) {
    let cl = start(cluster(storage).workers(1, 10)).await;
    let api = Api::new(&cl);
    let base = api.base.clone();

    // auth: register and login (login was a 500 on PostgreSQL)
    let r = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({ "email": "a\u{0}@example.com", "password": "correct-horse-9" }),
        )
        .await;
    field_is(&r, "email");
    let r = api
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "email": "ann\u{0}@example.com", "password": "correct-horse-9" }),
        )
        .await;
    field_is(&r, "email");
    let token = api.register("ann@example.com").await;
    let r = api.post("/api/v1/sessions", Some(&token), json!({ "name": "shop\u{0}" })).await;
    field_is(&r, "name");
    let (sid, key) = api.connected_session(&cl, &token, "shop").await;

    // send: text, caption, location name
    let send = |body: serde_json::Value| {
        api.http.post(format!("{base}/api/v1/sessions/{sid}/send")).header("x-api-key", &key).json(&body)
    };
    let r = api.raw(send(json!({ "to": "6281234567890", "message": "hi\u{0}there" }))).await;
    field_is(&r, "message");
    let r = api
        .raw(send(json!({ "to": "6281234567890", "type": "image",
            "mediaUrl": "https://cdn.example.com/a.jpg", "caption": "c\u{0}" })))
        .await;
    field_is(&r, "caption");
    let r = api
        .raw(send(json!({ "to": "6281234567890", "type": "location",
            "latitude": 1.0, "longitude": 2.0, "name": "home\u{0}" })))
        .await;
    field_is(&r, "name");
    // query strings: the history filter
    let r = api.get(&format!("/api/v1/sessions/{sid}/messages?peer=628%00"), Some(&token)).await;
    field_is(&r, "peer");
    // account
    let r = api.call(Method::PATCH, "/api/v1/me", Some(&token), Some(json!({ "name": "A\u{0}nn" }))).await;
    field_is(&r, "name");

    // direct gRPC (no edge in front): INVALID_ARGUMENT naming the proto field
    let channel = wagate_proto::connect(cl.grpc_url()).await.expect("channel");
    let mut auth = v1::auth_service_client::AuthServiceClient::new(channel.clone());
    let err = auth
        .login(v1::LoginRequest { email: "ann\u{0}@example.com".into(), password: "x".into() })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(err.metadata().get("x-wagate-field").and_then(|v| v.to_str().ok()), Some("email"));
    let mut messages = v1::message_service_client::MessageServiceClient::new(channel);
    let mut req = tonic::Request::new(v1::SendRequest {
        session_id: sid.clone(),
        to: "6281234567890".into(),
        content: Some(v1::MessageContent {
            r#type: v1::MessageType::Text as i32,
            text: "x\u{0}".into(),
            ..Default::default()
        }),
    });
    req.metadata_mut().insert("x-api-key", key.parse().expect("ascii"));
    let err = messages.send(req).await.expect_err("refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(err.metadata().get("x-wagate-field").and_then(|v| v.to_str().ok()), Some("content.text"));

    // a worker's inbound message with a NUL is dropped; the next one is stored
    let driver = cl.driver_of(&sid).expect("driver").clone();
    assert!(driver.inject_inbound(&sid, "6281112223333", "bad\u{0}text"));
    assert!(driver.inject_inbound(&sid, "6281112223333", "good text"));
    let path = format!("/api/v1/sessions/{sid}/messages?direction=INBOUND");
    let items = wait_for("the valid inbound message", Duration::from_secs(5), || {
        let (api, path, token) = (api.clone(), path.clone(), token.clone());
        async move {
            let r = api.get(&path, Some(&token)).await;
            r.expect(200);
            let items = r.data()["messages"].as_array().cloned().unwrap_or_default();
            (!items.is_empty()).then_some(items)
        }
    })
    .await;
    assert_eq!(items.len(), 1, "{items:?}");
    let stored = items[0].to_string();
    assert!(stored.contains("good text") && !stored.contains("bad"), "{stored}");

    // still alive, and the good path works
    api.send_text(&sid, &key, "still works").await.expect(200);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_is_refused_sqlite() {
    nul_is_refused(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_is_refused_postgres_redis() {
    nul_is_refused(Storage::PostgresRedis).await;
}

async fn worker_reports_are_checked(storage: Storage) {
    let mut hostile = WorkerSpec::new("w-hostile", 10);
    hostile.simulated.phone_prefix = "<script>".into();
    let cl = start(cluster(storage).worker(hostile).configure(|c| {
        c.admin_email = Some(ADMIN_EMAIL.into());
        c.admin_password = Some(ADMIN_PASSWORD.into());
    }))
    .await;
    let api = Api::new(&cl);

    // StatusChanged.phone_number = "<script>…": the status applies, the phone is dropped
    let token = api.register("ann@example.com").await;
    let (sid, _) = api.connected_session(&cl, &token, "shop").await;
    let r = api.get(&format!("/api/v1/sessions/{sid}"), Some(&token)).await;
    r.expect(200);
    assert_eq!(r.data()["status"], json!("CONNECTED"));
    assert!(!r.body.to_string().contains("script"), "{}", r.body);
    assert!(r.data()["phoneNumber"].is_null(), "{}", r.body);

    // Hello with control characters or a NUL: the stream is refused, naming the field
    let channel = wagate_proto::connect(cl.grpc_url()).await.expect("channel");
    let shared = cl.cp().state().config.worker_auth_token.clone();
    for (hello, field) in [
        (v1::Hello { endpoint: "sim://x\u{1b}[2J".into(), ..hello("w-evil") }, "endpoint"),
        (v1::Hello { version: "1\n<b>".into(), ..hello("w-evil") }, "version"),
        (
            v1::Hello { labels: [("zone".to_owned(), "a\u{0}".to_owned())].into(), ..hello("w-evil") },
            "labels[zone]",
        ),
    ] {
        let mut client = v1::worker_service_client::WorkerServiceClient::new(channel.clone());
        let first = v1::WorkerMessage { kind: Some(v1::worker_message::Kind::Hello(hello)) };
        let mut req = tonic::Request::new(futures::stream::iter([first]).chain(futures::stream::pending()));
        req.metadata_mut().insert("authorization", format!("Bearer {shared}").parse().expect("ascii"));
        let err = client.connect(req).await.expect_err("refused");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert_eq!(err.metadata().get("x-wagate-field").and_then(|v| v.to_str().ok()), Some(field));
    }

    // An administrator registers a worker and leaves the default capacity: the
    // worker's Hello claiming 100,000 does not override it.
    let admin = api
        .post("/api/v1/auth/login", None, json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .await;
    let admin = admin.data()["token"].as_str().expect("token").to_owned();
    let r = api.post("/api/v1/admin/workers", Some(&admin), json!({ "workerId": "w-default" })).await;
    r.expect(201);
    let worker_token = r.data()["token"].as_str().expect("worker token").to_owned();
    let default_max = r.data()["maxSessions"].as_u64().expect("maxSessions");
    let mut config = cl.worker_config("w-default", 100_000);
    config.token = worker_token;
    let driver = wagate_worker_sdk::simulated::SimulatedDriver::new(Default::default());
    let handle = wagate_worker_sdk::Worker::spawn(config, driver);
    assert!(handle.wait_connected(Duration::from_secs(10)).await, "worker with its own token connects");
    let r = api.get("/api/v1/admin/workers/w-default", Some(&admin)).await;
    r.expect(200);
    assert_eq!(r.data()["maxSessions"].as_u64(), Some(default_max), "{}", r.body);
    assert_eq!(default_max, 50);
    handle.shutdown().await;
    cl.shutdown().await;
}

fn hello(id: &str) -> v1::Hello {
    v1::Hello {
        worker_id: id.into(),
        endpoint: format!("sim://{id}"),
        max_sessions: 5,
        version: "1".into(),
        min_protocol_version: wagate_proto::PROTOCOL_VERSION_MIN,
        max_protocol_version: wagate_proto::PROTOCOL_VERSION_MAX,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_reports_are_checked_sqlite() {
    worker_reports_are_checked(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_reports_are_checked_postgres_redis() {
    worker_reports_are_checked(Storage::PostgresRedis).await;
}

/// `passwordpassword`, the email's domain + digits and the name + digits are
/// refused wherever a password is set; a strong one passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_passwords_are_refused_everywhere() {
    let cl = start(cluster(Storage::Sqlite)).await;
    let api = Api::new(&cl);
    for password in ["passwordpassword", "example12345", "AnnLee2026!!"] {
        let r = api
            .post(
                "/api/v1/auth/register",
                None,
                json!({ "email": "ann@example.com", "name": "Ann Lee", "password": password }),
            )
            .await;
        r.expect_code(400, "VALIDATION_ERROR");
        assert_eq!(r.body["field"], json!("password"), "{password}: {}", r.body);
    }
    let r = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({ "email": "ann@example.com", "name": "Ann Lee", "password": "kq8-Vandal-Orbit" }),
        )
        .await;
    r.expect(201);
    let token = r.data()["token"].as_str().expect("token").to_owned();
    // change password
    for password in ["passwordpassword", "example12345", "annlee12345"] {
        let r = api
            .call(
                Method::PATCH,
                "/api/v1/me",
                Some(&token),
                Some(json!({ "password": password, "currentPassword": "kq8-Vandal-Orbit" })),
            )
            .await;
        r.expect_code(400, "VALIDATION_ERROR");
        assert_eq!(r.body["field"], json!("password"), "{password}: {}", r.body);
    }
    // bootstrap administrator (WAGATE_ADMIN_PASSWORD, the embedded `wagate`)
    let state = cl.cp().state().clone();
    for password in ["passwordpassword", "wagate12345", "Administrator2026"] {
        let e = wagate_control_plane::bootstrap::ensure_admin(&state, "root@wagate.test", password).await;
        let e = wagate_proto::error::ApiError::from_status(&tonic::Status::from(e.expect_err(password)));
        assert_eq!(e.field.as_deref(), Some("password"), "{password}");
    }
    assert!(
        wagate_control_plane::bootstrap::ensure_admin(&state, "root@wagate.test", "fleet-keeper-77")
            .await
            .is_ok()
    );
    cl.shutdown().await;
}

/// Random HTTP methods and gRPC paths do not add series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_labels_are_bounded() {
    let cl =
        start(cluster(Storage::Sqlite).configure(|c| c.metrics_listen = Some(([127, 0, 0, 1], 0).into())))
            .await;
    let api = Api::new(&cl);
    let metrics = cl.cp().metrics_addr().expect("metrics");
    // one of each first, so the "other" series exist before counting
    let channel = wagate_proto::connect(cl.grpc_url()).await.expect("channel");
    let random_call = |i: usize| {
        let channel = channel.clone();
        async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            grpc.ready().await.expect("ready");
            let path = http::uri::PathAndQuery::try_from(format!("/wagate.v1.R{i}x/M{i}")).expect("path");
            let codec = wagate_proto::codec::CheckedCodec::<v1::LoginRequest, v1::AuthResponse>::default();
            let _ = grpc.unary(tonic::Request::new(v1::LoginRequest::default()), path, codec).await;
        }
    };
    let random_method = |i: usize| {
        let method = Method::from_bytes(format!("M{i}XQ").as_bytes()).expect("method");
        api.http.request(method, format!("{}/api/v1/sessions", api.base)).send()
    };
    random_call(0).await;
    let _ = random_method(0).await;
    let before = scrape(metrics).await;
    for i in 1..=300 {
        random_call(i).await;
        let _ = random_method(i).await;
    }
    let after = scrape(metrics).await;
    // The recorder is the process's: the other tests of this binary add
    // series of their own meanwhile, each labelled with a method this server
    // really has. The series added by anything else (made-up methods, which
    // must all be `other`) stay at most 2.
    let grpc_method = |m: &str| wagate_proto::text::GRPC_METHODS.contains(&m) || m.starts_with("/grpc.");
    let http_method = |m: &str| {
        ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE"].contains(&m)
    };
    for (name, real) in [
        ("wagate_cp_grpc_request_duration_seconds_count", &grpc_method as &dyn Fn(&str) -> bool),
        ("wagate_edge_http_request_duration_seconds_count", &http_method),
    ] {
        let (old, new) = (series(&before, name), series(&after, name));
        let added: Vec<&str> =
            new.difference(&old).copied().filter(|s| !label(s, "method").is_some_and(real)).collect();
        assert!(
            added.len() <= 2,
            "{name}: {} series before, {} after; not of a real method: {added:?}",
            old.len(),
            new.len()
        );
    }
    assert!(after.contains(r#"method="other""#), "{after}");
    assert!(!after.contains("M150XQ") && !after.contains("R150x"), "a random label leaked");
    cl.shutdown().await;
}

/// True when the peer closes `s` within `limit` (whatever it sent before).
async fn closed_within(s: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 256];
    tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Silent sockets are closed after the first-bytes deadline, the cap closes
/// sockets beyond it, an idle client connection is closed, a worker's stream
/// is not, and real clients keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_listener_guards() {
    let limits = ListenerLimits {
        first_bytes_timeout: Duration::from_millis(400),
        idle_timeout: Some(Duration::from_millis(1500)),
        max_connections: 6,
        ..ListenerLimits::default()
    };
    let cl = start(
        cluster(Storage::Sqlite)
            .without_edge()
            .configure(move |c| {
                c.grpc_limits = limits;
                c.metrics_listen = Some(([127, 0, 0, 1], 0).into());
            })
            .workers(1, 5),
    )
    .await;
    let addr = cl.cp().local_addr();
    // The counters are the process's (other tests of this binary close
    // connections too): what this test closes is the growth from here.
    let metrics = cl.cp().metrics_addr().expect("metrics");
    let counted = |reason: &'static str| async move {
        let text = reqwest::get(format!("http://{metrics}/metrics")).await.ok()?.text().await.ok()?;
        let prefix = format!("wagate_cp_grpc_connections_timed_out_total{{reason=\"{reason}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(prefix.as_str())).and_then(|v| v.trim().parse::<f64>().ok())
    };
    let first_bytes_before = counted("first_bytes").await.unwrap_or(0.0);
    let idle_before = counted("idle").await.unwrap_or(0.0);
    // The worker holds one connection: 5 slots left.
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // beyond the cap: closed at once (well before the first-bytes deadline)
    let mut over = tokio::net::TcpStream::connect(addr).await.expect("connect");
    assert!(closed_within(&mut over, Duration::from_millis(300)).await, "over the cap: still open");
    // the silent ones (the server's SETTINGS may come first): closed after the deadline
    for s in &mut silent {
        assert!(closed_within(s, Duration::from_secs(3)).await, "silent socket still open");
    }
    // a real client works, and its idle connection is closed after the idle timeout
    let channel = wagate_proto::connect(cl.grpc_url()).await.expect("channel");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.expect("health");
    // idle past the idle timeout: the client's connection is closed (counted)
    assert!(
        counted("first_bytes").await.is_some_and(|n| n >= first_bytes_before + 5.0),
        "silent sockets counted"
    );
    wait_for("idle connection closed", Duration::from_secs(5), || async {
        counted("idle").await.filter(|n| *n >= idle_before + 1.0).map(|_| ())
    })
    .await;
    // the channel reconnects by itself: a real client keeps working
    wait_for("health after the idle close", Duration::from_secs(5), || {
        let mut health = health.clone();
        async move {
            health
                .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
                .await
                .ok()
                .map(|_| ())
        }
    })
    .await;
    // the worker's stream (a call in flight) outlived the idle timeout: no reconnect
    let worker = cl.workers[0].handle.as_ref().expect("worker");
    assert_eq!(worker.connect_count(), 1, "the worker stream was not cut by the idle timeout");
    assert!(worker.wait_connected(Duration::from_millis(100)).await);
    cl.shutdown().await;
}
