//! Process metrics for heartbeats, read with `sysinfo`.

use std::time::Duration;

use sysinfo::{MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use wagate_proto::v1;

/// Shortest heartbeat interval the worker accepts from `Welcome`.
pub const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
/// Interval used when `Welcome.heartbeat_interval_ms` is 0.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// The heartbeat interval to use for `Welcome.heartbeat_interval_ms`.
pub fn heartbeat_interval(ms: u32) -> Duration {
    if ms == 0 {
        DEFAULT_HEARTBEAT_INTERVAL
    } else {
        Duration::from_millis(u64::from(ms)).max(MIN_HEARTBEAT_INTERVAL)
    }
}

/// One reading of this process's resource use.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProcessSample {
    /// Percent of one core x cores (0..100*cores), since the previous sample.
    pub cpu_usage: f64,
    /// Resident memory in percent of the machine's (or cgroup's) memory.
    pub memory_usage: f64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
}

/// Reads this process's CPU and memory use. CPU usage is measured between two
/// calls of [`ProcessMetrics::sample`], so keep one instance around.
pub struct ProcessMetrics {
    system: System,
    pid: Option<Pid>,
    total_memory: u64,
}

impl std::fmt::Debug for ProcessMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessMetrics")
            .field("pid", &self.pid)
            .field("total_memory", &self.total_memory)
            .finish()
    }
}

impl Default for ProcessMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessMetrics {
    pub fn new() -> Self {
        let mut system = System::new();
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let machine = system.total_memory();
        // In a container the cgroup limit is the memory that matters.
        let total_memory = match system.cgroup_limits() {
            Some(limits) if limits.total_memory > 0 && (machine == 0 || limits.total_memory < machine) => {
                limits.total_memory
            }
            _ => machine,
        };
        let pid = sysinfo::get_current_pid().ok();
        let mut metrics = Self { system, pid, total_memory };
        // Prime the CPU counters so the first real sample has a baseline.
        metrics.refresh();
        metrics
    }

    fn refresh(&mut self) {
        if let Some(pid) = self.pid {
            self.system.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                true,
                ProcessRefreshKind::nothing().with_cpu().with_memory(),
            );
        }
    }

    /// Current CPU use (since the previous sample), memory use and RSS.
    pub fn sample(&mut self) -> ProcessSample {
        self.refresh();
        let Some(process) = self.pid.and_then(|pid| self.system.process(pid)) else {
            return ProcessSample::default();
        };
        let rss_bytes = process.memory();
        let memory_usage =
            if self.total_memory > 0 { rss_bytes as f64 * 100.0 / self.total_memory as f64 } else { 0.0 };
        let cpu = f64::from(process.cpu_usage());
        ProcessSample { cpu_usage: if cpu.is_finite() { cpu.max(0.0) } else { 0.0 }, memory_usage, rss_bytes }
    }
}

/// The heartbeat message for a sample and the worker's counters.
pub fn heartbeat(
    sample: ProcessSample,
    session_count: usize,
    message_count: u64,
    uptime: Duration,
) -> v1::Heartbeat {
    v1::Heartbeat {
        cpu_usage: sample.cpu_usage,
        memory_usage: sample.memory_usage,
        session_count: u32::try_from(session_count).unwrap_or(u32::MAX),
        message_count,
        uptime_seconds: uptime.as_secs(),
        rss_bytes: sample.rss_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_has_a_floor_and_a_default() {
        assert_eq!(heartbeat_interval(0), DEFAULT_HEARTBEAT_INTERVAL);
        assert_eq!(heartbeat_interval(10), MIN_HEARTBEAT_INTERVAL);
        assert_eq!(heartbeat_interval(2500), Duration::from_millis(2500));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn samples_real_process_metrics() {
        let mut metrics = ProcessMetrics::new();
        // Burn a little CPU so there is something to measure.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let sample = metrics.sample();
        assert!(sample.rss_bytes > 0, "{sample:?}");
        assert!(sample.memory_usage > 0.0 && sample.memory_usage < 100.0, "{sample:?}");
        assert!(sample.cpu_usage >= 0.0, "{sample:?}");
        let hb = heartbeat(sample, 3, 9, Duration::from_millis(61_500));
        assert_eq!((hb.session_count, hb.message_count, hb.uptime_seconds), (3, 9, 61));
        assert_eq!(hb.rss_bytes, sample.rss_bytes);
    }
}
