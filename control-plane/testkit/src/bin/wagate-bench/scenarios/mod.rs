//! The scenarios run on one stack: set-up (users, connected sessions),
//! `send` (the ceiling, the edge's own routes and the send path at each C),
//! `churn` (session listing, create + delete), then the database checks
//! (`verify`). `load` is the load generator they share.

mod churn;
pub mod load;
mod send;
mod verify;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::Method;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::report::{Row, StorageReport, cpu_pct, print_header};
use crate::stack::{Stack, count};
use crate::{Args, Scenario};

pub async fn run(args: &Args, stack: &mut Stack) -> anyhow::Result<StorageReport> {
    let rest = Arc::new(Rest::new(stack.edge_addr));
    let s = args.sessions.max(1);
    let t_setup = Instant::now();
    let tokens = make_users(stack, &rest, "send", s.div_ceil(20)).await?;
    let sessions = make_sessions(stack, &rest, &tokens, s).await?;
    eprintln!(
        "== {} users, {} sessions CONNECTED in {:.1}s",
        tokens.len(),
        sessions.len(),
        t_setup.elapsed().as_secs_f64()
    );

    let warmup = Duration::from_secs_f64(args.warmup.max(0.0));
    let duration = Duration::from_secs_f64(args.seconds.max(0.1));
    let mut rows = Vec::new();
    let mut accepted: Vec<String> = Vec::new();
    print_header();

    if matches!(args.scenario, Scenario::Send | Scenario::All) {
        send::run(args, stack, &sessions, warmup, duration, &mut rows, &mut accepted).await?;
    }

    let mut webhooks = None;
    if args.scenario == Scenario::Webhooks {
        let r =
            webhooks::run(args, stack, &rest, &tokens, &sessions, warmup, duration, &mut rows, &mut accepted)
                .await?;
        webhooks = Some(serde_json::to_value(r)?);
    }

    if matches!(args.scenario, Scenario::Churn | Scenario::All) {
        churn::run(args, stack, &rest, &tokens, sessions.len(), warmup, duration, &mut rows).await?;
    }

    // No lost messages: every accepted send is in the database as SENT or later.
    let verification = verify::verify(stack, &accepted).await?;
    let memory = stack.mem();
    let table_stats = verify::table_stats(stack).await;
    Ok(StorageReport {
        storage: stack.storage.to_owned(),
        limits: stack.limits,
        sessions: sessions.len(),
        workers: args.workers,
        rows,
        memory,
        verification,
        table_stats,
        webhooks,
    })
}

async fn measure<F, Fut>(
    stack: &mut Stack,
    target: &str,
    conns: usize,
    f: F,
) -> anyhow::Result<(Row, load::RunOutput)>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = load::RunOutput>,
{
    let before = stack.cpu();
    let t0 = Instant::now();
    let mut out = f().await;
    let wall = t0.elapsed().as_secs_f64();
    let after = stack.cpu();
    stack.check_alive()?;
    let cpu_pct = cpu_pct(&before, &after, wall);
    let rss_kib = stack.mem().into_iter().map(|(k, m)| (k, m.vm_rss_kib)).collect();
    let summary = std::mem::take(&mut out.samples).summarize(out.seconds);
    let row = Row {
        storage: stack.label(),
        target: target.to_owned(),
        connections: conns,
        summary,
        ratio_to_ceiling: None,
        cpu_pct,
        rss_kib,
        backlog: None,
    };
    Ok((row, out))
}

/// A small REST client for set-up calls (not measured).
struct Rest {
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<Bytes>,
    >,
    base: String,
}

impl Rest {
    fn new(addr: SocketAddr) -> Self {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        Self { client, base: format!("http://{addr}") }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        use http_body_util::BodyExt;
        let mut b = http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let resp = self.client.request(b.body(http_body_util::Full::new(body))?).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, v))
    }

    async fn expect(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        want: u16,
    ) -> anyhow::Result<Value> {
        let (status, v) = self.call(method.clone(), path, token, body).await?;
        if status != want {
            bail!("{method} {path}: expected {want}, got {status}: {v}");
        }
        Ok(v["data"].clone())
    }
}

/// Registers `n` users (tier raised to MAX through SQL); returns their tokens.
async fn make_users(stack: &Stack, rest: &Arc<Rest>, prefix: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let mut tokens = Vec::with_capacity(n);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let rest = rest.clone();
        let email = format!("{prefix}-{i}@bench.local");
        set.spawn(async move {
            let d = rest
                .expect(
                    Method::POST,
                    "/api/v1/auth/register",
                    None,
                    Some(json!({"email": email, "password": "bench-password-1"})),
                    201,
                )
                .await?;
            d["token"].as_str().map(str::to_owned).context("token")
        });
        if set.len() >= 4
            && let Some(r) = set.join_next().await
        {
            tokens.push(r??);
        }
    }
    while let Some(r) = set.join_next().await {
        tokens.push(r??);
    }
    stack
        .db
        .execute_unprepared(&format!("UPDATE users SET tier = 'MAX' WHERE email LIKE '{prefix}-%'"))
        .await?;
    Ok(tokens)
}

/// Creates `n` sessions spread over `tokens` (20 each) and waits until all are CONNECTED.
async fn make_sessions(
    stack: &Stack,
    rest: &Arc<Rest>,
    tokens: &[String],
    n: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(n);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let rest = rest.clone();
        let token = tokens[i / 20].clone();
        set.spawn(async move {
            let d = rest
                .expect(
                    Method::POST,
                    "/api/v1/sessions",
                    Some(&token),
                    Some(json!({"name": format!("bench {i}")})),
                    201,
                )
                .await?;
            Ok::<_, anyhow::Error>((
                d["sessionId"].as_str().context("sessionId")?.to_owned(),
                d["apiKey"].as_str().context("apiKey")?.to_owned(),
            ))
        });
        if set.len() >= 8
            && let Some(r) = set.join_next().await
        {
            out.push(r??);
        }
    }
    while let Some(r) = set.join_next().await {
        out.push(r??);
    }
    let start = Instant::now();
    loop {
        let connected =
            count(&stack.db, "SELECT COUNT(*) AS n FROM sessions WHERE status = 'CONNECTED'").await?;
        if connected as usize >= n {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("only {connected} of {n} sessions connected");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(out)
}
