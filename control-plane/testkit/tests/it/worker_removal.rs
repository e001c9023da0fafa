//! Removing a worker (`DELETE /admin/workers/{workerId}`) moves its
//! sessions: it is drained first (CONNECTED elsewhere without a QR while a
//! worker has capacity, else waiting for one), then deleted, and its
//! `wkt_…` token stops working — with its stream on one replica and the
//! call on another, on SQLite and on PostgreSQL + Redis.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{Api, cluster, start, wait_for};
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;
use wagate_control_plane::persistence::entities::{session, worker};
use wagate_control_plane::persistence::enums::SessionStatus;
use wagate_proto::v1::{self, worker_message, worker_service_client::WorkerServiceClient};
use wagate_testkit::cluster::{Cluster, Storage};
use wagate_worker_sdk::simulated::SimulatedDriver;
use wagate_worker_sdk::{Worker, WorkerHandle};

const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "fleet-keeper-77";

async fn sessions(cl: &Cluster) -> Vec<session::Model> {
    session::Entity::find().all(&cl.cp().state().db.conn).await.unwrap()
}

/// Pre-registers `id` through the edge and starts it on `replica` with its
/// own `wkt_…` token.
async fn registered_worker(
    cl: &Cluster,
    api: &Api,
    admin: &str,
    id: &str,
    max_sessions: u32,
    replica: usize,
) -> (WorkerHandle, Arc<SimulatedDriver>, String) {
    let r = api
        .post("/api/v1/admin/workers", Some(admin), json!({ "workerId": id, "maxSessions": max_sessions }))
        .await;
    r.expect(201);
    let token = r.data()["token"].as_str().expect("token").to_owned();
    let mut config = cl.worker_config(id, max_sessions);
    config.control_plane_url = cl.cp_at(replica).url();
    config.token = token.clone();
    let driver = SimulatedDriver::new(Default::default());
    let handle = Worker::spawn(config, driver.clone());
    assert!(handle.wait_connected(Duration::from_secs(10)).await, "{id} connects");
    (handle, driver, token)
}

