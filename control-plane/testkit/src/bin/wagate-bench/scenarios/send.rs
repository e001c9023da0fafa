//! The send scenario, at each connection count C: the ceiling, the edge's
//! `/health` and `/health/ready` (one gRPC hop), then the sends across all
//! sessions (local and forwarded with `--replicas 2`, the other edge's with
//! `--compare-edge`); after each send run, the backlog it left and the
//! re-dispatches it caused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method};

use super::load::{self, Prepared};
use super::measure;
use crate::Args;
use crate::report::{Backlog, Row, print_row};
use crate::stack::{Stack, count};

/// Runs the send scenario; its rows go to `rows`, the ids of accepted sends
/// to `accepted` (verified against the database at the end).
pub async fn run(
    args: &Args,
    stack: &mut Stack,
    sessions: &[(String, String)],
    warmup: Duration,
    duration: Duration,
    rows: &mut Vec<Row>,
    accepted: &mut Vec<String>,
) -> anyhow::Result<()> {
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
    let ceiling_reqs = Arc::new(vec![Prepared {
        method: Method::POST,
        path: "/api/v1/sessions/x/send".into(),
        headers: vec![("x-api-key", HeaderValue::from_static("wag_x"))],
        body: send_body.clone(),
    }]);
    let health_reqs = Arc::new(vec![Prepared::get("/health")]);
    let hop_reqs = Arc::new(vec![Prepared::get("/health/ready")]);
    let (ceiling_addr, edge) = (stack.ceiling_addr, stack.edge_addr);
    for &c in &args.connections {
        let c = c.max(1);
        let (ceil, _) = measure(stack, "ceiling", c, || {
            load::run(ceiling_addr, ceiling_reqs.clone(), c, warmup, duration, false)
        })
        .await?;
        let (health, _) = measure(stack, "edge /health", c, || {
            load::run(edge, health_reqs.clone(), c, warmup, duration, false)
        })
        .await?;
        let (hop, _) = measure(stack, "edge /health/ready", c, || {
            load::run(edge, hop_reqs.clone(), c, warmup, duration, false)
        })
        .await?;
        let hop = hop.against(&ceil);
        // `--replicas 2`: the same sends through the workers' replica first.
        let local = match stack.edge_local.as_ref().map(|(_, a)| *a) {
            Some(addr) => {
                let (r, out) = measure(stack, "send (local)", c, || {
                    load::run(addr, send_reqs.clone(), c, warmup, duration, true)
                })
                .await?;
                accepted.extend(out.accepted_ids);
                Some(r.against(&ceil))
            }
            None => None,
        };
        let send_name = if local.is_some() { "send (forwarded)" } else { "send" };
        let redispatched_before = redispatches(stack.metrics_addr).await;
        let (send, out) =
            measure(stack, send_name, c, || load::run(edge, send_reqs.clone(), c, warmup, duration, true))
                .await?;
        let mut send = send.against(&ceil);
        let mut backlog = backlog(stack).await?;
        let after = redispatches(stack.metrics_addr).await;
        backlog.redispatches = after.unwrap_or(0).saturating_sub(redispatched_before.unwrap_or(0));
        // `--compare-edge`: the other edge's /health and sends, right after.
        let mut compare = Vec::new();
        if let Some(addr) = stack.edge_compare.as_ref().map(|(_, a)| *a) {
            let (h, _) = measure(stack, "edge /health (compare)", c, || {
                load::run(addr, health_reqs.clone(), c, warmup, duration, false)
            })
            .await?;
            let (r, out) = measure(stack, "send (compare)", c, || {
                load::run(addr, send_reqs.clone(), c, warmup, duration, true)
            })
            .await?;
            accepted.extend(out.accepted_ids);
            compare.extend([h, r.against(&ceil)]);
        }
        for r in [&ceil, &health, &hop].into_iter().chain(local.as_ref()).chain([&send]).chain(&compare) {
            print_row(r);
        }
        eprintln!(
            "== after C={c}: {} PENDING at stop ({} unacknowledged), none PENDING after {} ms, {} re-dispatches{}, {} DELIVERED/READ",
            backlog.pending_at_stop,
            backlog.unacked_at_stop,
            backlog.pending_gone_ms,
            backlog.redispatches,
            if after.is_none() { " (metrics not scraped)" } else { "" },
            backlog.delivered_or_read,
        );
        if send.summary.rps > 0.0 {
            let per = |k: &str| send.cpu_us_per_request(k);
            eprintln!(
                "== CPU per send at C={c}: control plane {:.0} µs, edge {:.0} µs, workers {:.0} µs, postgres {:.0} µs, redis {:.0} µs",
                per("control-plane"),
                per("edge-gateway"),
                per("workers"),
                per("postgres"),
                per("redis"),
            );
        }
        if hop.summary.rps > 0.0 {
            let per = |k: &str| hop.cpu_us_per_request(k);
            eprintln!(
                "== one edge -> control plane gRPC hop at C={c} (/health/ready): {:.0} req/s = {:.2} of the ceiling; CPU per request: control plane {:.0} µs, edge {:.0} µs",
                hop.summary.rps,
                hop.ratio_to_ceiling.unwrap_or(0.0),
                per("control-plane"),
                per("edge-gateway"),
            );
        }
        send.backlog = Some(backlog);
        accepted.extend(out.accepted_ids);
        rows.extend([ceil, health, hop].into_iter().chain(local).chain([send]).chain(compare));
    }
    Ok(())
}

/// Measures the PENDING backlog right after a send run and how long it
/// takes to drain.
async fn backlog(stack: &Stack) -> anyhow::Result<Backlog> {
    const PENDING: &str = "SELECT COUNT(*) AS n FROM messages WHERE status = 'PENDING'";
    let t0 = Instant::now();
    let pending_at_stop = count(&stack.db, PENDING).await?;
    let unacked_at_stop = count(&stack.db, "SELECT COUNT(*) AS n FROM message_dispatch").await.unwrap_or(-1);
    let mut pending = pending_at_stop;
    while pending > 0 && t0.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        pending = count(&stack.db, PENDING).await?;
    }
    let pending_gone_ms = t0.elapsed().as_millis() as u64;
    let delivered_or_read =
        count(&stack.db, "SELECT COUNT(*) AS n FROM messages WHERE status IN ('DELIVERED', 'READ')").await?;
    Ok(Backlog { pending_at_stop, unacked_at_stop, pending_gone_ms, redispatches: 0, delivered_or_read })
}

/// Re-dispatched sends so far: `wagate_send_redispatches_total`, or on
/// control planes before it, `wagate_cp_messages_redispatched_total`.
async fn redispatches(addr: SocketAddr) -> Option<u64> {
    match scrape(addr, "wagate_send_redispatches_total").await {
        Some(n) => Some(n),
        None => scrape(addr, "wagate_cp_messages_redispatched_total").await,
    }
}

/// One counter of the control plane's `/metrics` (None: not served / absent).
async fn scrape(addr: SocketAddr, name: &str) -> Option<u64> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>();
    let uri: http::Uri = format!("http://{addr}/metrics").parse().ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(2), client.get(uri)).await.ok()?.ok()?;
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| v.trim().parse::<f64>().unwrap_or(0.0) as u64)
        .reduce(|a, b| a + b)
}
