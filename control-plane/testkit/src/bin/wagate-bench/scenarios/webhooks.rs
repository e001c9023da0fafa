//! The webhook drain scenario (issue 25): every session gets a webhook
//! (`message.status`) to a fast receiver in this process (a bare hyper
//! server that answers 200 and counts), then sends at C for T seconds with
//! the chosen lifecycle. Reported: sends/s, events queued, events/s that
//! reached the receiver during the load and after it, the outbox backlog
//! every second, the time until the backlog is empty, event → receiver
//! latency (from the event's `timestamp`), per-session order and duplicates
//! as the receiver saw them, CPU and RSS.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use http::{HeaderValue, Method};
use serde::Serialize;
use serde_json::{Value, json};

use sea_orm::ConnectionTrait;

use super::load::{self, Prepared};
use super::{Rest, measure};
use crate::Args;
use crate::report::{Row, print_row, stats};
use crate::stack::{Stack, count, procs};

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    ids: HashSet<String>,
    last_by_session: HashMap<String, String>,
    /// Event → receiver latency (µs) of every event.
    latencies_us: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BacklogPoint {
    pub t_s: f64,
    /// Rows in the outbox (all events queued so far).
    pub queued: i64,
    /// PENDING or RETRYING.
    pub pending: i64,
    /// Events the receiver got so far.
    pub received: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WebhookReport {
    pub connections: usize,
    pub seconds: f64,
    pub sends_per_s: f64,
    pub send_p99_ms: f64,
    pub events_queued: i64,
    pub received_during_load: u64,
    pub events_per_s_during_load: f64,
    pub pending_at_stop: i64,
    pub received_after_load: u64,
    pub events_per_s_after_load: f64,
    /// From the end of the load until the outbox was first empty (nothing PENDING/RETRYING).
    pub first_empty_ms: Option<u64>,
    /// Events received from the end of the load until the outbox was first
    /// empty, per second of that time (with `--hold-webhooks`: the drain
    /// rate of the backlog built during the load).
    pub events_per_s_until_empty: Option<f64>,
    /// From the end of the load until the outbox was empty and no event had
    /// been added for 2 s (the lifecycle's DELIVERED/READ come up to ≈ 11 s
    /// after a send); None: not within `--drain-secs`.
    pub drain_ms: Option<u64>,
    pub pending_at_end: i64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub backlog: Vec<BacklogPoint>,
}

const PENDING: &str = "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status IN ('PENDING', 'RETRYING')";
const QUEUED: &str = "SELECT COUNT(*) AS n FROM webhook_deliveries";

#[allow(clippy::too_many_arguments)]
pub async fn run(
    args: &Args,
    stack: &mut Stack,
    rest: &Arc<Rest>,
    tokens: &[String],
    sessions: &[(String, String)],
    warmup: Duration,
    duration: Duration,
    rows: &mut Vec<Row>,
    accepted: &mut Vec<String>,
) -> anyhow::Result<Vec<WebhookReport>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let port = procs::free_port()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let receiver = tokio::spawn(serve(listener, seen.clone()));
    let url = format!("http://127.0.0.1:{port}/hook");
    for (i, (id, _)) in sessions.iter().enumerate() {
        let (status, body) = rest
            .call(
                Method::PUT,
                &format!("/api/v1/sessions/{id}/webhook"),
                Some(&tokens[i / 20]),
                Some(json!({"url": url, "events": ["message.status"]})),
            )
            .await?;
        if status != 201 && status != 200 {
            bail!("PUT webhook of {id}: {status} {body}");
        }
    }
    let hooks = count(&stack.db, "SELECT COUNT(*) AS n FROM webhooks WHERE is_active = true").await?;
    if hooks as usize != sessions.len() {
        bail!("{hooks} webhooks active for {} sessions", sessions.len());
    }
    eprintln!("== {hooks} webhooks to {url} (message.status)");

    let send_body = Bytes::from_static(
        br#"{"to":"6281234567890","type":"text","message":"Hello from wagate-bench: a message of a typical size."}"#,
    );
    let send_reqs: Arc<Vec<Prepared>> = Arc::new(
        sessions
            .iter()
            .map(|(id, key)| Prepared {
                method: Method::POST,
                path: format!("/api/v1/sessions/{id}/send"),
                headers: vec![(
                    "x-api-key",
                    HeaderValue::from_str(key).unwrap_or(HeaderValue::from_static("")),
                )],
                body: send_body.clone(),
            })
            .collect(),
    );
    let edge = stack.edge_addr;
    let mut reports = Vec::new();
    for &c in &args.connections {
        let c = c.max(1);
        let received_at_start = seen.lock().map(|s| s.received).unwrap_or(0);
        let t0 = Instant::now();
        // The backlog every second while the load runs.
        let sampler = {
            let db = stack.db.clone();
            let seen = seen.clone();
            let stop = Arc::new(tokio::sync::Notify::new());
            let stop2 = stop.clone();
            let task = tokio::spawn(async move {
                let mut points = Vec::new();
                loop {
                    points.push(point(&db, &seen, t0).await);
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = stop2.notified() => break,
                    }
                }
                points
            });
            (task, stop)
        };
        if args.hold_webhooks {
            // Recorded, not delivered (as for a webhook the dispatcher disabled).
            stack
                .db
                .execute_unprepared(
                    "UPDATE webhooks SET is_active = false, disabled_reason = 'wagate-bench: held during the load'",
                )
                .await?;
        }
        let (mut send, out) = measure(stack, "send (webhooks on)", c, || {
            load::run(edge, send_reqs.clone(), c, warmup, duration, true)
        })
        .await?;
        if args.hold_webhooks {
            stack
                .db
                .execute_unprepared("UPDATE webhooks SET is_active = true, disabled_reason = NULL")
                .await?;
        }
        let load_s = t0.elapsed().as_secs_f64();
        let at_stop = seen.lock().map(|s| s.received).unwrap_or(0);
        sampler.1.notify_one();
        let mut backlog = sampler.0.await.unwrap_or_default();
        let pending_at_stop = count(&stack.db, PENDING).await?;
        accepted.extend(out.accepted_ids);
        // After the load: until the outbox is empty and no event was added
        // for 2 s (the lifecycle's DELIVERED/READ keep coming for ≈ 11 s), or the limit.
        let stopped = Instant::now();
        let before = stack.cpu();
        let mut drain_ms = None;
        let mut first_empty_ms = None;
        let mut received_until_empty = 0;
        let mut last_queued = -1;
        let mut stable_since = Instant::now();
        let limit = Duration::from_secs_f64(args.drain_secs.max(1.0));
        let mut next_point = Instant::now();
        loop {
            let p = point(&stack.db, &seen, t0).await;
            if p.queued != last_queued {
                last_queued = p.queued;
                stable_since = Instant::now();
            }
            let empty = p.pending == 0;
            if empty && first_empty_ms.is_none() {
                first_empty_ms = Some(stopped.elapsed().as_millis() as u64);
                received_until_empty = p.received.saturating_sub(at_stop);
            }
            if empty && drain_ms.is_none() && stable_since.elapsed() >= Duration::from_secs(2) {
                drain_ms = Some(stopped.elapsed().as_millis() as u64);
            }
            if Instant::now() >= next_point || drain_ms.is_some() {
                eprintln!(
                    "   t={:>6.1}s queued {:>7} pending {:>7} received {:>7}",
                    p.t_s, p.queued, p.pending, p.received
                );
                backlog.push(p);
                next_point += Duration::from_secs(1);
            }
            if drain_ms.is_some() || stopped.elapsed() >= limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let after_s = stopped.elapsed().as_secs_f64();
        let after_cpu = crate::report::cpu_pct(&before, &stack.cpu(), after_s);
        let (received_total, latencies, duplicates, out_of_order) = {
            let s = seen.lock().map_err(|_| anyhow::anyhow!("receiver state poisoned"))?;
            (s.received, s.latencies_us.clone(), s.duplicates, s.out_of_order)
        };
        let lat = stats::Samples { latencies_us: latencies, ..Default::default() }.summarize(1.0);
        let during = at_stop.saturating_sub(received_at_start);
        let after = received_total.saturating_sub(at_stop);
        let report = WebhookReport {
            connections: c,
            seconds: duration.as_secs_f64(),
            sends_per_s: send.summary.rps,
            send_p99_ms: send.summary.p99_ms,
            events_queued: count(&stack.db, QUEUED).await?,
            received_during_load: during,
            events_per_s_during_load: during as f64 / load_s,
            pending_at_stop,
            received_after_load: after,
            events_per_s_after_load: after as f64 / after_s,
            first_empty_ms,
            events_per_s_until_empty: first_empty_ms
                .filter(|ms| *ms > 0)
                .map(|ms| received_until_empty as f64 * 1000.0 / ms as f64),
            drain_ms,
            pending_at_end: count(&stack.db, PENDING).await?,
            latency_p50_ms: lat.p50_ms,
            latency_p99_ms: lat.p99_ms,
            latency_max_ms: lat.max_ms,
            duplicates,
            out_of_order,
            backlog,
        };
        print_row(&send);
        eprintln!(
            "== webhooks C={c}: {:.0} sends/s (p99 {:.1} ms); {} events queued; during the load {} received ({:.0}/s), {} pending at stop; after: {} received ({:.0}/s), first empty after {} ({} events/s until then), drained in {}, {} pending at the end; event -> receiver p50 {:.1} ms p99 {:.1} ms max {:.1} ms; {} duplicates, {} out of order",
            report.sends_per_s,
            report.send_p99_ms,
            report.events_queued,
            report.received_during_load,
            report.events_per_s_during_load,
            report.pending_at_stop,
            report.received_after_load,
            report.events_per_s_after_load,
            report.first_empty_ms.map_or_else(|| "(never)".to_owned(), |ms| format!("{ms} ms")),
            report.events_per_s_until_empty.map_or_else(|| "-".to_owned(), |r| format!("{r:.0}")),
            report.drain_ms.map_or_else(|| "(not drained)".to_owned(), |ms| format!("{ms} ms")),
            report.pending_at_end,
            report.latency_p50_ms,
            report.latency_p99_ms,
            report.latency_max_ms,
            report.duplicates,
            report.out_of_order,
        );
        let c = |k: &str| after_cpu.get(k).copied().unwrap_or(0.0);
        eprintln!(
            "== CPU% after the load: control plane {:.0}, postgres {:.0}, bench (receiver) {:.0}",
            c("control-plane"),
            c("postgres"),
            c("bench"),
        );
        // The dispatcher's own figures (count and mean of its timings).
        for line in metric_means(stack.metrics_addr).await {
            eprintln!("   {line}");
        }
        send.target =
            format!("send (webhooks on, {} events/s during)", report.events_per_s_during_load as u64);
        rows.push(send);
        reports.push(report);
    }
    receiver.abort();
    Ok(reports)
}

