#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;
use wagate_edge_gateway::{EdgeConfig, EdgeServer, RunningEdge};

/// A control plane URL nobody listens on (connection refused at once).
pub const UNREACHABLE: &str = "http://127.0.0.1:1";

pub fn config(control_plane_url: &str) -> EdgeConfig {
    EdgeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        control_plane_url: control_plane_url.to_owned(),
        body_limit_bytes: 4096,
        request_timeout: Duration::from_secs(5),
        cors_origins: vec!["*".to_owned()],
        grpc_channels: 2,
        ..EdgeConfig::default()
    }
}

pub async fn start(config: EdgeConfig) -> (RunningEdge, String) {
    let edge = EdgeServer::bind(config).await.expect("bind edge");
    let base = format!("http://{}", edge.local_addr());
    (edge, base)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

/// Status and JSON body of a response.
pub async fn json(resp: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    };
    (status, headers, body)
}

/// Asserts an error envelope with `code` (and `field` when given).
#[track_caller]
pub fn assert_error(status: u16, body: &Value, want_status: u16, code: &str, field: Option<&str>) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["error"].as_str().is_some_and(|s| !s.is_empty()), "{body}");
    match field {
        Some(f) => assert_eq!(body["field"], f, "{body}"),
        None => assert!(body.get("field").is_none(), "{body}"),
    }
}
