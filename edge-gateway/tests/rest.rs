//! The real server on 127.0.0.1:0 with an unreachable control plane: every
//! answer here is produced by the edge itself.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("strict-transport-security", "max-age=15552000; includeSubDomains"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("x-dns-prefetch-control", "off"),
    ("x-download-options", "noopen"),
    ("x-permitted-cross-domain-policies", "none"),
    ("origin-agent-cluster", "?1"),
    ("x-xss-protection", "0"),
    ("cache-control", "no-store"),
];

#[track_caller]
fn assert_security_headers(h: &reqwest::header::HeaderMap) {
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(h.get(*name).map(|v| v.to_str().unwrap()), Some(*value), "{name}");
    }
    assert!(h.get("x-request-id").is_some());
}

#[tokio::test]
async fn health_is_local_and_has_every_header() {
    let (edge, base) = start(config(UNREACHABLE)).await;
    let c = client();
    for path in ["/health", "/api/v1/health", "/api/health", "/health/"] {
        let (status, h, body) = json(c.get(format!("{base}{path}")).send().await.unwrap()).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body["success"], true);
        assert_eq!(body["data"]["status"], "ok");
        assert_eq!(body["data"]["service"], "edge-gateway");
        assert_eq!(body["data"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["access-control-allow-origin"], "*");
        assert_eq!(
            h["access-control-expose-headers"],
            "X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
        );
        assert_security_headers(&h);
    }
    let head = c.head(format!("{base}/health")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    edge.shutdown().await;
}

#[tokio::test]
async fn ready_is_503_when_control_plane_is_down() {
    let (edge, base) = start(config(UNREACHABLE)).await;
    for path in ["/health/ready", "/api/v1/health/ready"] {
        let (status, h, body) = json(client().get(format!("{base}{path}")).send().await.unwrap()).await;
        assert_error(status, &body, 503, "UNAVAILABLE", None);
        assert!(h.get("retry-after").is_some());
        assert_security_headers(&h);
    }
    edge.shutdown().await;
}

#[tokio::test]
async fn unreachable_control_plane_is_503_not_500() {
    let (edge, base) = start(config(UNREACHABLE)).await;
    let c = client();
    let calls = [
        c.post(format!("{base}/api/v1/auth/login")).json(&json!({"email": "a@b.c", "password": "pw"})),
        c.post(format!("{base}/api/v1/auth/register")).json(&json!({"email": "a@b.c", "password": "pw"})),
        c.get(format!("{base}/api/v1/sessions")).bearer_auth("jwt"),
        c.get(format!("{base}/api/v1/sessions/s1")).bearer_auth("jwt"),
        c.get(format!("{base}/api/sessions/s1/qr")).bearer_auth("jwt"),
        c.delete(format!("{base}/api/v1/sessions/s1")).bearer_auth("jwt"),
        c.post(format!("{base}/api/v1/sessions")).bearer_auth("jwt").json(&json!({"name": "x"})),
        c.post(format!("{base}/api/v1/sessions/s1/send"))
            .header("x-api-key", "key")
            .json(&json!({"to": "62811", "message": "hi"})),
    ];
    for call in calls {
        let (status, h, body) = json(call.send().await.unwrap()).await;
        assert_error(status, &body, 503, "UNAVAILABLE", None);
        assert_eq!(body["error"], "control plane unavailable");
        assert_eq!(h["retry-after"], "1");
        assert_security_headers(&h);
    }
    edge.shutdown().await;
}

#[tokio::test]
async fn bad_json_bodies_are_4xx() {
    let (edge, base) = start(config(UNREACHABLE)).await;
    let c = client();
    let post = |path: &str, body: &'static str| {
        c.post(format!("{base}{path}")).header("content-type", "application/json").body(body)
    };

    let (status, _, body) =
        json(post("/api/v1/auth/register", r#"{"email": "a@b.c", "#).send().await.unwrap()).await;
    assert_error(status, &body, 400, "INVALID_JSON", None);
    assert!(body["error"].as_str().unwrap().contains("line 1"), "{body}");

    let (status, _, body) =
        json(post("/api/v1/auth/register", r#"{"password":"x"}"#).send().await.unwrap()).await;
    assert_error(status, &body, 400, "VALIDATION_ERROR", Some("email"));
    assert_eq!(body["error"], "email is required");

    let (status, _, body) =
        json(post("/api/v1/auth/login", r#"{"email":"a@b.c","password":12}"#).send().await.unwrap()).await;
    assert_error(status, &body, 400, "VALIDATION_ERROR", Some("password"));
    assert_eq!(body["error"], "password must be a string");

    let (status, _, body) = json(post("/api/v1/auth/login", "").send().await.unwrap()).await;
    assert_error(status, &body, 400, "INVALID_JSON", None);

    let (status, _, body) = json(post("/api/v1/auth/login", "[1,2]").send().await.unwrap()).await;
    assert_error(status, &body, 400, "VALIDATION_ERROR", None);

    // Send: checked before any credential or gRPC call.
    let send = "/api/v1/sessions/s1/send";
    let (status, _, body) =
        json(post(send, r#"{"to":"1","type":"fax","message":"x"}"#).send().await.unwrap()).await;
    assert_error(status, &body, 400, "VALIDATION_ERROR", Some("type"));
    let (status, _, body) = json(
        post(send, r#"{"to":"1","type":"location","latitude":"north","longitude":1}"#).send().await.unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "VALIDATION_ERROR", Some("latitude"));
    assert_eq!(body["error"], "latitude must be a number");
    let (status, _, body) = json(post(send, r#"{"type":"text","message":"x"}"#).send().await.unwrap()).await;
    assert_error(status, &body, 400, "VALIDATION_ERROR", Some("to"));
    let (status, _, body) = json(post(send, r#"{"to":"1"}"#).send().await.unwrap()).await;
    assert_error(status, &body, 400, "VALIDATION_ERROR", Some("message"));

    let (status, _, body) =
        json(post("/api/v1/sessions", r#"{"sessionId":"x"}"#).send().await.unwrap()).await;
    assert_error(status, &body, 400, "VALIDATION_ERROR", Some("name"));
    edge.shutdown().await;
}

#[tokio::test]
async fn content_type_must_be_json() {
    let (edge, base) = start(config(UNREACHABLE)).await;
    let c = client();
    for ct in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let mut req = c.post(format!("{base}/api/v1/auth/login")).body(r#"{"email":"a","password":"b"}"#);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let (status, h, body) = json(req.send().await.unwrap()).await;
        assert_error(status, &body, 415, "UNSUPPORTED_MEDIA_TYPE", None);
        assert_security_headers(&h);
    }
    // Parameters are fine (then the unreachable control plane answers).
    let (status, _, _) = json(
        c.post(format!("{base}/api/v1/auth/login"))
            .header("content-type", "application/json; charset=utf-8")
            .body(r#"{"email":"a","password":"b"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 503);
    edge.shutdown().await;
}

#[tokio::test]
async fn oversize_bodies_are_413() {
    let (edge, base) = start(config(UNREACHABLE)).await;
    let big = format!(r#"{{"email":"a@b.c","password":"{}"}}"#, "x".repeat(5000));
    let (status, h, body) = json(
        client()
            .post(format!("{base}/api/v1/auth/register"))
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 413, "PAYLOAD_TOO_LARGE", None);
    assert_security_headers(&h);

    // Chunked (no Content-Length): enforced while streaming.
    let mut s = tokio::net::TcpStream::connect(edge.local_addr()).await.unwrap();
    let mut req = String::from(
        "POST /api/v1/auth/register HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
    );
    for chunk in big.as_bytes().chunks(1000) {
        req.push_str(&format!("{:x}\r\n{}\r\n", chunk.len(), std::str::from_utf8(chunk).unwrap()));
    }
    req.push_str("0\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    // The server answers before reading everything and may reset the
    // connection afterwards: keep what arrived.
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "got: {text:?}");
    assert!(text.contains(r#""code":"PAYLOAD_TOO_LARGE""#), "{text}");

    // A client waiting for `100 Continue` is refused without being asked for the body.
    let mut s = tokio::net::TcpStream::connect(edge.local_addr()).await.unwrap();
    s.write_all(
        b"POST /api/v1/auth/register HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 100000\r\nexpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "got: {text:?}");
    edge.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let (edge, base) = start(config(UNREACHABLE)).await;
    let c = client();
    for path in ["/", "/nope", "/api/v1/nope", "/api/v2/sessions", "/api/v1/sessions/s1/other", "/sessions"] {
        let (status, h, body) = json(c.get(format!("{base}{path}")).send().await.unwrap()).await;
        assert_error(status, &body, 404, "NOT_FOUND", None);
        assert_security_headers(&h);
    }
    for (method, path, allow) in [
        (reqwest::Method::GET, "/api/v1/auth/login", "POST"),
        (reqwest::Method::PUT, "/api/v1/sessions", "GET, HEAD, POST"),
        (reqwest::Method::POST, "/api/v1/sessions/s1", "GET, HEAD, DELETE"),
        (reqwest::Method::GET, "/api/sessions/s1/send", "POST"),
        (reqwest::Method::DELETE, "/health", "GET"),
    ] {
        let (status, h, body) =
            json(c.request(method.clone(), format!("{base}{path}")).send().await.unwrap()).await;
        assert_error(status, &body, 405, "METHOD_NOT_ALLOWED", None);
        let got = h["allow"].to_str().unwrap();
        assert!(got.starts_with(allow), "{method} {path}: {got}");
    }
    // An id that cannot exist is a missing session.
    for path in [
        "/api/v1/sessions/bad.id",
        "/api/v1/sessions/a%20b/qr",
        &format!("/api/v1/sessions/{}", "a".repeat(65)),
    ] {
        let (status, _, body) =
            json(c.get(format!("{base}{path}")).bearer_auth("jwt").send().await.unwrap()).await;
        assert_error(status, &body, 404, "SESSION_NOT_FOUND", None);
    }
    edge.shutdown().await;
}

#[tokio::test]
async fn api_alias_routes_like_v1() {
    let (edge, base) = start(config(UNREACHABLE)).await;
    let c = client();
    let mut answers = Vec::new();
    for prefix in ["/api/v1", "/api"] {
        let mut got = Vec::new();
        for (method, path, body) in [
            ("POST", "/auth/login", r#"{"email":"a"}"#),
            ("POST", "/auth/register", "{bad"),
            ("GET", "/sessions?page=0", ""),
            ("GET", "/sessions/x.y", ""),
            ("PATCH", "/sessions", ""),
            ("GET", "/nope", ""),
        ] {
            let req = c
                .request(method.parse().unwrap(), format!("{base}{prefix}{path}"))
                .header("content-type", "application/json")
                .bearer_auth("jwt")
                .body(body);
            let (status, _, body) = json(req.send().await.unwrap()).await;
            got.push((status, body["code"].clone(), body["field"].clone()));
        }
        answers.push(got);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0][0].0, 400);
    assert_eq!(answers[0][2].2, "page");
    edge.shutdown().await;
}

#[tokio::test]
async fn pagination_query_is_checked() {
    let (edge, base) = start(config(UNREACHABLE)).await;
    let c = client();
    for (q, field) in
        [("page=abc", "page"), ("page=0", "page"), ("limit=-5", "limit"), ("page=1&limit=0", "limit")]
    {
        let (status, _, body) =
            json(c.get(format!("{base}/api/v1/sessions?{q}")).bearer_auth("jwt").send().await.unwrap()).await;
        assert_error(status, &body, 400, "VALIDATION_ERROR", Some(field));
    }
    edge.shutdown().await;
}

#[tokio::test]
async fn missing_credentials_are_401_without_a_grpc_call() {
    let (edge, base) = start(config(UNREACHABLE)).await;
    let c = client();
    let calls = [
        c.get(format!("{base}/api/v1/sessions")),
        c.get(format!("{base}/api/v1/sessions/s1")),
        c.post(format!("{base}/api/v1/sessions")).json(&json!({"name": "x"})),
        c.post(format!("{base}/api/v1/sessions/s1/send")).json(&json!({"to": "1", "message": "hi"})),
    ];
    for call in calls {
        let (status, h, body) = json(call.send().await.unwrap()).await;
        assert_error(status, &body, 401, "UNAUTHENTICATED", None);
        assert_eq!(h["www-authenticate"], "Bearer");
    }
    edge.shutdown().await;
}

#[tokio::test]
async fn cors_preflight_and_origin_list() {
    let (edge, base) = start(config(UNREACHABLE)).await;
    let resp = client()
        .request(reqwest::Method::OPTIONS, format!("{base}/api/v1/sessions/s1/send"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-api-key, content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert_eq!(h["access-control-allow-methods"], "GET, POST, PUT, PATCH, DELETE, OPTIONS");
    assert_eq!(
        h["access-control-allow-headers"],
        "Authorization, Content-Type, X-API-Key, Idempotency-Key, X-Request-Id"
    );
    assert_eq!(h["access-control-max-age"], "600");
    assert_security_headers(h);
    edge.shutdown().await;

    let mut cfg = config(UNREACHABLE);
    cfg.cors_origins = vec!["https://app.example".into()];
    let (edge, base) = start(cfg).await;
    let resp =
        client().get(format!("{base}/health")).header("origin", "https://app.example").send().await.unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "https://app.example");
    assert_eq!(resp.headers()["vary"], "Origin");
    let resp =
        client().get(format!("{base}/health")).header("origin", "https://evil.example").send().await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    assert_eq!(resp.headers()["vary"], "Origin");
    edge.shutdown().await;
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let (edge, base) = start(config(UNREACHABLE)).await;
    let c = client();
    let resp = c.get(format!("{base}/health")).header("x-request-id", "req-42").send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-42");
    let resp = c.get(format!("{base}/health")).header("x-request-id", "bad id!").send().await.unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "{id}");
    edge.shutdown().await;
}

#[tokio::test]
async fn http2_prior_knowledge_and_keep_alive() {
    let (edge, base) = start(config(UNREACHABLE)).await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    for _ in 0..3 {
        let resp = h2.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(resp.status(), 200);
    }
    let (status, _, body) = json(
        h2.post(format!("{base}/api/v1/auth/login"))
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "INVALID_JSON", None);
    edge.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let (edge, base) = start(config(UNREACHABLE)).await;
    let addr = edge.local_addr();
    assert_eq!(client().get(format!("{base}/health")).send().await.unwrap().status(), 200);
    tokio::time::timeout(Duration::from_secs(10), edge.shutdown()).await.expect("shutdown in time");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
