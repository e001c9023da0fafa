//! Capacity is not free for the taking (issue 12): a session never paired
//! gives its worker slot back after the QR timeout (DISCONNECTED with a
//! reason, a `session.status` webhook event, an audit entry) and
//! `POST /sessions/{id}/start` places it again; an administrator can hold a
//! share of the fleet back from BASIC users. On SQLite and on PostgreSQL +
//! Redis with two control-plane replicas.

use std::time::Duration;

use crate::common::{Api, cluster, start, wait_for};
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::{Value, json};
use wagate_control_plane::ControlPlaneConfig;
use wagate_control_plane::persistence::entities::worker;
use wagate_testkit::cluster::{Cluster, Storage, WorkerSpec};

const QR_REASON: &str = "qr code not scanned within 1 s";

fn short_qr_timeout(c: &mut ControlPlaneConfig) {
    c.qr_timeout = Some(Duration::from_secs(1));
    c.sweep_interval = Duration::from_millis(100);
    c.webhooks.allow_private = true;
    // A webhook set through one replica is seen by the others only after the
    // per-replica webhook cache expires (2 s by default): longer than this
    // test's QR timeout, so the replica that sweeps reads it every time.
    c.webhooks.cache_ttl = Duration::ZERO;
}

/// Slots in use, over every worker.
async fn used_slots(cl: &Cluster) -> i32 {
    worker::Entity::find().all(&cl.cp().state().db.conn).await.unwrap().iter().map(|w| w.session_count).sum()
}

async fn session_json(api: &Api, token: &str, id: &str) -> Value {
    let r = api.get(&format!("/api/v1/sessions/{id}"), Some(token)).await;
    r.expect(200);
    r.data().clone()
}

async fn set_tier(cl: &Cluster, email: &str, tier: &str) {
    let db = &cl.cp().state().db;
    db.conn
        .execute_raw(db.stmt("UPDATE users SET tier = $1 WHERE email = $2", vec![tier.into(), email.into()]))
        .await
        .unwrap();
}

