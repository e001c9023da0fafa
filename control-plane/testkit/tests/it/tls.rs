//! TLS on the gRPC listener (rustls on ring) and the `/metrics` bearer token,
//! as the security review asked: a worker with a client certificate from the
//! CA connects and runs sessions, one without (or from another CA) is
//! refused, the edge and the replica-to-replica channel work over TLS, a
//! plaintext client gets nothing. Certificates are made at test time (rcgen).

use std::path::PathBuf;
use std::time::Duration;

use crate::common::{Api, cluster, start, wait_for};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use sea_orm::EntityTrait;
use serde_json::json;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use wagate_control_plane::persistence::entities::worker;
use wagate_proto::tls::{ClientAuth, ClientTls, PemIdentity, ServerTls};
use wagate_testkit::cluster::{Cluster, Storage, WorkerSpec};
use wagate_worker_sdk::Worker;
use wagate_worker_sdk::simulated::{SimulatedConfig, SimulatedDriver};

/// A test CA that issues certificates for `localhost` / `127.0.0.1`.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("ca key");
        TestCa { issuer: CertifiedIssuer::self_signed(params, key).expect("ca certificate") }
    }

    fn pem(&self) -> Vec<u8> {
        self.issuer.pem().into_bytes()
    }

    /// A certificate for both ends (server and client auth), as the chart
    /// uses one certificate for the replicas and the edge.
    fn issue(&self, cn: &str) -> PemIdentity {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        PemIdentity { cert: cert.pem().into_bytes(), key: key.serialize_pem().into_bytes() }
    }

    fn server(&self, client_auth: ClientAuth) -> ServerTls {
        ServerTls {
            identity: self.issue("control-plane"),
            ca: Some(self.pem()),
            client_auth,
            server_name: None,
        }
    }

    /// What a client trusting this CA sends: `identity` as its certificate.
    fn client(&self, identity: Option<PemIdentity>) -> ClientTls {
        ClientTls { ca: Some(self.pem()), identity, server_name: None }
    }
}

/// `grpc.health.v1` of `url` through a fresh channel with `tls`.
async fn health(url: &str, tls: Option<&ClientTls>) -> Result<i32, String> {
    let endpoint =
        wagate_proto::endpoint_with_tls(url.to_owned(), &wagate_proto::ConnectOptions::default(), tls)
            .map_err(|e| e.to_string())?;
    let call = async {
        let channel = endpoint.connect().await.map_err(|e| format!("connect: {e:?}"))?;
        HealthClient::new(channel)
            .check(HealthCheckRequest { service: String::new() })
            .await
            .map(|r| r.into_inner().status)
            .map_err(|e| format!("call: {e:?}"))
    };
    tokio::time::timeout(Duration::from_secs(5), call).await.map_err(|_| "timed out".to_owned())?
}

/// Spawns a worker with `tls` against replica 0 and tells whether its stream
/// came up within `within` (it is shut down either way).
async fn worker_connects(
    cl: &Cluster,
    id: &str,
    url: String,
    tls: Option<ClientTls>,
    within: Duration,
) -> bool {
    let mut config = cl.worker_config(id, 5);
    config.control_plane_url = url;
    config.tls = tls;
    let handle = Worker::spawn(config, SimulatedDriver::new(SimulatedConfig::default()));
    let up = handle.wait_connected(within).await;
    handle.shutdown().await;
    up
}

