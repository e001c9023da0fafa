//! Worker streams against the real control plane: health, auth, handshake,
//! loss detection (closed stream and frozen worker), fencing on reconnect.

use std::time::{Duration, Instant};

use crate::common::{Api, cluster, start, wait_for};
use sea_orm::EntityTrait;
use tokio_stream::wrappers::ReceiverStream;
use wagate_control_plane::persistence::entities::worker;
use wagate_control_plane::persistence::enums::WorkerStatus;
use wagate_proto::v1::{self, worker_message, worker_service_client::WorkerServiceClient};
use wagate_testkit::cluster::{Storage, WorkerSpec};

async fn status_of(cl: &wagate_testkit::cluster::Cluster, id: &str) -> Option<WorkerStatus> {
    worker::Entity::find_by_id(id.to_owned()).one(&cl.cp().state().db.conn).await.unwrap().map(|w| w.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_answers_serving() {
    let cl = start(
        cluster(Storage::Sqlite)
            .without_edge()
            .configure(|c| c.metrics_listen = Some(([127, 0, 0, 1], 0).into()))
            .workers(1, 3),
    )
    .await;
    let metrics = cl.cp().metrics_addr().expect("metrics listener");
    let text = reqwest::get(format!("http://{metrics}/metrics")).await.unwrap().text().await.unwrap();
    assert!(text.contains("# TYPE wagate_cp_worker_streams_opened_total counter"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("wagate_cp_connected_workers ")), "{text}");
    assert!(text.contains("wagate_fleet_recommended_workers"), "{text}");
    let channel = wagate_proto::connect(cl.grpc_url()).await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "wagate.v1.SessionService", "wagate.v1.WorkerService"] {
        let r = health.check(tonic_health::pb::HealthCheckRequest { service: service.into() }).await.unwrap();
        assert_eq!(
            r.into_inner().status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service}"
        );
    }
    let unknown =
        health.check(tonic_health::pb::HealthCheckRequest { service: "nope".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    cl.shutdown().await;
}

async fn closed_stream_marks_offline(storage: Storage) {
    let mut cl = start(cluster(storage).without_edge().workers(2, 5)).await;
    assert_eq!(status_of(&cl, "worker-1").await, Some(WorkerStatus::Online));
    // crash: the stream drops without Goodbye
    let handle = cl.workers[0].handle.take().unwrap();
    let t0 = Instant::now();
    handle.kill().await;
    wait_for("worker-1 OFFLINE", Duration::from_secs(2), || async {
        (status_of(&cl, "worker-1").await == Some(WorkerStatus::Offline)).then_some(())
    })
    .await;
    let detect = t0.elapsed();
    assert_eq!(status_of(&cl, "worker-2").await, Some(WorkerStatus::Online));
    assert!(cl.cp().state().registry.get("worker-1").is_none());
    // graceful leave: Goodbye, also OFFLINE
    let handle = cl.workers[1].handle.take().unwrap();
    handle.shutdown().await;
    wait_for("worker-2 OFFLINE", Duration::from_secs(2), || async {
        (status_of(&cl, "worker-2").await == Some(WorkerStatus::Offline)).then_some(())
    })
    .await;
    // comes back: ONLINE again
    cl.add_worker(WorkerSpec::new("worker-1", 5)).await.unwrap();
    assert_eq!(status_of(&cl, "worker-1").await, Some(WorkerStatus::Online));
    eprintln!("closed stream detected OFFLINE in {detect:?}");
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_stream_marks_worker_offline_within_2s_sqlite() {
    closed_stream_marks_offline(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_stream_marks_worker_offline_within_2s_postgres() {
    closed_stream_marks_offline(Storage::PostgresRedis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_worker_is_caught_by_missed_heartbeats() {
    let cl = start(
        cluster(Storage::Sqlite)
            .without_edge()
            .configure(|c| {
                c.heartbeat_interval = Duration::from_millis(200);
                c.heartbeat_tolerance = 3;
            })
            .workers(1, 5),
    )
    .await;
    let handle = cl.workers[0].handle.as_ref().unwrap();
    // stays ONLINE while heartbeats flow
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(status_of(&cl, "worker-1").await, Some(WorkerStatus::Online));
    let t0 = Instant::now();
    handle.pause_heartbeats(true);
    wait_for("frozen worker OFFLINE", Duration::from_secs(3), || async {
        (status_of(&cl, "worker-1").await == Some(WorkerStatus::Offline)).then_some(())
    })
    .await;
    let detect = t0.elapsed();
    assert!(detect >= Duration::from_millis(500), "not before the tolerance: {detect:?}");
    eprintln!("frozen worker detected in {detect:?}");
    cl.shutdown().await;
}

type Outbound = tokio::sync::mpsc::Sender<v1::WorkerMessage>;

async fn raw_stream(
    url: String,
    token: &str,
) -> (Outbound, Result<tonic::Response<tonic::Streaming<v1::ControlMessage>>, tonic::Status>) {
    let channel = wagate_proto::connect(url).await.unwrap();
    let mut client = WorkerServiceClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let hello_tx = tx.clone();
    let pending = tokio::spawn(async move { client.connect(req).await });
    (hello_tx, pending.await.unwrap())
}

fn hello(id: &str, sessions: Vec<v1::HeldSession>) -> v1::WorkerMessage {
    v1::WorkerMessage {
        kind: Some(worker_message::Kind::Hello(v1::Hello {
            worker_id: id.into(),
            endpoint: format!("raw://{id}"),
            max_sessions: 3,
            version: "test".into(),
            sessions,
            labels: Default::default(),
            ..Default::default()
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_rules_token_hello_and_fencing() {
    let cl = start(
        cluster(Storage::Sqlite).configure(|c| c.hello_timeout = Duration::from_millis(300)).workers(1, 5),
    )
    .await;
    let token = cl.cp().state().config.worker_auth_token.clone();

    // wrong token
    let (_tx, res) = raw_stream(cl.grpc_url(), "wrong").await;
    assert_eq!(res.unwrap_err().code(), tonic::Code::Unauthenticated);

    // first message is not Hello
    let (tx, res) = {
        let channel = wagate_proto::connect(cl.grpc_url()).await.unwrap();
        let mut client = WorkerServiceClient::new(channel);
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tx.send(v1::WorkerMessage { kind: Some(worker_message::Kind::Heartbeat(v1::Heartbeat::default())) })
            .await
            .unwrap();
        let mut req = tonic::Request::new(ReceiverStream::new(rx));
        req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        (tx, client.connect(req).await)
    };
    assert_eq!(res.unwrap_err().code(), tonic::Code::InvalidArgument);
    drop(tx);

    // no Hello at all: refused after the hello timeout, not left hanging
    let (tx, res) = raw_stream(cl.grpc_url(), &token).await;
    assert_eq!(res.unwrap_err().code(), tonic::Code::DeadlineExceeded);
    drop(tx);

    // fencing: a worker that comes back holding a session it no longer owns is told to stop it
    let api = Api::new(&cl);
    let user = api.register("fence@example.com").await;
    let (sid, _) = api.create_session(&user, "fenced").await;
    let channel = wagate_proto::connect(cl.grpc_url()).await.unwrap();
    let mut client = WorkerServiceClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(hello(
        "intruder",
        vec![
            v1::HeldSession {
                session_id: sid.clone(),
                generation: 1,
                status: v1::SessionStatus::Connected as i32,
            },
            v1::HeldSession {
                session_id: "ghost".into(),
                generation: 7,
                status: v1::SessionStatus::Connected as i32,
            },
        ],
    ))
    .await
    .unwrap();
    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let mut inbound = client.connect(req).await.unwrap().into_inner();
    let welcome = match inbound.message().await.unwrap().and_then(|m| m.kind) {
        Some(v1::control_message::Kind::Welcome(w)) => w,
        other => panic!("expected Welcome, got {other:?}"),
    };
    let mut stop = welcome.stop_sessions.clone();
    stop.sort();
    let mut expected = vec![sid.clone(), "ghost".to_owned()];
    expected.sort();
    assert_eq!(stop, expected);
    assert!(welcome.heartbeat_interval_ms > 0);
    drop(tx);
    cl.shutdown().await;
}

/// Goodbye takes the worker out of placement until its next Hello: the
/// heartbeats it still sends do not make it ONLINE again; a new Hello does,
/// with a higher stream epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goodbye_keeps_the_worker_out_until_its_next_hello() {
    let cl = start(cluster(Storage::Sqlite)).await;
    let token = cl.cp().state().config.worker_auth_token.clone();
    let connect = || async {
        let channel = wagate_proto::connect(cl.grpc_url()).await.unwrap();
        let mut client = WorkerServiceClient::new(channel);
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tx.send(hello("leaver", vec![])).await.unwrap();
        let mut req = tonic::Request::new(ReceiverStream::new(rx));
        req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        let mut inbound = client.connect(req).await.unwrap().into_inner();
        let welcome = match inbound.message().await.unwrap().and_then(|m| m.kind) {
            Some(v1::control_message::Kind::Welcome(w)) => w,
            other => panic!("expected Welcome, got {other:?}"),
        };
        (tx, inbound, welcome.connection_generation)
    };
    let (tx, _inbound, epoch1) = connect().await;
    assert_eq!(status_of(&cl, "leaver").await, Some(WorkerStatus::Online));
    tx.send(v1::WorkerMessage {
        kind: Some(worker_message::Kind::Goodbye(v1::Goodbye { reason: "test".into() })),
    })
    .await
    .unwrap();
    wait_for("OFFLINE after Goodbye", Duration::from_secs(2), || async {
        (status_of(&cl, "leaver").await == Some(WorkerStatus::Offline)).then_some(())
    })
    .await;
    for _ in 0..5 {
        tx.send(v1::WorkerMessage { kind: Some(worker_message::Kind::Heartbeat(v1::Heartbeat::default())) })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status_of(&cl, "leaver").await,
        Some(WorkerStatus::Offline),
        "heartbeats do not bring it back"
    );
    drop(tx);
    let (_tx2, _inbound2, epoch2) = connect().await;
    assert!(epoch2 > epoch1, "Hello bumps the stream epoch: {epoch1} → {epoch2}");
    assert_eq!(status_of(&cl, "leaver").await, Some(WorkerStatus::Online));
    cl.shutdown().await;
}
