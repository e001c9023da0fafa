//! Fleet orchestration against real SDK workers (simulated driver) and the
//! real control plane: failover without re-pairing, no lost or duplicated
//! sends, split brain, drain, rebalance, waiting for capacity, auth-state
//! custody at rest.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::common::{Api, cluster, start, wait_for};
use sea_orm::{ConnectionTrait, EntityTrait, Statement};
use serde_json::json;
use wagate_control_plane::fleet;
use wagate_control_plane::persistence::entities::{session, worker};
use wagate_control_plane::persistence::enums::{MessageStatus, SessionStatus, WorkerStatus};
use wagate_testkit::cluster::{Cluster, Storage, WorkerSpec};

/// Creates `n` sessions (MAX-tier users, 20 each) and pairs them all.
/// Returns (session id → api key).
async fn paired_sessions(cl: &Cluster, api: &Api, n: usize) -> Vec<(String, String)> {
    let db = &cl.cp().state().db;
    let mut out = Vec::new();
    let mut user = 0;
    while out.len() < n {
        let email = format!("fleet{user}@example.com");
        let token = api.register(&email).await;
        db.conn
            .execute_raw(db.stmt("UPDATE users SET tier = 'MAX' WHERE email = $1", vec![email.into()]))
            .await
            .unwrap();
        for i in 0..20.min(n - out.len()) {
            out.push(api.create_session(&token, &format!("s{user}-{i}")).await);
        }
        user += 1;
    }
    for (id, _) in &out {
        let driver =
            wait_for("session on a worker", Duration::from_secs(5), || async { cl.driver_of(id).cloned() })
                .await;
        assert!(driver.scan(id));
    }
    wait_for("all CONNECTED", Duration::from_secs(10), || async { (connected(cl).await == n).then_some(()) })
        .await;
    out
}

async fn connected(cl: &Cluster) -> usize {
    let db = &cl.cp().state().db.conn;
    session::Entity::find()
        .all(db)
        .await
        .unwrap()
        .iter()
        .filter(|s| s.status == SessionStatus::Connected)
        .count()
}

async fn sessions(cl: &Cluster) -> Vec<session::Model> {
    session::Entity::find().all(&cl.cp().state().db.conn).await.unwrap()
}

async fn worker_status(cl: &Cluster, id: &str) -> WorkerStatus {
    worker::Entity::find_by_id(id.to_owned()).one(&cl.cp().state().db.conn).await.unwrap().unwrap().status
}

/// Every accepted message id reached exactly one driver, once.
fn assert_exactly_once(cl: &Cluster, accepted: &HashMap<String, String>) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for w in &cl.workers {
        for sid in accepted.values().collect::<HashSet<_>>() {
            for id in w.driver.sent_message_ids(sid) {
                *seen.entry(id).or_default() += 1;
            }
        }
    }
    let lost: Vec<_> = accepted.keys().filter(|id| !seen.contains_key(*id)).collect();
    let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(lost.is_empty(), "lost messages: {lost:?}");
    assert!(dup.is_empty(), "duplicated at the drivers: {dup:?}");
}

