//! The churn scenario: `GET /sessions` of a user holding up to 20 sessions,
//! then session create + delete, each connection with its own user.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method};
use serde_json::json;

use super::load::{self, Prepared};
use super::{Rest, make_users, measure};
use crate::Args;
use crate::report::stats::Samples;
use crate::report::{Row, cpu_pct, print_row};
use crate::stack::Stack;

/// Runs the churn scenario with the users of the send scenario (`tokens`,
/// the first one holding `sessions` sessions up to 20); its rows go to `rows`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    args: &Args,
    stack: &mut Stack,
    rest: &Arc<Rest>,
    tokens: &[String],
    sessions: usize,
    warmup: Duration,
    duration: Duration,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    // GET /sessions of a user holding 20 sessions (the first send user).
    let list_token = tokens[0].clone();
    let n_first = sessions.min(20);
    let list_reqs = Arc::new(vec![Prepared {
        method: Method::GET,
        path: "/api/v1/sessions?page=1&limit=20".into(),
        headers: vec![("authorization", HeaderValue::from_str(&format!("Bearer {list_token}"))?)],
        body: Bytes::new(),
    }]);
    let cc = args.churn_connections.max(1);
    let edge = stack.edge_addr;
    let (list, _) = measure(stack, &format!("GET /sessions ({n_first} sessions)"), cc, || {
        load::run(edge, list_reqs.clone(), cc, warmup, duration, false)
    })
    .await?;
    print_row(&list);
    rows.push(list);
    // create + delete churn: one MAX user per connection.
    let churn_tokens = make_users(stack, rest, "churn", cc).await?;
    let (create_row, delete_row) = create_delete(stack, rest, &churn_tokens, warmup, duration).await?;
    rows.push(create_row);
    rows.push(delete_row);
    Ok(())
}

/// Session create + delete churn: each connection loops create → delete with its own user.
async fn create_delete(
    stack: &mut Stack,
    rest: &Arc<Rest>,
    tokens: &[String],
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<(Row, Row)> {
    let before = stack.cpu();
    let t0 = Instant::now();
    let measure_from = t0 + warmup;
    let end = measure_from + duration;
    let mut set = tokio::task::JoinSet::new();
    for (i, token) in tokens.iter().enumerate() {
        let rest = rest.clone();
        let token = token.clone();
        set.spawn(async move {
            let mut create = Samples::default();
            let mut delete = Samples::default();
            let mut n = 0u64;
            while Instant::now() < end {
                n += 1;
                let t = Instant::now();
                let r = rest
                    .call(
                        Method::POST,
                        "/api/v1/sessions",
                        Some(&token),
                        Some(json!({"name": format!("churn {i}-{n}")})),
                    )
                    .await;
                let measured = t >= measure_from;
                let (status, v) = match r {
                    Ok(x) => x,
                    Err(_) => {
                        create.io_errors += 1;
                        continue;
                    }
                };
                if measured {
                    create.record(status, t.elapsed().as_micros() as u64);
                }
                let Some(id) = v["data"]["sessionId"].as_str() else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let t = Instant::now();
                match rest.call(Method::DELETE, &format!("/api/v1/sessions/{id}"), Some(&token), None).await {
                    Ok((status, _)) if t >= measure_from => {
                        delete.record(status, t.elapsed().as_micros() as u64)
                    }
                    Ok(_) => {}
                    Err(_) => delete.io_errors += 1,
                }
            }
            (create, delete)
        });
    }
    let mut create = Samples::default();
    let mut delete = Samples::default();
    while let Some(r) = set.join_next().await {
        let (c, d) = r?;
        create.merge(c);
        delete.merge(d);
    }
    let wall = t0.elapsed().as_secs_f64();
    let after = stack.cpu();
    stack.check_alive()?;
    let cpu_pct = cpu_pct(&before, &after, wall);
    let rss_kib: BTreeMap<String, u64> = stack.mem().into_iter().map(|(k, m)| (k, m.vm_rss_kib)).collect();
    let secs = duration.as_secs_f64();
    let mk = |target: &str, s: Samples| Row {
        storage: stack.label(),
        target: target.to_owned(),
        connections: tokens.len(),
        summary: s.summarize(secs),
        ratio_to_ceiling: None,
        cpu_pct: cpu_pct.clone(),
        rss_kib: rss_kib.clone(),
        backlog: None,
    };
    let (a, b) = (mk("churn: create session", create), mk("churn: delete session", delete));
    print_row(&a);
    print_row(&b);
    Ok((a, b))
}
