//! What the runs left in the database: every accepted send must be there as
//! SENT or later (no lost messages), and PostgreSQL's own counters of the
//! message tables.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::report::Verification;
use crate::stack::Stack;

/// Inserts, updates, HOT updates and deletes of the message tables.
pub async fn table_stats(stack: &Stack) -> Vec<Value> {
    if stack.storage != "postgres" {
        return Vec::new();
    }
    // The statistics are flushed shortly after each transaction.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let rows = stack
        .db
        .query_all_raw(Statement::from_string(
            stack.db.get_database_backend(),
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, n_live_tup, n_dead_tup \
             FROM pg_stat_user_tables WHERE relname IN ('messages', 'message_dispatch') ORDER BY relname"
                .to_owned(),
        ))
        .await
        .unwrap_or_default();
    let mut out = Vec::new();
    for r in rows {
        let g = |c: &str| r.try_get::<i64>("", c).unwrap_or(-1);
        let name: String = r.try_get("", "relname").unwrap_or_default();
        let (upd, hot) = (g("n_tup_upd"), g("n_tup_hot_upd"));
        eprintln!(
            "== pg_stat_user_tables {name}: {} inserts, {upd} updates ({hot} HOT, {:.0} %), {} deletes, {} live, {} dead",
            g("n_tup_ins"),
            if upd > 0 { hot as f64 * 100.0 / upd as f64 } else { 0.0 },
            g("n_tup_del"),
            g("n_live_tup"),
            g("n_dead_tup"),
        );
        out.push(json!({
            "table": name, "inserts": g("n_tup_ins"), "updates": upd, "hot_updates": hot,
            "deletes": g("n_tup_del"), "live": g("n_live_tup"), "dead": g("n_dead_tup"),
        }));
    }
    out
}

pub async fn verify(stack: &Stack, accepted: &[String]) -> anyhow::Result<Verification> {
    if accepted.is_empty() {
        return Ok(Verification { ok: true, ..Default::default() });
    }
    // Batched status writes land shortly after the answer: poll until every
    // accepted send is found, or 20 s passed.
    let backend = stack.db.get_database_backend();
    let t0 = Instant::now();
    let found: HashSet<String> = loop {
        let rows = stack
            .db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT id FROM messages WHERE status IN ('SENT','DELIVERED','READ')".to_owned(),
            ))
            .await?;
        let found: HashSet<String> = rows.iter().filter_map(|r| r.try_get::<String>("", "id").ok()).collect();
        if accepted.iter().all(|id| found.contains(id)) || t0.elapsed() > Duration::from_secs(20) {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let settle_ms = t0.elapsed().as_millis() as u64;
    let present = accepted.iter().filter(|id| found.contains(*id)).count();
    let by = stack
        .db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT status, COUNT(*) AS n FROM messages GROUP BY status".to_owned(),
        ))
        .await?;
    let by_status = by
        .iter()
        .filter_map(|r| Some((r.try_get::<String>("", "status").ok()?, r.try_get::<i64>("", "n").ok()?)))
        .collect();
    let v = Verification {
        accepted: accepted.len(),
        found_sent_or_later: present,
        missing: accepted.len() - present,
        by_status,
        settle_ms,
        ok: present == accepted.len(),
    };
    eprintln!(
        "== verification: {} accepted sends, {} in the database as SENT or later (after {} ms), {} missing {:?}",
        v.accepted, v.found_sent_or_later, v.settle_ms, v.missing, v.by_status
    );
    Ok(v)
}
