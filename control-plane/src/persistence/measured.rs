//! Every typed persistence operation runs through [`measured`]: one
//! `wagate_db_operation_seconds` histogram sample per call, labelled with the
//! operation's name and outcome (the idea of neon's `with_measured_conn`).

use std::future::Future;
use std::time::Instant;

/// Runs `f`, recording its duration under `op`.
pub async fn measured<T, E, F>(op: &'static str, f: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let result = f.await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    ::metrics::histogram!("wagate_db_operation_seconds", "op" => op, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    result
}
