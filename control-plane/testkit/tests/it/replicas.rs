//! Several control-plane replicas on one database and cache, the way the
//! helm chart deploys them: commands reach a worker whatever replica the
//! caller (edge) talks to, liveness is fenced by the stream epoch, key-cache
//! invalidations reach every replica, and a lost database is a 503.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::{Api, cluster, start, wait_for};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::{Value, json};
use wagate_control_plane::persistence::entities::{message, session, worker};
use wagate_control_plane::persistence::enums::{SessionStatus, WorkerStatus};
use wagate_proto::v1;
use wagate_testkit::cluster::{Cluster, Storage, WorkerSpec};
use wagate_worker_sdk::simulated::SimulatedDriver;
use wagate_worker_sdk::{Worker, WorkerConfig};

const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "fleet-keeper-77";

fn with_admin(c: &mut wagate_control_plane::ControlPlaneConfig) {
    c.admin_email = Some(ADMIN_EMAIL.into());
    c.admin_password = Some(ADMIN_PASSWORD.into());
}

async fn login(api: &Api, email: &str, password: &str) -> String {
    let r = api.post("/api/v1/auth/login", None, json!({ "email": email, "password": password })).await;
    r.expect(200);
    r.data()["token"].as_str().expect("token").to_owned()
}

async fn sessions(cl: &Cluster) -> Vec<session::Model> {
    session::Entity::find().all(&cl.cp().state().db.conn).await.unwrap()
}

async fn worker_row(cl: &Cluster, id: &str) -> worker::Model {
    worker::Entity::find_by_id(id.to_owned()).one(&cl.cp().state().db.conn).await.unwrap().unwrap()
}

async fn raise_to_max(cl: &Cluster, email: &str) {
    let db = &cl.cp().state().db;
    db.conn
        .execute_raw(db.stmt("UPDATE users SET tier = 'MAX' WHERE email = $1", vec![email.into()]))
        .await
        .unwrap();
}

fn api_at(base: String) -> Api {
    Api { base, http: reqwest::Client::new() }
}