/// Two replicas over TLS with client certificates required: the worker's
/// stream is on replica 0, the edge talks to replica 1, so session starts and
/// sends are forwarded replica to replica over TLS.
async fn worker_edge_and_peers_over_tls(storage: Storage) {
    let ca = TestCa::new("wagate test ca");
    let cl = start(
        cluster(storage)
            .replicas(2)
            .tls(ca.server(ClientAuth::Required))
            .edge_on(1)
            .worker(WorkerSpec::new("w-tls", 10).on(0)),
    )
    .await;
    assert!(cl.cp_at(0).url().starts_with("https://"), "{}", cl.cp_at(0).url());
    assert!(cl.cp_at(1).state().dispatcher.self_addr().starts_with("https://"));
    let api = Api::new(&cl);
    let ann = api.register("ann@example.com").await;
    let (sid, key) = api.connected_session(&cl, &ann, "tls-shop").await;
    assert_eq!(cl.worker("w-tls").expect("worker").replica, 0);
    let r = api.send_text(&sid, &key, "over tls").await;
    assert!(r.status.is_success(), "send over the TLS hops: {} {}", r.status, r.body);
    let driver = cl.driver_of(&sid).expect("driver");
    wait_for("send reached the worker", Duration::from_secs(5), || async {
        (driver.sent_count(&sid) >= 1).then_some(())
    })
    .await;
    let r = api.get(&format!("/api/v1/sessions/{sid}"), Some(&ann)).await;
    assert_eq!(r.data()["status"], json!("CONNECTED"), "{}", r.body);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_edge_and_peers_over_tls_sqlite() {
    worker_edge_and_peers_over_tls(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_edge_and_peers_over_tls_postgres_redis() {
    worker_edge_and_peers_over_tls(Storage::PostgresRedis).await;
}

/// With `WAGATE_TLS_CA` and client auth required, a worker without a client
/// certificate, or with one from another CA, never gets a stream; a
/// plaintext client gets nothing from the TLS listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_a_certificate_from_the_ca_is_refused() {
    let ca = TestCa::new("wagate test ca");
    let rogue = TestCa::new("rogue ca");
    let cl = start(cluster(Storage::Sqlite).tls(ca.server(ClientAuth::Required))).await;
    let url = cl.cp().url();
    let within = Duration::from_secs(2);

    // The right CA and a certificate it issued: health answers, the worker connects.
    assert_eq!(health(&url, Some(&ca.client(Some(ca.issue("probe"))))).await, Ok(1), "SERVING");
    assert!(
        worker_connects(&cl, "w-good", url.clone(), Some(ca.client(Some(ca.issue("w-good")))), within).await
    );

    // No client certificate.
    assert!(health(&url, Some(&ca.client(None))).await.is_err());
    assert!(!worker_connects(&cl, "w-nocert", url.clone(), Some(ca.client(None)), within).await);

    // A certificate from another CA (the server is still trusted).
    let foreign = ClientTls { ca: Some(ca.pem()), identity: Some(rogue.issue("w-rogue")), server_name: None };
    assert!(health(&url, Some(&foreign)).await.is_err());
    assert!(!worker_connects(&cl, "w-rogue", url.clone(), Some(foreign), within).await);

    // A client that does not trust the server's CA refuses the server.
    let distrustful = rogue.client(Some(rogue.issue("w-x")));
    assert!(health(&url, Some(&distrustful)).await.is_err());

    // Plaintext against the TLS listener.
    let plain = url.replacen("https://", "http://", 1);
    assert!(health(&plain, None).await.is_err(), "plaintext gRPC must not be answered");
    assert!(!worker_connects(&cl, "w-plain", plain.clone(), None, within).await);
    // TLS settings with an http:// URL are refused instead of going plaintext.
    assert!(wagate_proto::endpoint_with_tls(plain, &Default::default(), Some(&ca.client(None))).is_err());

    // Only the good worker ever got as far as its Hello (a worker row).
    let db = &cl.cp().state().db.conn;
    let known: Vec<String> =
        worker::Entity::find().all(db).await.expect("workers").into_iter().map(|w| w.id).collect();
    assert_eq!(known, ["w-good"], "refused workers never reached the control plane");
    cl.shutdown().await;
}

/// `WAGATE_TLS_CLIENT_AUTH=optional`: a client without a certificate is let
/// in (its token still decides), one with a foreign certificate is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_auth_verifies_only_presented_certificates() {
    let ca = TestCa::new("wagate test ca");
    let rogue = TestCa::new("rogue ca");
    let cl = start(cluster(Storage::Sqlite).tls(ca.server(ClientAuth::Optional))).await;
    let url = cl.cp().url();
    assert_eq!(health(&url, Some(&ca.client(None))).await, Ok(1));
    let foreign = ClientTls { ca: Some(ca.pem()), identity: Some(rogue.issue("x")), server_name: None };
    assert!(health(&url, Some(&foreign)).await.is_err());
    assert!(worker_connects(&cl, "w-nocert", url, Some(ca.client(None)), Duration::from_secs(5)).await);
    cl.shutdown().await;
}

/// Unreadable or wrong files refuse start-up with a message naming the variable.
#[test]
fn bad_certificate_files_refuse_start_up() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        cp: wagate_control_plane::ControlPlaneArgs,
    }
    let dir = temp_dir();
    let ca = TestCa::new("ca");
    let id = ca.issue("cp");
    let (cert, key, junk) = (dir.join("cert.pem"), dir.join("key.pem"), dir.join("junk.pem"));
    std::fs::write(&cert, &id.cert).expect("write");
    std::fs::write(&key, &id.key).expect("write");
    std::fs::write(&junk, "hello\n").expect("write");
    let args = |extra: &[&str]| {
        // --dev: no secrets needed, the TLS checks are what is tested.
        let mut argv = vec!["control-plane", "--dev"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("arguments parse").cp
    };
    let s = |p: &PathBuf| p.display().to_string();
    let err = |a: wagate_control_plane::ControlPlaneArgs| match a.into_config() {
        Ok(_) => panic!("start-up must be refused"),
        Err(e) => e.to_string(),
    };

    let e = err(args(&["--tls-cert", "/nonexistent/cert.pem", "--tls-key", &s(&key)]));
    assert!(e.contains("WAGATE_TLS_CERT") && e.contains("/nonexistent/cert.pem"), "{e}");
    let e = err(args(&["--tls-cert", &s(&cert), "--tls-key", &s(&junk)]));
    assert!(e.contains("WAGATE_TLS_KEY") && e.contains("no PEM private key"), "{e}");
    let e = err(args(&["--tls-cert", &s(&cert), "--tls-key", &s(&key), "--tls-ca", &s(&junk)]));
    assert!(e.contains("WAGATE_TLS_CA"), "{e}");
    let e = err(args(&["--tls-cert", &s(&cert)]));
    assert!(e.contains("WAGATE_TLS_KEY"), "{e}");
    let other_key = KeyPair::generate().expect("key").serialize_pem();
    let mismatched = dir.join("other-key.pem");
    std::fs::write(&mismatched, other_key).expect("write");
    let e = err(args(&["--tls-cert", &s(&cert), "--tls-key", &s(&mismatched)]));
    assert!(e.contains("TLS configuration refused") && e.contains("KeyMismatch"), "{e}");
    let e = err(args(&["--tls-cert", &s(&cert), "--tls-key", &s(&key), "--tls-client-auth", "sometimes"]));
    assert!(e.contains("WAGATE_TLS_CLIENT_AUTH"), "{e}");

    let e = err(args(&[
        "--tls-cert",
        &s(&cert),
        "--tls-key",
        &s(&key),
        "--advertise-addr",
        "http://10.0.0.5:50051",
    ]));
    assert!(e.contains("WAGATE_ADVERTISE_ADDR"), "{e}");

    let ok = args(&["--tls-cert", &s(&cert), "--tls-key", &s(&key), "--tls-ca", &s(&cert)]).into_config();
    assert!(ok.is_ok_and(|c| c.tls.is_some()));
    let _ = std::fs::remove_dir_all(dir);
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wagate-tls-{}", uuid_like()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn uuid_like() -> String {
    let n: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    format!("{n:x}-{}", std::process::id())
}

