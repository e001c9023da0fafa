//! What operators and stock gRPC tools see: Prometheus metrics with latency
//! histograms on each service's `/metrics`, gRPC health tied to the
//! database, server reflection v1 and v1alpha, and the stream protocol
//! version negotiated in the handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::{Api, cluster, sample_sum, scrape, start, wait_for};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::health_check_response::ServingStatus;
use wagate_proto::v1::{self, worker_message, worker_service_client::WorkerServiceClient};
use wagate_testkit::cluster::Storage;

/// Each service's `/metrics` has latency histograms (with buckets) by route
/// or method, and the samples of what this test did grew. The recorder is the
/// process's (shared with every other test of this binary): the series are
/// compared with a scrape taken before, not just looked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_have_latency_histograms_by_route_and_method() {
    let cl = start(
        cluster(Storage::Sqlite)
            .configure(|c| c.metrics_listen = Some(([127, 0, 0, 1], 0).into()))
            .workers(1, 5),
    )
    .await;
    // The edge binary serves its own listener the same way (WAGATE_EDGE_METRICS_LISTEN).
    let stop = CancellationToken::new();
    let edge_metrics =
        wagate_proto::telemetry::serve_metrics(([127, 0, 0, 1], 0).into(), stop.clone()).await.unwrap();
    let cp_metrics = cl.cp().metrics_addr().expect("metrics listener");
    let cp_before = scrape(cp_metrics).await;
    let edge_before = scrape(edge_metrics).await;

    let api = Api::new(&cl);
    let token = api.register("metrics@example.com").await;
    let (session, key) = api.connected_session(&cl, &token, "metrics").await;
    api.send_text(&session, &key, "hello").await.expect(200);
    api.get("/api/v1/sessions?page=0", Some(&token)).await.expect(400);

    let cp = scrape(cp_metrics).await;
    for needle in [
        "# TYPE wagate_cp_grpc_request_duration_seconds histogram",
        "wagate_cp_connected_workers ",
        "# TYPE wagate_cp_worker_streams_opened_total counter",
    ] {
        assert!(cp.contains(needle), "control plane /metrics lacks {needle}:\n{cp}");
    }
    for needle in [
        r#"wagate_cp_grpc_request_duration_seconds_bucket{method="/wagate.v1.MessageService/Send",code="0",le="#,
        r#"wagate_cp_grpc_request_duration_seconds_count{method="/wagate.v1.AuthService/Register",code="0"}"#,
        r#"wagate_cp_command_duration_seconds_bucket{kind="send_message",outcome="ok",le="#,
        r#"wagate_cp_command_duration_seconds_count{kind="start_session",outcome="ok"}"#,
        r#"wagate_cp_send_outcomes_total{outcome="sent"}"#,
        r#"wagate_db_operation_seconds_bucket{op="messages.insert"#,
        r#"wagate_ratelimit_checks_total{rule="quota",allowed="true"}"#,
        r#"wagate_ratelimit_checks_total{rule="ip",allowed="true"}"#,
    ] {
        assert!(cp.contains(needle), "control plane /metrics lacks {needle}:\n{cp}");
        let (before, after) = (sample_sum(&cp_before, needle), sample_sum(&cp, needle));
        assert!(after > before, "control plane {needle}: {before} before this test's calls, {after} after");
    }

    let edge = scrape(edge_metrics).await;
    assert!(
        edge.contains("# TYPE wagate_edge_http_request_duration_seconds histogram"),
        "edge /metrics lacks the histogram type:\n{edge}"
    );
    for needle in [
        r#"wagate_edge_http_request_duration_seconds_bucket{route="/api/v1/sessions/{sessionId}/send",method="POST",status="200",le="#,
        r#"wagate_edge_http_request_duration_seconds_count{route="/api/v1/sessions",method="GET",status="400"}"#,
        r#"wagate_edge_http_request_duration_seconds_count{route="/api/v1/auth/register",method="POST",status="201"}"#,
    ] {
        assert!(edge.contains(needle), "edge /metrics lacks {needle}:\n{edge}");
        let (before, after) = (sample_sum(&edge_before, needle), sample_sum(&edge, needle));
        assert!(after > before, "edge {needle}: {before} before this test's calls, {after} after");
    }
    stop.cancel();
    cl.shutdown().await;
}

/// A TCP forwarder that can be switched off (every connection cut, new ones
/// closed at once) and on again: a database that becomes unreachable.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: Arc<std::sync::Mutex<CancellationToken>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let token = cut2.lock().unwrap().clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = token.cancelled() => {}
                    }
                });
            }
        });
        Proxy { addr, up, cut }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            let mut cut = self.cut.lock().unwrap();
            cut.cancel();
            *cut = CancellationToken::new();
        }
    }
}