async fn point(db: &sea_orm::DatabaseConnection, seen: &Mutex<Seen>, t0: Instant) -> BacklogPoint {
    BacklogPoint {
        t_s: t0.elapsed().as_secs_f64(),
        queued: count(db, QUEUED).await.unwrap_or(-1),
        pending: count(db, PENDING).await.unwrap_or(-1),
        received: seen.lock().map(|s| s.received).unwrap_or(0),
    }
}

/// The receiver: answers 200 to every POST, counts events, checks order
/// per session and duplicates, and the latency from the event's timestamp.
async fn serve(listener: tokio::net::TcpListener, seen: Arc<Mutex<Seen>>) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let seen = seen.clone();
                async move {
                    use http_body_util::BodyExt;
                    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    observe(&seen, &body);
                    http::Response::builder()
                        .status(200)
                        .body(http_body_util::Full::new(Bytes::from_static(b"ok")))
                }
            });
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

fn observe(seen: &Mutex<Seen>, body: &[u8]) {
    let now = chrono::Utc::now();
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return };
    let id = v["id"].as_str().unwrap_or_default().to_owned();
    let session = v["sessionId"].as_str().unwrap_or_default().to_owned();
    let latency = v["timestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (now - t.with_timezone(&chrono::Utc)).num_microseconds().unwrap_or(0).max(0));
    let Ok(mut s) = seen.lock() else { return };
    s.received += 1;
    if let Some(us) = latency {
        s.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
    }
    if !s.ids.insert(id.clone()) {
        s.duplicates += 1;
        return;
    }
    match s.last_by_session.get(&session) {
        Some(last) if *last > id => s.out_of_order += 1,
        _ => {
            s.last_by_session.insert(session, id);
        }
    }
}