async fn kill_one_of_three(storage: Storage, n: usize) {
    let cl = start(cluster(storage).workers(3, (n as u32).div_ceil(2) + 2)).await;
    let api = Api::new(&cl);
    let paired = paired_sessions(&cl, &api, n).await;
    let mut accepted: HashMap<String, String> = HashMap::new(); // message id → session id
    for (sid, key) in &paired {
        let r = api.send_text(sid, key, "before").await;
        r.expect(200);
        accepted.insert(r.data()["messageId"].as_str().unwrap().to_owned(), sid.clone());
    }
    let before: HashMap<String, (String, Option<String>)> = sessions(&cl)
        .await
        .into_iter()
        .map(|s| (s.id.clone(), (s.worker_id.clone().unwrap(), s.phone_number)))
        .collect();
    let victim = "worker-1";
    let victims: Vec<String> =
        before.iter().filter(|(_, (w, _))| w == victim).map(|(s, _)| s.clone()).collect();
    assert!(!victims.is_empty());

    // crash worker-1, and keep sending to every session while it fails over
    let mut cl = cl;
    let handle = cl.workers[0].handle.take().unwrap();
    let t0 = Instant::now();
    handle.kill().await;
    let sends = paired.iter().map(|(sid, key)| {
        let api = api.clone();
        let (sid, key) = (sid.clone(), key.clone());
        async move { (sid.clone(), api.send_text(&sid, &key, "during failover").await) }
    });
    for (sid, r) in futures::future::join_all(sends).await {
        match r.status.as_u16() {
            200 => {
                accepted.insert(r.data()["messageId"].as_str().unwrap().to_owned(), sid);
            }
            // refused before it was written or dispatched: the client retries
            409 | 503 => {}
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    wait_for("worker-1 OFFLINE", Duration::from_secs(5), || async {
        (worker_status(&cl, victim).await == WorkerStatus::Offline).then_some(())
    })
    .await;
    let detected = t0.elapsed();
    wait_for("all sessions CONNECTED elsewhere", Duration::from_secs(10), || async {
        let all = sessions(&cl).await;
        all.iter()
            .all(|s| {
                s.status == SessionStatus::Connected && s.worker_id.as_deref().is_some_and(|w| w != victim)
            })
            .then_some(())
    })
    .await;
    let failed_over = t0.elapsed();

    // no QR rescan: same phone, resumed from the snapshot, new generation
    for s in sessions(&cl).await {
        let (_, phone) = &before[&s.id];
        assert_eq!(&s.phone_number, phone, "{}", s.id);
        if victims.contains(&s.id) {
            assert_eq!(s.generation, 2, "{}", s.id);
            let driver = cl.driver_of_live(&s.id).expect("a live worker runs it");
            assert!(driver.qr_code(&s.id).is_none(), "no QR for a resumed session");
        }
    }
    // every accepted send settles SENT or later, exactly once at the drivers
    let db = &cl.cp().state().db.conn;
    wait_for("every accepted send SENT or later", Duration::from_secs(10), || async {
        let rows =
            wagate_control_plane::persistence::entities::message::Entity::find().all(db).await.unwrap();
        accepted
            .keys()
            .all(|id| {
                rows.iter().any(|m| {
                    &m.id == id && !matches!(m.status, MessageStatus::Pending | MessageStatus::Failed)
                })
            })
            .then_some(())
    })
    .await;
    assert_exactly_once(&cl, &accepted);
    eprintln!(
        "failover {storage:?}: {n} sessions ({} on the lost worker): OFFLINE after {detected:?}, all CONNECTED after {failed_over:?}, {} sends accepted",
        victims.len(),
        accepted.len()
    );
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_one_of_three_workers_with_30_sessions_sqlite() {
    kill_one_of_three(Storage::Sqlite, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_one_of_three_workers_with_30_sessions_postgres() {
    kill_one_of_three(Storage::PostgresRedis, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_worker_split_brain_ends_holding_nothing() {
    let cl = start(
        cluster(Storage::Sqlite)
            .configure(|c| {
                c.heartbeat_interval = Duration::from_millis(200);
                c.heartbeat_tolerance = 3;
            })
            .workers(3, 10),
    )
    .await;
    let api = Api::new(&cl);
    paired_sessions(&cl, &api, 9).await;
    let frozen = &cl.workers[0];
    let held: Vec<String> = frozen.driver.session_ids();
    assert_eq!(held.len(), 3);
    // freeze: TCP stays up, nothing is said
    frozen.handle.as_ref().unwrap().pause_heartbeats(true);
    wait_for("frozen worker OFFLINE", Duration::from_secs(5), || async {
        (worker_status(&cl, "worker-1").await == WorkerStatus::Offline).then_some(())
    })
    .await;
    wait_for("its sessions CONNECTED elsewhere", Duration::from_secs(10), || async {
        let all = sessions(&cl).await;
        held.iter()
            .all(|id| {
                all.iter().any(|s| {
                    &s.id == id
                        && s.status == SessionStatus::Connected
                        && s.worker_id.as_deref() != Some("worker-1")
                })
            })
            .then_some(())
    })
    .await;
    // it thaws and reconnects still holding generation 1 of each: told to stop them
    frozen.handle.as_ref().unwrap().pause_heartbeats(false);
    wait_for("thawed worker holds nothing", Duration::from_secs(10), || async {
        frozen.driver.session_ids().is_empty().then_some(())
    })
    .await;
    wait_for("thawed worker ONLINE again", Duration::from_secs(5), || async {
        (worker_status(&cl, "worker-1").await == WorkerStatus::Online).then_some(())
    })
    .await;
    // the moved sessions stay where they are, on the new generation
    for s in sessions(&cl).await.iter().filter(|s| held.contains(&s.id)) {
        assert_eq!(s.status, SessionStatus::Connected);
        assert_ne!(s.worker_id.as_deref(), Some("worker-1"));
        assert_eq!(s.generation, 2);
    }
    cl.shutdown().await;
}

async fn drain_and_rebalance(storage: Storage) {
    // 20 sessions on one worker, then two empty ones join
    let mut cl = start(cluster(storage).workers(1, 30)).await;
    let api = Api::new(&cl);
    paired_sessions(&cl, &api, 20).await;
    cl.add_worker(WorkerSpec::new("worker-2", 30)).await.unwrap();
    cl.add_worker(WorkerSpec::new("worker-3", 30)).await.unwrap();
    let state = cl.cp().state().clone();
    let report = fleet::rebalance::rebalance(&state, 50).await.unwrap();
    assert_eq!(report.moves.len(), 13, "{report:?}");
    let mut counts: Vec<usize> = cl.workers.iter().map(|w| w.driver.session_count()).collect();
    counts.sort();
    assert_eq!(counts, vec![6, 7, 7], "live copies per worker");
    let mut db_counts: Vec<i32> =
        worker::Entity::find().all(&state.db.conn).await.unwrap().iter().map(|w| w.session_count).collect();
    db_counts.sort();
    assert_eq!(db_counts, vec![6, 7, 7]);
    // liveness, not speed: the whole suite shares two cores in CI
    wait_for("all CONNECTED", Duration::from_secs(20), || async {
        (connected(&cl).await == 20).then_some(())
    })
    .await;

    // drain worker-2: everything moves, nothing is left, it takes no new sessions
    let report = fleet::drain::drain(&state, "worker-2").await.unwrap();
    assert_eq!(report.moved, report.total);
    assert_eq!(report.remaining, 0);
    assert_eq!(worker_status(&cl, "worker-2").await, WorkerStatus::Maintenance);
    assert_eq!(cl.worker("worker-2").unwrap().driver.session_count(), 0, "stopped on the drained worker");
    wait_for("all CONNECTED after drain", Duration::from_secs(20), || async {
        (connected(&cl).await == 20).then_some(())
    })
    .await;
    for s in sessions(&cl).await {
        assert_ne!(s.worker_id.as_deref(), Some("worker-2"));
        assert!(cl.driver_of_live(&s.id).unwrap().qr_code(&s.id).is_none());
    }
    let token = api.register("after-drain@example.com").await;
    let r = api.post("/api/v1/sessions", Some(&token), json!({ "name": "new" })).await;
    r.expect(201);
    assert_ne!(r.data()["workerId"], "worker-2");
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_evens_out_and_drain_empties_sqlite() {
    drain_and_rebalance(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_evens_out_and_drain_empties_postgres() {
    drain_and_rebalance(Storage::PostgresRedis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_wait_for_capacity_and_are_placed_when_it_appears() {
    let mut cl = start(cluster(Storage::Sqlite).workers(2, 1)).await;
    let api = Api::new(&cl);
    paired_sessions(&cl, &api, 2).await;
    let state = cl.cp().state().clone();
    let lost = cl.workers[0].handle.take().unwrap();
    let lost_sessions = cl.workers[0].driver.session_ids();
    lost.kill().await;
    let waiting = wait_for("session waits", Duration::from_secs(5), || async {
        sessions(&cl).await.into_iter().find(|s| s.worker_id.is_none())
    })
    .await;
    assert_eq!(vec![waiting.id.clone()], lost_sessions);
    assert_eq!(waiting.status, SessionStatus::Init);
    assert!(waiting.status_reason.as_deref().unwrap_or_default().contains("free capacity"), "{waiting:?}");
    let fleet = fleet::capacity::status(&state).await.unwrap();
    assert_eq!((fleet.total_slots, fleet.used_slots, fleet.waiting_sessions), (1, 1, 1));
    assert_eq!(fleet.recommended_workers, 3, "2 sessions at 70% of 1 slot per worker");
    // capacity appears: placed and resumed without a QR
    cl.add_worker(WorkerSpec::new("worker-3", 1)).await.unwrap();
    wait_for("placed on the new worker and CONNECTED", Duration::from_secs(5), || async {
        sessions(&cl).await.into_iter().find(|s| {
            s.id == waiting.id
                && s.status == SessionStatus::Connected
                && s.worker_id.as_deref() == Some("worker-3")
        })
    })
    .await;
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_state_is_encrypted_at_rest() {
    let cl = start(cluster(Storage::PostgresRedis).workers(1, 5)).await;
    let api = Api::new(&cl);
    let (sid, _) = paired_sessions(&cl, &api, 1).await.remove(0);
    let state = cl.cp().state().clone();
    let phone = sessions(&cl).await[0].phone_number.clone().unwrap();
    let row = wait_for("snapshot stored", Duration::from_secs(5), || async {
        state
            .db
            .conn
            .query_one_raw(Statement::from_sql_and_values(
                state.db.backend(),
                "SELECT key_id, nonce, ciphertext FROM session_auth_states WHERE session_id = $1",
                [sid.clone().into()],
            ))
            .await
            .unwrap()
    })
    .await;
    let ct: Vec<u8> = row.try_get("", "ciphertext").unwrap();
    let key_id: String = row.try_get("", "key_id").unwrap();
    assert_eq!(key_id, "k1");
    assert!(!ct.windows(phone.len()).any(|w| w == phone.as_bytes()), "phone number visible in the raw row");
    assert!(!ct.windows(8).any(|w| w == b"wagate-s"), "snapshot marker visible in the raw row");
    let plain =
        wagate_control_plane::stream::custody::load(&state.db, &state.vault, &sid).await.unwrap().unwrap();
    assert!(plain.windows(phone.len()).any(|w| w == phone.as_bytes()), "decrypts to the worker's snapshot");
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_one_of_three_workers_with_300_sessions_postgres() {
    kill_one_of_three(Storage::PostgresRedis, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_grpc_is_admin_only_and_drains() {
    use wagate_proto::v1::fleet_service_client::FleetServiceClient;
    let cl = start(cluster(Storage::Sqlite).workers(2, 4)).await;
    let api = Api::new(&cl);
    paired_sessions(&cl, &api, 2).await;
    let state = cl.cp().state().clone();
    wagate_control_plane::bootstrap::ensure_admin(&state, "root@example.com", "admin-password-1")
        .await
        .unwrap();
    let login = |email: &'static str, password: &'static str| {
        let api = api.clone();
        async move {
            let r =
                api.post("/api/v1/auth/login", None, json!({ "email": email, "password": password })).await;
            r.expect(200);
            r.data()["token"].as_str().unwrap().to_owned()
        }
    };
    let admin = login("root@example.com", "admin-password-1").await;
    let user = login("fleet0@example.com", "correct-horse-9").await;
    let channel = wagate_proto::connect(cl.grpc_url()).await.unwrap();
    let mut client = FleetServiceClient::new(channel);
    let denied = client.get_fleet(with(&user, wagate_proto::v1::GetFleetRequest {})).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let denied = client
        .drain_worker(with(&user, wagate_proto::v1::DrainWorkerRequest { worker_id: "worker-1".into() }))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    assert_eq!(
        client.get_fleet(tonic::Request::new(wagate_proto::v1::GetFleetRequest {})).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    let fleet =
        client.get_fleet(with(&admin, wagate_proto::v1::GetFleetRequest {})).await.unwrap().into_inner();
    assert_eq!(
        (fleet.online_workers, fleet.total_slots, fleet.used_slots, fleet.waiting_sessions),
        (2, 8, 2, 0)
    );
    let missing = client
        .drain_worker(with(&admin, wagate_proto::v1::DrainWorkerRequest { worker_id: "nope".into() }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let report = client
        .drain_worker(with(&admin, wagate_proto::v1::DrainWorkerRequest { worker_id: "worker-1".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((report.total, report.moved, report.remaining), (1, 1, 0));
    let fleet =
        client.get_fleet(with(&admin, wagate_proto::v1::GetFleetRequest {})).await.unwrap().into_inner();
    assert_eq!(
        (fleet.online_workers, fleet.used_slots),
        (1, 2),
        "worker-1 in MAINTENANCE is out of capacity"
    );

    // the same over REST
    api.get("/api/v1/admin/fleet", Some(&user)).await.expect_code(403, "FORBIDDEN");
    let r = api.get("/api/admin/fleet", Some(&admin)).await;
    r.expect(200);
    assert_eq!(r.data()["onlineWorkers"], 1);
    assert_eq!(r.data()["usedSlots"], 2);
    assert!(r.data()["recommendedWorkers"].as_i64().unwrap() >= 1);
    api.post("/api/v1/admin/workers/worker-2/drain", Some(&user), json!({}))
        .await
        .expect_code(403, "FORBIDDEN");
    api.post("/api/v1/admin/workers/nope/drain", Some(&admin), json!({})).await.expect(404);
    api.post("/api/v1/admin/rebalance?maxMoves=abc", Some(&admin), json!({}))
        .await
        .expect_code(400, "VALIDATION_ERROR");
    let r = api.post("/api/v1/admin/rebalance?maxMoves=3", Some(&admin), json!({})).await;
    r.expect(200);
    assert!(r.data()["moves"].as_array().unwrap().is_empty(), "one ONLINE worker: nothing to even out");
    let r = api.post("/api/v1/admin/workers/worker-2/drain", Some(&admin), json!({})).await;
    r.expect(200);
    assert_eq!(r.data()["workerId"], "worker-2");
    assert_eq!(r.data()["waiting"], 2, "no capacity left: both sessions wait");
    let r = api.get("/api/v1/admin/fleet", Some(&admin)).await;
    assert_eq!(r.data()["waitingSessions"], 2);
    cl.shutdown().await;
}

fn with<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_worker_shutdown_moves_its_sessions_after_stopping_them() {
    let mut cl = start(cluster(Storage::Sqlite).workers(2, 10)).await;
    let api = Api::new(&cl);
    paired_sessions(&cl, &api, 6).await;
    let leaving = cl.workers[0].driver.clone();
    let held = leaving.session_ids();
    assert_eq!(held.len(), 3);
    let handle = cl.workers[0].handle.take().unwrap();
    handle.shutdown().await;
    assert!(leaving.session_ids().is_empty(), "stopped before the worker exits");
    wait_for("its sessions CONNECTED on worker-2", Duration::from_secs(10), || async {
        let all = sessions(&cl).await;
        all.iter()
            .filter(|s| held.contains(&s.id))
            .all(|s| s.status == SessionStatus::Connected && s.worker_id.as_deref() == Some("worker-2"))
            .then_some(())
    })
    .await;
    assert_eq!(worker_status(&cl, "worker-1").await, WorkerStatus::Offline);
    cl.shutdown().await;
}
