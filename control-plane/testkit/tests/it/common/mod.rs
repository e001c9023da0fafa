//! Helpers shared by the integration tests: a REST client over the real
//! edge gateway, polling, and reading `/metrics`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_testkit::cluster::{Cluster, ClusterBuilder, Storage};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

pub async fn start(builder: ClusterBuilder) -> Cluster {
    init_tracing();
    builder
        .start()
        .await
        .expect("cluster starts (PostgreSQL and Redis must be running for PostgresRedis tests)")
}

pub fn cluster(storage: Storage) -> ClusterBuilder {
    ClusterBuilder::new(storage)
}

/// A tiny REST client for the edge.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        if status < 400 {
            assert_eq!(self.body["success"], json!(true), "{}", self.body);
        } else {
            assert_eq!(self.body["success"], json!(false), "{}", self.body);
            assert!(
                self.body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "error message: {}",
                self.body
            );
            assert!(self.body["code"].as_str().is_some_and(|e| !e.is_empty()), "error code: {}", self.body);
        }
        self
    }
    #[track_caller]
    pub fn expect_code(&self, status: u16, code: &str) -> &Self {
        self.expect(status);
        assert_eq!(self.body["code"], json!(code), "{}", self.body);
        self
    }
}

impl Api {
    pub fn new(cluster: &Cluster) -> Self {
        Self { base: cluster.http_url(), http: reqwest::Client::builder().build().expect("client") }
    }

    pub async fn call(&self, method: Method, path: &str, auth: Option<&str>, body: Option<Value>) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = auth {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::reply(req).await
    }

    pub async fn raw(&self, req: reqwest::RequestBuilder) -> Reply {
        Self::reply(req).await
    }

    async fn reply(req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request reaches the edge");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("JSON body expected, got {status}: {text}"));
        Reply { status, headers, body }
    }

    pub async fn get(&self, path: &str, auth: Option<&str>) -> Reply {
        self.call(Method::GET, path, auth, None).await
    }
    pub async fn post(&self, path: &str, auth: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, auth, Some(body)).await
    }
    pub async fn delete(&self, path: &str, auth: Option<&str>) -> Reply {
        self.call(Method::DELETE, path, auth, None).await
    }

    /// Registers `email` and returns its token.
    pub async fn register(&self, email: &str) -> String {
        let r = self
            .post("/api/v1/auth/register", None, json!({ "email": email, "password": "correct-horse-9" }))
            .await;
        r.expect(201);
        r.data()["token"].as_str().expect("token").to_owned()
    }

    /// Creates a session; returns (session id, api key).
    pub async fn create_session(&self, token: &str, name: &str) -> (String, String) {
        let r = self.post("/api/v1/sessions", Some(token), json!({ "name": name })).await;
        r.expect(201);
        (
            r.data()["sessionId"].as_str().expect("sessionId").to_owned(),
            r.data()["apiKey"].as_str().expect("apiKey").to_owned(),
        )
    }

    /// Creates a session and pairs it through the simulated driver.
    pub async fn connected_session(&self, cluster: &Cluster, token: &str, name: &str) -> (String, String) {
        let (id, key) = self.create_session(token, name).await;
        let driver = wait_for("session on a worker", Duration::from_secs(5), || async {
            cluster.driver_of(&id).cloned()
        })
        .await;
        assert!(driver.scan(&id), "scan");
        let path = format!("/api/v1/sessions/{id}");
        wait_for("session CONNECTED", Duration::from_secs(5), || async {
            let r = self.get(&path, Some(token)).await;
            (r.data()["status"] == json!("CONNECTED")).then_some(())
        })
        .await;
        (id, key)
    }

    pub async fn send_text(&self, session: &str, key: &str, text: &str) -> Reply {
        self.send_text_with(session, key, text, &[]).await
    }

    /// [`Api::send_text`] with extra headers (`Idempotency-Key`, `X-Forwarded-For`…).
    pub async fn send_text_with(
        &self,
        session: &str,
        key: &str,
        text: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self
            .http
            .post(format!("{}/api/v1/sessions/{session}/send", self.base))
            .header("X-API-Key", key)
            .json(&json!({ "to": "+62 812-3456-7890", "type": "text", "message": text }));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.raw(req).await
    }
}

/// Polls `f` until it yields `Some`, or panics after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The Prometheus text of a `/metrics` listener.
///
/// Every test of this binary shares the process-wide recorder (and the
/// unlabelled counters are statics), so a series may already be there
/// because of another test: check what a test did by comparing a scrape
/// before it with one after ([`sample_sum`]), never by absolute values.
pub async fn scrape(addr: SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("metrics listener answers")
        .text()
        .await
        .expect("metrics body")
}

/// The sum of the values of the samples whose line starts with `prefix` (a
/// metric name, optionally with the start of its labels); 0 when none does.
pub fn sample_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.trim().parse::<f64>().ok()))
        .sum()
}

/// The series (name and labels, without the value) of the samples whose line
/// starts with `prefix`.
pub fn series<'a>(text: &'a str, prefix: &str) -> std::collections::BTreeSet<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s))
        .collect()
}

/// The value of label `name` in a series (`metric{a="x",b="y"}`).
pub fn label<'a>(series: &'a str, name: &str) -> Option<&'a str> {
    let (_, labels) = series.split_once('{')?;
    labels.split(',').find_map(|kv| kv.strip_prefix(name)?.strip_prefix("=\"")?.split('"').next())
}

#[test]
fn metrics_text_is_read() {
    let text = "# TYPE x_count counter\n\
        x_count{method=\"/wagate.v1.AuthService/Login\",code=\"0\"} 3\n\
        x_count{code=\"2\",method=\"other\"} 1.5\n\
        x_count_total 7\n";
    assert_eq!(sample_sum(text, "x_count{"), 4.5);
    assert_eq!(sample_sum(text, "x_count{method=\"other\""), 0.0);
    assert_eq!(sample_sum(text, "y_count"), 0.0);
    let s: Vec<&str> = series(text, "x_count{").into_iter().collect();
    assert_eq!(
        s,
        [
            "x_count{code=\"2\",method=\"other\"}",
            "x_count{method=\"/wagate.v1.AuthService/Login\",code=\"0\"}"
        ]
    );
    assert_eq!(label(s[0], "method"), Some("other"));
    assert_eq!(label(s[1], "method"), Some("/wagate.v1.AuthService/Login"));
    assert_eq!(label(s[1], "code"), Some("0"));
    assert_eq!(label(s[1], "thod"), None);
}