const METRICS_TOKEN: &str = "metrics-3f9a1c7e5b2d48e6a0c4f1b9d7e2a6c8";

async fn scrape(addr: std::net::SocketAddr, token: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new().get(format!("http://{addr}/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("metrics listener answers").status().as_u16()
}

/// `WAGATE_METRICS_TOKEN`: `/metrics` of the control plane and of the edge's
/// listener answer 401 without the token or with a wrong one, 200 with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_require_the_bearer_token_when_set() {
    let cl = start(cluster(Storage::Sqlite).without_edge().configure(|c| {
        c.metrics_listen = Some(([127, 0, 0, 1], 0).into());
        c.metrics_token = Some(METRICS_TOKEN.into());
    }))
    .await;
    let stop = tokio_util::sync::CancellationToken::new();
    let edge_metrics = wagate_proto::telemetry::serve_metrics_with_token(
        ([127, 0, 0, 1], 0).into(),
        Some(METRICS_TOKEN.into()),
        stop.clone(),
    )
    .await
    .expect("edge metrics listener");
    for addr in [cl.cp().metrics_addr().expect("metrics listener"), edge_metrics] {
        assert_eq!(scrape(addr, None).await, 401, "no token");
        assert_eq!(scrape(addr, Some("wrong-token")).await, 401, "wrong token");
        assert_eq!(scrape(addr, Some(&METRICS_TOKEN[..METRICS_TOKEN.len() - 1])).await, 401, "a prefix");
        assert_eq!(scrape(addr, Some(METRICS_TOKEN)).await, 200, "the token");
    }
    stop.cancel();
    cl.shutdown().await;
}
