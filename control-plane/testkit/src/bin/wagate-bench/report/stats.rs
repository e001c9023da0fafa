//! Exact latency statistics (all samples kept, sorted once) and the
//! per-target result of one load run.

use std::collections::BTreeMap;

use serde::Serialize;

/// Samples of one load run: latency of every completed request (µs) and
/// outcome counts.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    pub latencies_us: Vec<u32>,
    /// HTTP status → count.
    pub statuses: BTreeMap<u16, u64>,
    /// Connection-level failures (connect, reset, timeout).
    pub io_errors: u64,
}

impl Samples {
    pub fn record(&mut self, status: u16, latency_us: u64) {
        self.latencies_us.push(u32::try_from(latency_us).unwrap_or(u32::MAX));
        *self.statuses.entry(status).or_default() += 1;
    }

    pub fn merge(&mut self, other: Samples) {
        self.latencies_us.extend(other.latencies_us);
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        self.io_errors += other.io_errors;
    }

    /// Summary over `seconds` of measured time.
    pub fn summarize(mut self, seconds: f64) -> Summary {
        self.latencies_us.sort_unstable();
        let n = self.latencies_us.len() as u64;
        let ok = self.statuses.iter().filter(|(s, _)| (200..300).contains(*s)).map(|(_, c)| *c).sum::<u64>();
        let mut errors: BTreeMap<String, u64> = self
            .statuses
            .iter()
            .filter(|(s, _)| !(200..300).contains(*s))
            .map(|(s, c)| (s.to_string(), *c))
            .collect();
        if self.io_errors > 0 {
            errors.insert("io".into(), self.io_errors);
        }
        let ms = |us: u32| f64::from(us) / 1000.0;
        let sum: u64 = self.latencies_us.iter().map(|&l| u64::from(l)).sum();
        Summary {
            requests: n,
            ok,
            rps: if seconds > 0.0 { ok as f64 / seconds } else { 0.0 },
            mean_ms: if n > 0 { sum as f64 / n as f64 / 1000.0 } else { 0.0 },
            p50_ms: ms(percentile(&self.latencies_us, 0.50)),
            p90_ms: ms(percentile(&self.latencies_us, 0.90)),
            p99_ms: ms(percentile(&self.latencies_us, 0.99)),
            max_ms: ms(self.latencies_us.last().copied().unwrap_or_default()),
            errors,
        }
    }
}

/// Nearest-rank percentile of sorted samples (0 when empty).
pub fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Completed requests (any status).
    pub requests: u64,
    /// 2xx answers.
    pub ok: u64,
    /// 2xx answers per second.
    pub rps: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Non-2xx status (or "io") → count.
    pub errors: BTreeMap<String, u64>,
}

impl Summary {
    pub fn error_text(&self) -> String {
        if self.errors.is_empty() {
            return "0".into();
        }
        self.errors.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.50), 50);
        assert_eq!(percentile(&v, 0.90), 90);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn summary_counts_errors_and_rate() {
        let mut a = Samples::default();
        for i in 0..10 {
            a.record(200, 1000 * (i + 1));
        }
        let mut b = Samples::default();
        b.record(503, 50_000);
        b.io_errors = 2;
        a.merge(b);
        let s = a.summarize(2.0);
        assert_eq!(s.requests, 11);
        assert_eq!(s.ok, 10);
        assert!((s.rps - 5.0).abs() < 1e-9);
        assert_eq!(s.errors.get("503"), Some(&1));
        assert_eq!(s.errors.get("io"), Some(&2));
        assert!((s.max_ms - 50.0).abs() < 1e-9);
        assert!((s.p50_ms - 6.0).abs() < 1e-9);
        assert_eq!(s.error_text(), "503:1 io:2");
    }
}
