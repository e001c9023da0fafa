//! The figures of a run: latency percentiles and counts (`stats`), one
//! table row per target and connection count with the CPU and RSS of every
//! process, the backlog a send run left, the verification, and the peak-RSS
//! section printed after each storage.

pub mod stats;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::LimitsArg;
use crate::stack::procs::Mem;
use stats::Summary;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub storage: String,
    pub target: String,
    pub connections: usize,
    #[serde(flatten)]
    pub summary: Summary,
    /// sends/s ÷ ceiling req/s at the same C (send rows only).
    pub ratio_to_ceiling: Option<f64>,
    /// CPU used during the run, in % of one core, per process.
    pub cpu_pct: BTreeMap<String, f64>,
    /// VmRSS (KiB) of each process right after the run.
    pub rss_kib: BTreeMap<String, u64>,
    /// Send rows: what the run left behind and what it dispatched twice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<Backlog>,
}

impl Row {
    /// This (send) row with its ratio to the ceiling row of the same C.
    pub fn against(mut self, ceiling: &Row) -> Row {
        if ceiling.summary.rps > 0.0 {
            self.ratio_to_ceiling = Some(self.summary.rps / ceiling.summary.rps);
        }
        self
    }

    /// CPU µs that process `name` spent per request of this row (0 when
    /// nothing was served).
    pub fn cpu_us_per_request(&self, name: &str) -> f64 {
        if self.summary.rps <= 0.0 {
            return 0.0;
        }
        self.cpu_pct.get(name).copied().unwrap_or(0.0) * 10_000.0 / self.summary.rps
    }
}

/// The state of the pipeline right after a send run stopped.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Backlog {
    /// Messages still PENDING when the load stopped.
    pub pending_at_stop: i64,
    /// Of those, not acknowledged by any worker (the dispatch ledger).
    pub unacked_at_stop: i64,
    /// Time until no message was PENDING any more (capped at 20 s).
    pub pending_gone_ms: u64,
    /// `wagate_send_redispatches_total` of the control plane during the run
    /// and the drain.
    pub redispatches: u64,
    /// DELIVERED / READ rows written by the end of the drain (lifecycle check).
    pub delivered_or_read: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StorageReport {
    pub storage: String,
    pub limits: LimitsArg,
    pub sessions: usize,
    pub workers: usize,
    pub rows: Vec<Row>,
    /// Peak (VmHWM) and current RSS of each process at the end, KiB.
    pub memory: BTreeMap<String, Mem>,
    pub verification: Verification,
    /// PostgreSQL's own counters of the message tables (pg_stat_user_tables).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub table_stats: Vec<Value>,
    /// The webhook drain scenario's figures, one per C.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    pub accepted: usize,
    pub found_sent_or_later: usize,
    pub missing: usize,
    pub by_status: BTreeMap<String, i64>,
    /// How long after the last run until every accepted send was found.
    pub settle_ms: u64,
    pub ok: bool,
}

/// CPU % of each process between two [`Stack::cpu`] readings `wall` seconds
/// apart; the workers are summed as one.
pub fn cpu_pct(before: &[(String, u64)], after: &[(String, u64)], wall: f64) -> BTreeMap<String, f64> {
    let mut pct = BTreeMap::new();
    for ((name, b), (_, a)) in before.iter().zip(after.iter()) {
        let p = (a.saturating_sub(*b)) as f64 / crate::stack::procs::TICKS_PER_SEC / wall * 100.0;
        if name.starts_with("bench-worker") {
            *pct.entry("workers".to_owned()).or_insert(0.0) += p;
        } else {
            pct.insert(name.clone(), p);
        }
    }
    pct
}

pub fn print_header() {
    println!(
        "| storage | target | C | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | ÷ceiling | CPU% cp / edge / workers / bench / ceiling / pg / redis |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|");
}

pub fn print_row(r: &Row) {
    let c = |k: &str| r.cpu_pct.get(k).copied().unwrap_or(0.0);
    println!(
        "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} | {:.0} / {:.0} / {:.0} / {:.0} / {:.0} / {:.0} / {:.0} |",
        r.storage,
        r.target,
        r.connections,
        r.summary.rps,
        r.summary.p50_ms,
        r.summary.p90_ms,
        r.summary.p99_ms,
        r.summary.max_ms,
        r.summary.error_text(),
        r.ratio_to_ceiling.map(|x| format!("{x:.2}")).unwrap_or_else(|| "".into()),
        c("control-plane"),
        c("edge-gateway"),
        c("workers"),
        c("bench"),
        c("ceiling"),
        c("postgres"),
        c("redis"),
    );
}

/// The peak-RSS section printed after each storage: one line per process,
/// peak (VmHWM) and current (VmRSS) in MiB, then a blank line.
pub fn peak_rss(r: &StorageReport) -> String {
    let mut out = format!("peak RSS (VmHWM) per process, {}, limits {:?}:\n", r.storage, r.limits);
    for (name, m) in &r.memory {
        let _ = writeln!(
            out,
            "  {name:<16} {:>8.1} MiB peak, {:>8.1} MiB now",
            m.vm_hwm_kib as f64 / 1024.0,
            m.vm_rss_kib as f64 / 1024.0
        );
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(memory: &[(&str, u64, u64)]) -> StorageReport {
        StorageReport {
            storage: "sqlite".into(),
            limits: LimitsArg::On,
            sessions: 1,
            workers: 1,
            rows: Vec::new(),
            memory: memory
                .iter()
                .map(|&(n, hwm, rss)| (n.to_owned(), Mem { vm_hwm_kib: hwm, vm_rss_kib: rss }))
                .collect(),
            verification: Verification::default(),
            table_stats: Vec::new(),
            webhooks: None,
        }
    }

    #[test]
    fn peak_rss_shows_each_process_in_mib() {
        let text = peak_rss(&report(&[("control-plane", 59_392, 40_200), ("edge-gateway", 31_744, 26_400)]));
        assert_eq!(
            text,
            "peak RSS (VmHWM) per process, sqlite, limits On:\n\
             \x20 control-plane        58.0 MiB peak,     39.3 MiB now\n\
             \x20 edge-gateway         31.0 MiB peak,     25.8 MiB now\n\n"
        );
        assert!(!text.contains("{}"), "{text}");
    }
}