/// `count` and mean of the control plane's webhook attempt and outbox
/// statement timings (from its `/metrics`).
async fn metric_means(addr: std::net::SocketAddr) -> Vec<String> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>();
    let Ok(uri) = format!("http://{addr}/metrics").parse::<http::Uri>() else { return Vec::new() };
    let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(2), client.get(uri)).await else {
        return Vec::new();
    };
    let Ok(body) = resp.into_body().collect().await else { return Vec::new() };
    let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
    let mut sums: std::collections::BTreeMap<String, (f64, f64)> = std::collections::BTreeMap::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((k, v)) = l.rsplit_once(' ') else { continue };
        let v: f64 = v.trim().parse().unwrap_or(0.0);
        let interesting =
            k.contains("webhook") && (k.contains("_seconds_sum") || k.contains("_seconds_count"));
        if !interesting {
            continue;
        }
        let (name, is_sum) = match (k.replacen("_seconds_sum", "", 1), k.contains("_seconds_sum")) {
            (n, true) => (n, true),
            _ => (k.replacen("_seconds_count", "", 1), false),
        };
        let e = sums.entry(name).or_default();
        if is_sum { e.0 += v } else { e.1 += v }
    }
    sums.into_iter()
        .filter(|(_, (_, n))| *n > 0.0)
        .map(|(k, (sum, n))| format!("{k}: {n:.0} × {:.2} ms", sum / n * 1000.0))
        .collect()
}