async fn qr_timeout_frees_the_slot(storage: Storage, replicas: usize) {
    // Two workers, one per replica when there are two: the expiry's stop and
    // the restart's start are forwarded between replicas as needed.
    let cl = start(
        cluster(storage)
            .replicas(replicas)
            .edge_on(replicas - 1)
            .configure(short_qr_timeout)
            .worker(WorkerSpec::new("w-1", 5).on(0))
            .worker(WorkerSpec::new("w-2", 5).on(1)),
    )
    .await;
    let api = Api::new(&cl);

    // Bob pairs in time; Ann never scans.
    let bob = api.register("bob@example.com").await;
    let (paired, paired_key) = api.connected_session(&cl, &bob, "paired").await;
    let ann = api.register("ann@example.com").await;
    let (idle, _) = api.create_session(&ann, "idle").await;
    // A webhook for session.status (a closed port: the delivery row is what counts).
    let hook = json!({ "url": "http://127.0.0.1:9/hook", "events": ["session.status"] });
    api.call(reqwest::Method::PUT, &format!("/api/v1/sessions/{idle}/webhook"), Some(&ann), Some(hook))
        .await
        .expect(201);
    let first_worker = session_json(&api, &ann, &idle).await["workerId"].as_str().unwrap().to_owned();
    assert_eq!(used_slots(&cl).await, 2);
    wait_for("idle session waits for a scan", Duration::from_secs(5), || async {
        cl.driver_of(&idle).filter(|d| d.qr_code(&idle).is_some()).map(|_| ())
    })
    .await;

    // The QR timeout: DISCONNECTED with the reason, slot and worker freed.
    let s = wait_for("idle session DISCONNECTED", Duration::from_secs(10), || async {
        let s = session_json(&api, &ann, &idle).await;
        (s["status"] == json!("DISCONNECTED")).then_some(s)
    })
    .await;
    assert_eq!(s["statusReason"], json!(QR_REASON), "{s}");
    assert!(s["workerId"].is_null(), "{s}");
    assert!(s["qrCode"].is_null(), "{s}");
    assert_eq!(used_slots(&cl).await, 1, "the expired session's slot is free");
    wait_for("stopped on its worker", Duration::from_secs(5), || async {
        cl.driver_of(&idle).is_none().then_some(())
    })
    .await;
    let r = api.get(&format!("/api/v1/sessions/{idle}/qr"), Some(&ann)).await;
    r.expect(200);
    assert!(r.data()["qrCode"].is_null(), "{}", r.body);

    // The webhook gets a session.status event with the reason.
    let db = &cl.cp().state().db;
    let rows = db
        .conn
        .query_all_raw(db.stmt(
            "SELECT payload FROM webhook_deliveries WHERE session_id = $1 AND event = 'session.status'",
            vec![idle.clone().into()],
        ))
        .await
        .unwrap();
    let events: Vec<Value> = rows
        .iter()
        .map(|r| serde_json::from_str(&r.try_get::<String>("", "payload").unwrap()).unwrap())
        .collect();
    assert!(
        events.iter().any(|e| e["data"]["status"] == "DISCONNECTED" && e["data"]["reason"] == QR_REASON),
        "{events:?}"
    );
    // And the audit log says so.
    let audited = wait_for("audit entry", Duration::from_secs(5), || async {
        let row = db
            .conn
            .query_one_raw(db.stmt(
                "SELECT worker_id FROM system_logs WHERE session_id = $1 AND message LIKE 'qr code not scanned%'",
                vec![idle.clone().into()],
            ))
            .await
            .unwrap();
        row.map(|r| r.try_get::<Option<String>>("", "worker_id").unwrap())
    })
    .await;
    assert_eq!(audited.as_deref(), Some(first_worker.as_str()), "audit entry names the worker");

    // The paired session is untouched (its clock stopped when it paired).
    let s = session_json(&api, &bob, &paired).await;
    assert_eq!(s["status"], json!("CONNECTED"), "{s}");
    assert!(s["workerId"].is_string(), "{s}");
    assert!(cl.driver_of(&paired).is_some());
    api.send_text(&paired, &paired_key, "still here").await.expect(200);

    // Tenancy: Bob cannot start Ann's session; impossible ids are a 4xx envelope.
    api.post(&format!("/api/v1/sessions/{idle}/start"), Some(&bob), json!({}))
        .await
        .expect_code(404, "SESSION_NOT_FOUND");
    api.post("/api/v1/sessions/no-such-session/start", Some(&ann), json!({}))
        .await
        .expect_code(404, "SESSION_NOT_FOUND");
    let bad = api.post(&format!("/api/v1/sessions/{}/start", "x".repeat(65)), Some(&ann), json!({})).await;
    assert!(bad.status.is_client_error(), "{}", bad.body);
    bad.expect(bad.status.as_u16());
    api.post(&format!("/api/v1/sessions/{idle}/start"), None, json!({})).await.expect(401);
    // A running session cannot be started.
    api.post(&format!("/api/v1/sessions/{paired}/start"), Some(&bob), json!({}))
        .await
        .expect_code(409, "ALREADY_EXISTS");

    // Start again: on a worker, a new QR code; then paired in time, it stays.
    let r = api.post(&format!("/api/v1/sessions/{idle}/start"), Some(&ann), json!({})).await;
    r.expect(200);
    assert_eq!(r.data()["sessionId"], json!(idle), "{}", r.body);
    assert!(r.data()["workerId"].is_string(), "{}", r.body);
    assert!(r.data()["statusReason"].is_null(), "{}", r.body);
    assert_eq!(used_slots(&cl).await, 2);
    let driver = cl.driver_of(&idle).expect("running on a worker again").clone();
    assert!(driver.scan(&idle), "a fresh QR code to scan");
    api.post(&format!("/api/v1/sessions/{idle}/start"), Some(&ann), json!({}))
        .await
        .expect_code(409, "ALREADY_EXISTS");
    wait_for("restarted session CONNECTED", Duration::from_secs(5), || async {
        (session_json(&api, &ann, &idle).await["status"] == json!("CONNECTED")).then_some(())
    })
    .await;
    // Two sweeps past its timeout, it is still CONNECTED and on its worker.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let s = session_json(&api, &ann, &idle).await;
    assert_eq!(s["status"], json!("CONNECTED"), "{s}");
    assert_eq!(used_slots(&cl).await, 2);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_timeout_frees_the_slot_and_start_places_again_sqlite() {
    qr_timeout_frees_the_slot(Storage::Sqlite, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_timeout_frees_the_slot_and_start_places_again_postgres_two_replicas() {
    qr_timeout_frees_the_slot(Storage::PostgresRedis, 2).await;
}

/// An expired session no longer counts against the tier's session limit,
/// so its start is refused while another session of the user runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_respects_the_tier_limit_sqlite() {
    let cl = start(cluster(Storage::Sqlite).configure(short_qr_timeout).workers(1, 10)).await;
    let api = Api::new(&cl);
    let ann = api.register("ann@example.com").await;
    let (first, _) = api.create_session(&ann, "first").await;
    wait_for("first DISCONNECTED", Duration::from_secs(10), || async {
        (session_json(&api, &ann, &first).await["status"] == json!("DISCONNECTED")).then_some(())
    })
    .await;
    // BASIC allows one active session: a new one, then the old one cannot start.
    let (second, _) = api.connected_session(&cl, &ann, "second").await;
    api.post(&format!("/api/v1/sessions/{first}/start"), Some(&ann), json!({}))
        .await
        .expect_code(403, "TIER_LIMIT_EXCEEDED");
    let s = session_json(&api, &ann, &first).await;
    assert_eq!(s["status"], json!("DISCONNECTED"), "{s}");
    assert_eq!(used_slots(&cl).await, 1);
    // Freed by deleting the other one, it starts.
    api.delete(&format!("/api/v1/sessions/{second}"), Some(&ann)).await.expect(200);
    api.post(&format!("/api/v1/sessions/{first}/start"), Some(&ann), json!({})).await.expect(200);
    assert_eq!(used_slots(&cl).await, 1);
    cl.shutdown().await;
}

async fn paid_reserve(storage: Storage, replicas: usize) {
    // Capacity 10, 20 % held back for paid tiers.
    let mut cl = start(
        cluster(storage)
            .replicas(replicas)
            .edge_on(replicas - 1)
            .configure(|c| c.paid_reserve_percent = 20)
            .worker(WorkerSpec::new("w-1", 5).on(0))
            .worker(WorkerSpec::new("w-2", 5).on(1)),
    )
    .await;
    let api = Api::new(&cl);
    let mut tokens = Vec::new();
    for i in 0..10 {
        tokens.push(api.register(&format!("basic{i}@example.com")).await);
    }
    // Ten BASIC creates at once (through every replica): exactly eight get a slot.
    let mut apis = vec![api.clone()];
    if replicas > 1 {
        apis.push(Api { base: cl.add_edge(0).await.unwrap(), http: reqwest::Client::new() });
    }
    let creates = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| apis[i % apis.len()].post("/api/v1/sessions", Some(t), json!({ "name": "basic" })));
    let replies = futures::future::join_all(creates).await;
    let mut basics = Vec::new();
    let mut refused = Vec::new();
    for (token, r) in tokens.iter().zip(&replies) {
        if r.status == reqwest::StatusCode::CREATED {
            basics.push((token.clone(), r.data()["sessionId"].as_str().unwrap().to_owned()));
        } else {
            r.expect_code(503, "NO_AVAILABLE_WORKERS");
            assert!(r.body["error"].as_str().unwrap().contains("reserved for paid tiers"), "{}", r.body);
            let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(retry > 0);
            refused.push(token.clone());
        }
    }
    assert_eq!((basics.len(), refused.len()), (8, 2));
    assert_eq!(used_slots(&cl).await, 8, "nothing reserved by the refused creates");
    let ninth = refused[0].clone();
    api.post("/api/v1/sessions", Some(&ninth), json!({ "name": "ninth" }))
        .await
        .expect_code(503, "NO_AVAILABLE_WORKERS");

    // Paid tiers still place, up to the whole fleet.
    let pro = api.register("pro@example.com").await;
    set_tier(&cl, "pro@example.com", "PRO").await;
    let (pro_1, _) = api.create_session(&pro, "pro-1").await;
    let (pro_2, _) = api.create_session(&pro, "pro-2").await;
    assert_eq!(used_slots(&cl).await, 10);
    api.post("/api/v1/sessions", Some(&pro), json!({ "name": "pro-3" }))
        .await
        .expect_code(503, "NO_AVAILABLE_WORKERS");
    // The BASIC user is still refused (now because the fleet is full).
    api.post("/api/v1/sessions", Some(&ninth), json!({ "name": "ninth" }))
        .await
        .expect_code(503, "NO_AVAILABLE_WORKERS");

    // A start goes through the same rule. A BASIC session disconnected (as
    // the QR timeout leaves it: no worker, its slot given back) ...
    let (basic0, idle) = &basics[0];
    let db = &cl.cp().state().db;
    let worker_id = session_json(&api, basic0, idle).await["workerId"].as_str().unwrap().to_owned();
    db.conn
        .execute_raw(db.stmt(
            "UPDATE sessions SET status = 'DISCONNECTED', worker_id = NULL, qr_since = NULL WHERE id = $1",
            vec![idle.clone().into()],
        ))
        .await
        .unwrap();
    db.conn
        .execute_raw(db.stmt(
            "UPDATE workers SET session_count = session_count - 1 WHERE id = $1",
            vec![worker_id.into()],
        ))
        .await
        .unwrap();
    assert_eq!(used_slots(&cl).await, 9);
    // ... cannot start while used slots (9, then 8) reach 80 % of 10 ...
    let start_idle = format!("/api/v1/sessions/{idle}/start");
    let r = api.post(&start_idle, Some(basic0), json!({})).await;
    r.expect_code(503, "NO_AVAILABLE_WORKERS");
    assert!(r.headers.contains_key("retry-after"));
    api.delete(&format!("/api/v1/sessions/{pro_1}"), Some(&pro)).await.expect(200);
    api.post(&start_idle, Some(basic0), json!({})).await.expect_code(503, "NO_AVAILABLE_WORKERS");
    assert_eq!(used_slots(&cl).await, 8);
    // ... and can below it.
    api.delete(&format!("/api/v1/sessions/{pro_2}"), Some(&pro)).await.expect(200);
    api.post(&start_idle, Some(basic0), json!({})).await.expect(200);
    assert_eq!(used_slots(&cl).await, 8);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_reserve_holds_slots_back_from_basic_sqlite() {
    paid_reserve(Storage::Sqlite, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_reserve_holds_slots_back_from_basic_postgres_two_replicas() {
    paid_reserve(Storage::PostgresRedis, 2).await;
}
