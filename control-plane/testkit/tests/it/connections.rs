//! Connection hygiene at the edge and the trusted client address, as the
//! security review tried them: a silent connection is closed after the
//! header timeout, connections beyond the cap are closed at accept, and a
//! spoofed `x-forwarded-for` from an untrusted peer is ignored in the audit
//! log.

use std::time::{Duration, Instant};

use crate::common::{Api, cluster, start};
use sea_orm::ConnectionTrait;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wagate_edge_gateway::EdgeConfig;
use wagate_proto::v1;
use wagate_testkit::cluster::Storage;

/// Reads until the peer closes (Ok(0) or a reset); the time it took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_excess_connections_are_closed() {
    let edge = EdgeConfig {
        header_read_timeout: Duration::from_millis(400),
        max_connections: 3,
        ..EdgeConfig::default()
    };
    let cl = start(cluster(Storage::Sqlite).edge_config(edge)).await;
    let addr = cl.edge.as_ref().expect("edge").local_addr();

    // A connection that sends nothing is closed after the header timeout.
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let took = closed_within(&mut silent, Duration::from_secs(5)).await.expect("silent connection closed");
    assert!(took >= Duration::from_millis(300), "closed by the timeout, not at once ({took:?})");

    // Three idle connections fill the cap; a fourth is closed at accept.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut extra = TcpStream::connect(addr).await.expect("the kernel accepts");
    let _ = extra.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let took = closed_within(&mut extra, Duration::from_millis(300)).await.expect("closed over the cap");
    assert!(took < Duration::from_millis(300));
    // Once they time out, the edge serves again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let api = Api::new(&cl);
    assert_eq!(api.http.get(format!("{}/health", api.base)).send().await.expect("served").status(), 200);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarded_for_is_ignored() {
    // No trusted proxy networks: only the edge's token makes x-forwarded-for believed.
    let cl = start(cluster(Storage::Sqlite).configure(|c| c.trusted_proxies = Vec::new())).await;
    let api = Api::new(&cl);
    api.register("ann@example.com").await;
    let wrong = json!({ "email": "ann@example.com", "password": "wrong-password-9" });

    // Through the edge, with a spoofed header: the edge ignores it (the peer
    // is no trusted proxy) and forwards the socket address with its token.
    let req = api
        .http
        .post(format!("{}/api/v1/auth/login", api.base))
        .header("x-forwarded-for", "7.7.7.7")
        .json(&wrong);
    api.raw(req).await.expect(401);

    // Directly on gRPC with a spoofed header: ignored.
    let channel = wagate_proto::connect(cl.grpc_url()).await.expect("channel");
    let mut auth = v1::auth_service_client::AuthServiceClient::new(channel);
    let mut r = tonic::Request::new(v1::LoginRequest {
        email: "ann@example.com".into(),
        password: "wrong-password-9".into(),
    });
    r.metadata_mut().insert("x-forwarded-for", "6.6.6.6".parse().expect("ascii"));
    assert_eq!(auth.login(r).await.unwrap_err().code(), tonic::Code::Unauthenticated);

    // With the edge's token the same header is believed (the mechanism works).
    let token = cl.cp().state().config.edge_token.clone().expect("edge token");
    let mut r = tonic::Request::new(v1::LoginRequest {
        email: "ann@example.com".into(),
        password: "wrong-password-9".into(),
    });
    r.metadata_mut().insert("x-forwarded-for", "5.5.5.5".parse().expect("ascii"));
    r.metadata_mut().insert("x-wagate-edge-token", token.parse().expect("ascii"));
    assert_eq!(auth.login(r).await.unwrap_err().code(), tonic::Code::Unauthenticated);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let db = &cl.cp().state().db;
    let rows = db
        .conn
        .query_all_raw(db.stmt(
            "SELECT details FROM system_logs WHERE message = 'login failed' ORDER BY timestamp",
            vec![],
        ))
        .await
        .expect("audit rows");
    let peers: Vec<String> = rows
        .iter()
        .map(|r| {
            let details: String = r.try_get("", "details").unwrap_or_default();
            serde_json::from_str::<serde_json::Value>(&details).unwrap_or_default()["peer"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(peers, vec!["127.0.0.1", "127.0.0.1", "5.5.5.5"], "audit peers");
    cl.shutdown().await;
}