/// The worker's stream on replica A, the edge on replica B: every step of a
/// session's life works, and a rotated key is dead at once on both replicas.
async fn worker_on_a_edge_on_b(storage: Storage) {
    let mut cl = start(
        cluster(storage)
            .replicas(2)
            .edge_on(1)
            .configure(with_admin)
            .worker(WorkerSpec::new("w-a", 10).on(0)),
    )
    .await;
    let api = Api::new(&cl); // → replica B
    let api_a = api_at(cl.add_edge(0).await.unwrap()); // → replica A
    assert!(cl.cp_at(0).state().registry.get("w-a").is_some(), "stream on A");
    assert!(cl.cp_at(1).state().registry.get("w-a").is_none(), "not on B");

    let token = api.register("op@example.com").await;
    // create: StartSession forwarded B → A
    let (id, key) = api.create_session(&token, "forwarded").await;
    // QR (reported by the worker through A, read through B)
    let qr = wait_for("QR through B", Duration::from_secs(5), || async {
        let r = api.get(&format!("/api/v1/sessions/{id}/qr"), Some(&token)).await;
        r.data()["qrCode"].as_str().filter(|q| !q.is_empty()).map(str::to_owned)
    })
    .await;
    assert!(!qr.is_empty());
    // pair
    let driver = cl.driver_of(&id).unwrap().clone();
    assert!(driver.scan(&id));
    wait_for("CONNECTED through B", Duration::from_secs(5), || async {
        let r = api.get(&format!("/api/v1/sessions/{id}"), Some(&token)).await;
        (r.data()["status"] == json!("CONNECTED")).then_some(())
    })
    .await;
    // send through B: forwarded, SENT
    let r = api.send_text(&id, &key, "through b").await;
    r.expect(200);
    assert_eq!(r.data()["status"], json!("SENT"), "{}", r.body);
    let via_b = r.data()["messageId"].as_str().unwrap().to_owned();
    // and through A (local): both keys cached on both replicas now
    let r = api_a.send_text(&id, &key, "through a").await;
    r.expect(200);
    assert_eq!(r.data()["status"], json!("SENT"), "{}", r.body);
    assert!(driver.sent_message_ids(&id).contains(&via_b));
    // history
    let r = api.get(&format!("/api/v1/sessions/{id}/messages"), Some(&token)).await;
    r.expect(200);
    let ids: Vec<&str> =
        r.data()["messages"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(ids.contains(&via_b.as_str()), "{}", r.body);

    // rotate through B: the old key is dead at once on both replicas
    let r = api.post(&format!("/api/v1/sessions/{id}/api-key/rotate"), Some(&token), json!({})).await;
    r.expect(200);
    let new_key = r.data()["apiKey"].as_str().unwrap().to_owned();
    api_a.send_text(&id, &key, "old key on a").await.expect_code(401, "INVALID_API_KEY");
    api.send_text(&id, &key, "old key on b").await.expect_code(401, "INVALID_API_KEY");
    api_a.send_text(&id, &new_key, "new key on a").await.expect(200);
    api.send_text(&id, &new_key, "new key on b").await.expect(200);

    // drain A's worker through B onto a worker on B
    cl.add_worker(WorkerSpec::new("w-b", 10).on(1)).await.unwrap();
    let admin = login(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let r = api.post("/api/v1/admin/workers/w-a/drain", Some(&admin), json!({})).await;
    r.expect(200);
    assert_eq!(r.data()["moved"], json!(1), "{}", r.body);
    assert_eq!(r.data()["remaining"], json!(0), "{}", r.body);
    let s = sessions(&cl).await.into_iter().find(|s| s.id == id).unwrap();
    assert_eq!(s.worker_id.as_deref(), Some("w-b"));
    assert_eq!(cl.worker("w-a").unwrap().driver.session_count(), 0, "stopped on the drained worker (via A)");
    wait_for("CONNECTED on w-b", Duration::from_secs(5), || async {
        let r = api.get(&format!("/api/v1/sessions/{id}"), Some(&token)).await;
        (r.data()["status"] == json!("CONNECTED")).then_some(())
    })
    .await;
    // now local to B, forwarded from A
    let r = api_a.send_text(&id, &new_key, "after drain, through a").await;
    r.expect(200);
    assert_eq!(r.data()["status"], json!("SENT"), "{}", r.body);

    // delete through A: StopSession forwarded A → B
    api_a.delete(&format!("/api/v1/sessions/{id}"), Some(&token)).await.expect(200);
    assert_eq!(cl.worker("w-b").unwrap().driver.session_count(), 0, "stopped on its worker");
    api.send_text(&id, &new_key, "after delete").await.expect(401);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_on_replica_a_edge_on_replica_b_postgres() {
    worker_on_a_edge_on_b(Storage::PostgresRedis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_on_replica_a_edge_on_replica_b_sqlite() {
    worker_on_a_edge_on_b(Storage::Sqlite).await;
}

/// Creates `n` paired sessions of one MAX user; returns (id, key).
async fn paired(cl: &Cluster, api: &Api, email: &str, n: usize) -> (String, Vec<(String, String)>) {
    let token = api.register(email).await;
    raise_to_max(cl, email).await;
    let mut out = Vec::new();
    for i in 0..n {
        out.push(api.create_session(&token, &format!("s{i}")).await);
    }
    for (id, _) in &out {
        let d = wait_for("on a worker", Duration::from_secs(5), || async { cl.driver_of(id).cloned() }).await;
        assert!(d.scan(id));
    }
    wait_for("all CONNECTED", Duration::from_secs(10), || async {
        let all = sessions(cl).await;
        out.iter()
            .all(|(id, _)| all.iter().any(|s| &s.id == id && s.status == SessionStatus::Connected))
            .then_some(())
    })
    .await;
    (token, out)
}

/// A worker killed while its stream is on A: its sessions fail over to a
/// worker on B, with sends made through B all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_on_a_fails_over_with_sends_through_b() {
    let mut cl = start(
        cluster(Storage::PostgresRedis)
            .replicas(2)
            .edge_on(1)
            .worker(WorkerSpec::new("w-a", 10).on(0))
            .worker(WorkerSpec::new("w-b", 10).on(1)),
    )
    .await;
    let api = Api::new(&cl);
    let (_, all) = paired(&cl, &api, "kill@example.com", 4).await;
    let on_a: Vec<(String, String)> = all
        .iter()
        .filter(|(id, _)| cl.worker("w-a").unwrap().driver.session_status(id).is_some())
        .cloned()
        .collect();
    assert!(!on_a.is_empty(), "placement spreads over both workers");

    let handle = cl.workers.iter_mut().find(|w| w.id == "w-a").unwrap().handle.take().unwrap();
    handle.kill().await;
    let t0 = Instant::now();
    // sends through B while it fails over: never a 500, accepted ones land
    let mut accepted = Vec::new();
    let mut statuses = HashSet::new();
    loop {
        for (id, key) in &on_a {
            let r = api.send_text(id, key, "during failover").await;
            statuses.insert(r.status.as_u16());
            assert!(r.status.as_u16() < 500 || r.status == StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
            if r.status.is_success() {
                accepted.push(r.data()["messageId"].as_str().unwrap().to_owned());
            }
        }
        let moved = sessions(&cl)
            .await
            .iter()
            .filter(|s| on_a.iter().any(|(id, _)| *id == s.id))
            .all(|s| s.worker_id.as_deref() == Some("w-b") && s.status == SessionStatus::Connected);
        if moved {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "failover did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("failover through B done in {:?}; statuses seen {statuses:?}", t0.elapsed());
    assert_eq!(worker_row(&cl, "w-a").await.status, WorkerStatus::Offline);
    for (id, key) in &on_a {
        let r = api.send_text(id, key, "after failover").await;
        r.expect(200);
        assert_eq!(r.data()["status"], json!("SENT"), "{}", r.body);
    }
    // every accepted send is in the database and reaches the new worker
    let driver_b = cl.worker("w-b").unwrap().driver.clone();
    wait_for("accepted sends delivered on w-b", Duration::from_secs(15), || async {
        let sent: HashSet<String> = on_a.iter().flat_map(|(id, _)| driver_b.sent_message_ids(id)).collect();
        accepted.iter().all(|m| sent.contains(m)).then_some(())
    })
    .await;
    cl.shutdown().await;
}

/// A worker moving its stream from A to B (A's stream dropped) keeps every
/// session: nothing fails over, nothing moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_moving_its_stream_to_another_replica_keeps_its_sessions() {
    let mut cl = start(
        cluster(Storage::PostgresRedis)
            .replicas(2)
            .edge_on(1)
            .worker(WorkerSpec::new("w-a", 10).on(0))
            .worker(WorkerSpec::new("w-spare", 10).on(1)),
    )
    .await;
    let api = Api::new(&cl);
    let (_, all) = paired(&cl, &api, "move@example.com", 6).await;
    let before: Vec<session::Model> = sessions(&cl).await;
    let held: Vec<&session::Model> =
        before.iter().filter(|s| s.worker_id.as_deref() == Some("w-a")).collect();
    assert!(!held.is_empty());
    let epoch_before = worker_row(&cl, "w-a").await.stream_epoch;
    let connects = cl.worker("w-a").unwrap().handle.as_ref().unwrap().connect_count();

    cl.move_worker("w-a", 1);
    wait_for("w-a reconnected to B", Duration::from_secs(5), || async {
        let h = cl.worker("w-a").unwrap().handle.as_ref().unwrap();
        (h.connect_count() > connects
            && h.state().is_connected()
            && cl.cp_at(1).state().registry.get("w-a").is_some())
        .then_some(())
    })
    .await;
    // A drops its stale stream once B's Preempt (or the route refresh) reaches it.
    wait_for("A's stream is gone", Duration::from_secs(5), || async {
        cl.cp_at(0).state().registry.get("w-a").is_none().then_some(())
    })
    .await;
    // past the reconnect grace and a few sweeps: still nothing moved
    tokio::time::sleep(cl.cp().state().config.reconnect_grace * 2 + Duration::from_millis(500)).await;
    let row = worker_row(&cl, "w-a").await;
    assert!(row.stream_epoch > epoch_before, "Hello on B bumped the epoch");
    assert_eq!(row.status, WorkerStatus::Online, "never marked OFFLINE by A's stream end");
    let after = sessions(&cl).await;
    for s in &held {
        let now = after.iter().find(|a| a.id == s.id).unwrap();
        assert_eq!(now.worker_id.as_deref(), Some("w-a"), "session {} moved", s.id);
        assert_eq!(now.generation, s.generation, "session {} was placed again", s.id);
        assert_eq!(now.status, SessionStatus::Connected);
    }
    assert_eq!(cl.worker("w-spare").unwrap().driver.session_count(), all.len() - held.len());
    // sends work through B (local now) and through A (forwarded)
    let api_a = api_at(cl.add_edge(0).await.unwrap());
    for (id, key) in all.iter().filter(|(id, _)| held.iter().any(|s| &s.id == id)) {
        api.send_text(id, key, "b").await.expect(200);
        let r = api_a.send_text(id, key, "a").await;
        r.expect(200);
        assert_eq!(r.data()["status"], json!("SENT"), "{}", r.body);
    }
    cl.shutdown().await;
}

/// A replica killed (not gracefully): its workers reconnect to the other one
/// and keep their sessions.
async fn replica_killed(storage: Storage) {
    let mut cl = start(
        cluster(storage)
            .replicas(2)
            .edge_on(1)
            .worker(WorkerSpec::new("w-1", 10).on(0))
            .worker(WorkerSpec::new("w-2", 10).on(0)),
    )
    .await;
    let api = Api::new(&cl);
    let (_, all) = paired(&cl, &api, "crash@example.com", 6).await;
    let before = sessions(&cl).await;
    cl.kill_replica(0).await;
    wait_for("both workers on B", Duration::from_secs(10), || async {
        let st = cl.cp_at(1).state();
        (st.registry.get("w-1").is_some() && st.registry.get("w-2").is_some()).then_some(())
    })
    .await;
    tokio::time::sleep(cl.cp().state().config.reconnect_grace * 2 + Duration::from_millis(500)).await;
    let after = sessions(&cl).await;
    for s in &before {
        let now = after.iter().find(|a| a.id == s.id).unwrap();
        assert_eq!(now.worker_id, s.worker_id, "session {} moved", s.id);
        assert_eq!(now.generation, s.generation, "session {} was placed again", s.id);
        assert_eq!(now.status, SessionStatus::Connected);
    }
    for (id, key) in &all {
        let r = api.send_text(id, key, "after the crash").await;
        r.expect(200);
        assert_eq!(r.data()["status"], json!("SENT"), "{}", r.body);
    }
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_killed_its_workers_reconnect_and_keep_sessions_postgres() {
    replica_killed(Storage::PostgresRedis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_killed_its_workers_reconnect_and_keep_sessions_sqlite() {
    replica_killed(Storage::Sqlite).await;
}

/// Two reference workers on one host with default endpoints (the host
/// name) both connect; a refused Hello stops the worker with the reason.
async fn identity(storage: Storage) {
    let cl = start(cluster(storage)).await;
    let token = cl.cp().state().config.worker_auth_token.clone();
    let mut handles = Vec::new();
    for id in ["host-w-1", "host-w-2"] {
        let mut config = WorkerConfig::new(cl.grpc_url(), token.clone(), id);
        config.backoff_base = Duration::from_millis(50);
        assert_eq!(config.endpoint, WorkerConfig::new(cl.grpc_url(), token.clone(), "other").endpoint);
        let h = Worker::spawn(config, SimulatedDriver::new(Default::default()));
        handles.push(h);
    }
    for h in &handles {
        assert!(h.wait_connected(Duration::from_secs(5)).await, "{} connects", h.worker_id());
    }
    for id in ["host-w-1", "host-w-2"] {
        assert_eq!(worker_row(&cl, id).await.status, WorkerStatus::Online);
    }
    // a Hello the control plane refuses: reported, and the worker stops
    let mut bad = WorkerConfig::new(cl.grpc_url(), token.clone(), "not a valid id!");
    bad.backoff_base = Duration::from_millis(50);
    let h = Worker::spawn(bad, SimulatedDriver::new(Default::default()));
    assert!(h.wait_stopped(Duration::from_secs(5)).await, "refused worker stops");
    let why = h.refusal().expect("refusal reported");
    assert!(why.contains("worker_id"), "{why}");
    for h in handles {
        h.shutdown().await;
    }
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_host_both_connect_sqlite() {
    identity(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_host_both_connect_postgres() {
    identity(Storage::PostgresRedis).await;
}

/// The internal service takes the internal secret only: a user's token, a
/// worker token or none are refused; with it, an unknown worker is
/// NOT_CONNECTED (never forwarded again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_service_needs_the_internal_secret() {
    use wagate_proto::v1::internal_service_client::InternalServiceClient;
    let cl = start(cluster(Storage::Sqlite).workers(1, 5)).await;
    let api = Api::new(&cl);
    let user = api.register("intruder@example.com").await;
    let channel = wagate_proto::connect(cl.grpc_url()).await.unwrap();
    let mut client = InternalServiceClient::new(channel);
    let req = || v1::DispatchRequest {
        worker_id: "worker-1".into(),
        command: Some(v1::Command {
            request_id: 1,
            deadline_ms: 1000,
            kind: Some(v1::command::Kind::GetStatus(v1::GetStatus { session_id: "x".into() })),
        }),
    };
    let state = cl.cp().state().clone();
    for (key, value) in [
        ("authorization", format!("Bearer {user}")),
        ("authorization", format!("Bearer {}", state.config.worker_auth_token)),
        (wagate_proto::metadata::INTERNAL_TOKEN, user.clone()),
        (wagate_proto::metadata::INTERNAL_TOKEN, state.config.worker_auth_token.clone()),
    ] {
        let mut r = tonic::Request::new(req());
        r.metadata_mut().insert(key, value.parse().unwrap());
        let err = client.dispatch(r).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{key}");
    }
    let mut r = tonic::Request::new(req());
    r.metadata_mut()
        .insert(wagate_proto::metadata::INTERNAL_TOKEN, state.config.internal_token.parse().unwrap());
    let reply = client.dispatch(r).await.unwrap().into_inner();
    assert!(matches!(reply.outcome, Some(v1::dispatch_response::Outcome::Result(_))), "{reply:?}");
    let mut r = tonic::Request::new(v1::DispatchRequest { worker_id: "nobody".into(), ..req() });
    r.metadata_mut()
        .insert(wagate_proto::metadata::INTERNAL_TOKEN, state.config.internal_token.parse().unwrap());
    let reply = client.dispatch(r).await.unwrap().into_inner();
    match reply.outcome {
        Some(v1::dispatch_response::Outcome::Failure(f)) => {
            assert_eq!(f.kind(), v1::dispatch_failure::Kind::NotConnected)
        }
        other => panic!("{other:?}"),
    }
    cl.shutdown().await;
}

/// A session left INIT on a worker that never started it (a move that
/// stopped half-way) is found by the sweep and placed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stranded_session_is_placed_again_by_the_sweep() {
    let cl = start(cluster(Storage::Sqlite).workers(2, 5)).await;
    let api = Api::new(&cl);
    let token = api.register("stranded@example.com").await;
    let (id, _) = api.create_session(&token, "stranded").await;
    let state = cl.cp().state().clone();
    let s = sessions(&cl).await.into_iter().find(|s| s.id == id).unwrap();
    let on = s.worker_id.clone().unwrap();
    // the worker forgets it (as if StartSession never reached it) and the
    // row looks like a move that stopped half-way, a while ago
    let stop = v1::StopSession { session_id: id.clone(), generation: 1 };
    assert!(state.dispatcher.run(&on, stop).await.unwrap().ok);
    let old = chrono::Utc::now() - chrono::Duration::hours(1);
    state
        .db
        .conn
        .execute_raw(state.db.stmt(
            "UPDATE sessions SET status = 'RECONNECTING', updated_at = $1 WHERE id = $2",
            vec![old.into(), id.clone().into()],
        ))
        .await
        .unwrap();
    assert!(cl.driver_of_live(&id).is_none());
    let moved = wagate_control_plane::fleet::sweeper::stranded_sessions(&state).await.unwrap();
    assert_eq!(moved, 1);
    wait_for("started again", Duration::from_secs(5), || async { cl.driver_of_live(&id).map(|_| ()) }).await;
    let s = sessions(&cl).await.into_iter().find(|s| s.id == id).unwrap();
    assert!(s.generation > 1);
    cl.shutdown().await;
}

/// PostgreSQL unreachable during sends (the network to it cut by a proxy,
/// then restored): only 503/504, never a 500; health NOT_SERVING meanwhile;
/// every accepted send is in the database afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_during_sends_is_503_never_500() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let cl = start(cluster(Storage::PostgresRedis).db_proxy().workers(1, 10)).await;
    let api = Api::new(&cl);
    let (_, all) = paired(&cl, &api, "outage@example.com", 2).await;
    let health = |cl: &Cluster| {
        let url = cl.grpc_url();
        async move {
            let ch = wagate_proto::connect(url).await.unwrap();
            HealthClient::new(ch)
                .check(HealthCheckRequest { service: String::new() })
                .await
                .unwrap()
                .into_inner()
                .status()
        }
    };
    assert_eq!(health(&cl).await, ServingStatus::Serving);

    let stop = tokio_util::sync::CancellationToken::new();
    let mut senders = Vec::new();
    for (id, key) in all.clone() {
        for _ in 0..3 {
            let api = api.clone();
            let (id, key, stop) = (id.clone(), key.clone(), stop.clone());
            senders.push(tokio::spawn(async move {
                let mut seen: Vec<(u16, Option<String>, Value)> = Vec::new();
                while !stop.is_cancelled() {
                    let r = api.send_text(&id, &key, "under outage").await;
                    let mid = r.data()["messageId"].as_str().map(str::to_owned);
                    seen.push((r.status.as_u16(), mid, r.body.clone()));
                    if !r.status.is_success() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                seen
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let proxy = cl.db_proxy().unwrap();
    proxy.cut();
    wait_for("health NOT_SERVING", Duration::from_secs(10), || async {
        (health(&cl).await == ServingStatus::NotServing).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore();
    wait_for("health SERVING again", Duration::from_secs(15), || async {
        (health(&cl).await == ServingStatus::Serving).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.cancel();
    let mut accepted = Vec::new();
    let mut by_status = std::collections::BTreeMap::new();
    for s in senders {
        for (status, mid, body) in s.await.unwrap() {
            *by_status.entry(status).or_insert(0) += 1;
            assert!(matches!(status, 200 | 503 | 504), "status {status}: {body}");
            if status == 503 {
                assert!(body["code"].is_string(), "{body}");
            }
            if status == 200 {
                accepted.push(mid.unwrap());
            }
        }
    }
    eprintln!("database outage: responses by status {by_status:?}");
    assert!(by_status.get(&503).copied().unwrap_or(0) > 0, "the outage was seen: {by_status:?}");
    let rows: HashSet<String> = message::Entity::find()
        .all(&cl.cp().state().db.conn)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    for m in &accepted {
        assert!(rows.contains(m), "accepted send {m} is missing from the database");
    }
    // and it works again
    let (id, key) = &all[0];
    api.send_text(id, key, "after").await.expect(200);
    cl.shutdown().await;
}