async fn status(url: &str, service: &str) -> Option<i32> {
    let channel = wagate_proto::connect(url.to_owned()).await.ok()?;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let r = health.check(tonic_health::pb::HealthCheckRequest { service: service.into() }).await.ok()?;
    Some(r.into_inner().status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_serving_while_the_database_is_unreachable() {
    let target = std::env::var(wagate_testkit::cluster::TEST_POSTGRES_URL_ENV)
        .ok()
        .and_then(|u| u.split('@').nth(1).and_then(|h| h.split('/').next()).map(str::to_owned))
        .unwrap_or_else(|| "127.0.0.1:5432".to_owned());
    let proxy = Proxy::start(target.clone()).await;
    let proxy_addr = proxy.addr.to_string();
    let cl = start(cluster(Storage::PostgresRedis).without_edge().configure(move |c| {
        c.database_url = c.database_url.replacen(&target, &proxy_addr, 1);
        c.health_check_interval = Duration::from_millis(100);
    }))
    .await;
    let url = cl.grpc_url();
    let serving = Some(ServingStatus::Serving as i32);
    let not_serving = Some(ServingStatus::NotServing as i32);
    for service in ["", "wagate.v1.SessionService", "wagate.v1.WorkerService"] {
        assert_eq!(status(&url, service).await, serving, "{service}");
    }

    proxy.set_up(false);
    for service in ["", "wagate.v1.SessionService", "wagate.v1.AuthService"] {
        wait_for("NOT_SERVING", Duration::from_secs(15), || async {
            (status(&url, service).await == not_serving).then_some(())
        })
        .await;
    }

    proxy.set_up(true);
    wait_for("SERVING again", Duration::from_secs(15), || async {
        (status(&url, "wagate.v1.SessionService").await == serving).then_some(())
    })
    .await;
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1alpha_and_v1_list_the_services() {
    use tonic_reflection::pb::{v1, v1alpha};
    let cl = start(cluster(Storage::Sqlite).without_edge()).await;
    let want = [
        "wagate.v1.SessionService",
        "wagate.v1.MessageService",
        "wagate.v1.WorkerService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ];

    let channel = wagate_proto::connect(cl.grpc_url()).await.unwrap();
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut replies = client.server_reflection_info(tokio_stream::once(request)).await.unwrap().into_inner();
    let reply = replies.message().await.unwrap().expect("a reply");
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        reply.message_response
    else {
        panic!("not a service list: {reply:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for name in want {
        assert!(names.iter().any(|n| n == name), "v1alpha lacks {name}: {names:?}");
    }

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut replies = client.server_reflection_info(tokio_stream::once(request)).await.unwrap().into_inner();
    let reply = replies.message().await.unwrap().expect("a reply");
    let text = format!("{reply:?}");
    assert!(text.contains("wagate.v1.SessionService"), "{text}");
    assert!(text.contains("grpc.reflection.v1.ServerReflection"), "{text}");
    cl.shutdown().await;
}

async fn handshake(url: String, token: &str, min: u32, max: u32) -> Result<v1::Welcome, tonic::Status> {
    let channel = wagate_proto::connect(url).await.unwrap();
    let mut client = WorkerServiceClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(v1::WorkerMessage {
        kind: Some(worker_message::Kind::Hello(v1::Hello {
            worker_id: format!("proto-{min}-{max}"),
            endpoint: format!("raw://proto-{min}-{max}"),
            max_sessions: 1,
            version: "test".into(),
            min_protocol_version: min,
            max_protocol_version: max,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let mut inbound = client.connect(req).await?.into_inner();
    let first = inbound.message().await?.expect("a first message");
    drop(tx);
    match first.kind {
        Some(v1::control_message::Kind::Welcome(w)) => Ok(w),
        other => panic!("not a welcome: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_version_range_is_negotiated() {
    let cl = start(cluster(Storage::Sqlite).without_edge()).await;
    let token = cl.cp().state().config.worker_auth_token.clone();
    let url = cl.grpc_url();
    // A worker speaking 1..=5 gets the highest version both speak.
    let w = handshake(url.clone(), &token, 1, 5).await.unwrap();
    assert_eq!(w.protocol_version, wagate_proto::PROTOCOL_VERSION_MAX);
    // An old worker (no range) is read as version 1.
    let w = handshake(url.clone(), &token, 0, 0).await.unwrap();
    assert_eq!(w.protocol_version, 1);
    // A range that does not overlap is refused, clearly.
    let e = handshake(url, &token, 7, 9).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().contains("incompatible stream protocol"), "{}", e.message());
    assert!(e.message().contains("7..=9"), "{}", e.message());
    cl.shutdown().await;
}