/// Opens a raw stream with `token` and a Hello for `id`: the status it is refused with, if any.
async fn hello_with(url: String, token: &str, id: &str) -> Result<(), tonic::Code> {
    let channel = wagate_proto::connect(url).await.unwrap();
    let mut client = WorkerServiceClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(v1::WorkerMessage {
        kind: Some(worker_message::Kind::Hello(v1::Hello {
            worker_id: id.into(),
            endpoint: format!("raw://{id}"),
            max_sessions: 3,
            version: "test".into(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let outcome = client.connect(req).await.map(|_| ()).map_err(|s| s.code());
    drop(tx);
    outcome
}

async fn remove_worker_moves_its_sessions(storage: Storage) {
    let cl = start(cluster(storage).replicas(2).edge_on(1).configure(|c| {
        c.admin_email = Some(ADMIN_EMAIL.into());
        c.admin_password = Some(ADMIN_PASSWORD.into());
        // only per-worker tokens: a removed worker cannot come back
        c.allow_shared_worker_token = false;
    }))
    .await;
    let api = Api::new(&cl); // → replica 1
    let r = api
        .post("/api/v1/auth/login", None, json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .await;
    r.expect(200);
    let admin = r.data()["token"].as_str().unwrap().to_owned();

    // three paired sessions on w-old, whose stream is on replica 0
    let (old, old_driver, old_token) = registered_worker(&cl, &api, &admin, "w-old", 5, 0).await;
    let email = "owner@example.com";
    let user = api.register(email).await;
    let db = &cl.cp().state().db;
    db.conn
        .execute_raw(db.stmt("UPDATE users SET tier = 'MAX' WHERE email = $1", vec![email.into()]))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let (id, _) = api.create_session(&user, &format!("s{i}")).await;
        wait_for("on w-old", Duration::from_secs(5), || async {
            old_driver.session_status(&id).is_some().then_some(())
        })
        .await;
        assert!(old_driver.scan(&id));
        ids.push(id);
    }
    wait_for("all CONNECTED", Duration::from_secs(10), || async {
        (sessions(&cl).await.iter().filter(|s| s.status == SessionStatus::Connected).count() == 3)
            .then_some(())
    })
    .await;
    // room for two of them elsewhere (stream on replica 1)
    let (new, new_driver, _) = registered_worker(&cl, &api, &admin, "w-new", 2, 1).await;

    // remove w-old through replica 1
    let r = api.delete("/api/v1/admin/workers/w-old", Some(&admin)).await;
    r.expect(200);
    assert_eq!(r.data()["deleted"], true, "{}", r.body);
    assert_eq!(r.data()["sessionsMoved"], 2, "{}", r.body);
    assert_eq!(r.data()["sessionsWaiting"], 1, "{}", r.body);
    assert_eq!(r.data()["sessionsDetached"], 0, "{}", r.body);

    // two CONNECTED on w-new without a QR, one waiting for capacity
    wait_for("two CONNECTED on w-new", Duration::from_secs(10), || async {
        let moved = sessions(&cl)
            .await
            .into_iter()
            .filter(|s| s.worker_id.as_deref() == Some("w-new") && s.status == SessionStatus::Connected)
            .count();
        (moved == 2).then_some(())
    })
    .await;
    let all = sessions(&cl).await;
    for s in all.iter().filter(|s| s.worker_id.is_some()) {
        assert!(new_driver.qr_code(&s.id).is_none(), "{} resumed without a QR", s.id);
    }
    let waiting: Vec<_> = all.iter().filter(|s| s.worker_id.is_none()).collect();
    assert_eq!(waiting.len(), 1, "{all:?}");
    assert_eq!(waiting[0].status, SessionStatus::Init);
    assert!(waiting[0].status_reason.as_deref().unwrap_or_default().contains("free capacity"), "{all:?}");
    assert_eq!(old_driver.session_count(), 0, "stopped on the removed worker");

    // gone: no row, no stream on any replica, and its token opens none
    assert!(
        worker::Entity::find_by_id("w-old".to_owned()).one(&cl.cp().state().db.conn).await.unwrap().is_none()
    );
    wait_for("w-old's stream ended", Duration::from_secs(5), || async {
        (cl.cp_at(0).state().registry.get("w-old").is_none()
            && cl.cp_at(1).state().registry.get("w-old").is_none())
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(cl.cp_at(0).state().registry.get("w-old").is_none(), "w-old did not come back");
    assert!(cl.cp_at(1).state().registry.get("w-old").is_none(), "w-old did not come back");
    for replica in 0..2 {
        assert_eq!(
            hello_with(cl.cp_at(replica).url(), &old_token, "w-old").await,
            Err(tonic::Code::Unauthenticated),
            "replica {replica}"
        );
    }
    api.get("/api/v1/admin/workers/w-old", Some(&admin)).await.expect_code(404, "NOT_FOUND");

    // capacity appears: the waiting session is placed and resumes without a QR
    let (more, more_driver, _) = registered_worker(&cl, &api, &admin, "w-more", 2, 0).await;
    let id = waiting[0].id.clone();
    wait_for("the waiting session CONNECTED on w-more", Duration::from_secs(15), || async {
        sessions(&cl).await.into_iter().find(|s| {
            s.id == id && s.status == SessionStatus::Connected && s.worker_id.as_deref() == Some("w-more")
        })
    })
    .await;
    assert!(more_driver.qr_code(&id).is_none());

    for handle in [old, new, more] {
        handle.shutdown().await;
    }
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_worker_moves_its_sessions_sqlite() {
    remove_worker_moves_its_sessions(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_worker_moves_its_sessions_postgres() {
    remove_worker_moves_its_sessions(Storage::PostgresRedis).await;
}
