//! Control-plane metrics: statics with a name and a description, rendered in
//! the Prometheus text format by [`render`].

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

pub struct Counter {
    pub name: &'static str,
    pub help: &'static str,
    value: AtomicU64,
}

impl Counter {
    const fn new(name: &'static str, help: &'static str) -> Self {
        Self { name, help, value: AtomicU64::new(0) }
    }
    pub fn inc(&self) {
        self.value.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    value: AtomicI64,
}

impl Gauge {
    const fn new(name: &'static str, help: &'static str) -> Self {
        Self { name, help, value: AtomicI64::new(0) }
    }
    pub fn set(&self, v: i64) {
        self.value.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }
}

pub static CONNECTED_WORKERS: Gauge =
    Gauge::new("wagate_cp_connected_workers", "Worker streams connected to this replica");
pub static WORKER_STREAMS_OPENED: Counter =
    Counter::new("wagate_cp_worker_streams_opened_total", "Worker streams accepted (after Hello)");
pub static WORKER_STREAMS_REJECTED: Counter = Counter::new(
    "wagate_cp_worker_streams_rejected_total",
    "Worker streams refused (auth, bad or late Hello)",
);
pub static WORKERS_LOST: Counter =
    Counter::new("wagate_cp_workers_lost_total", "Worker streams that ended or missed heartbeats");
pub static COMMANDS_REJECTED_BUSY: Counter = Counter::new(
    "wagate_cp_commands_rejected_busy_total",
    "Commands refused because a worker's channel was full",
);
pub static COMMANDS_TIMED_OUT: Counter = Counter::new(
    "wagate_cp_commands_timed_out_total",
    "Commands whose worker did not answer before the deadline",
);
pub static MESSAGES_SENT: Counter =
    Counter::new("wagate_cp_messages_sent_total", "Outbound messages acknowledged by a worker");
pub static MESSAGES_FAILED: Counter =
    Counter::new("wagate_cp_messages_failed_total", "Outbound messages that failed");
pub static SESSIONS_CREATED: Counter = Counter::new("wagate_cp_sessions_created_total", "Sessions created");
pub static SESSIONS_MOVED: Counter = Counter::new(
    "wagate_cp_sessions_moved_total",
    "Sessions placed on another worker (failover, drain, rebalance, waiting)",
);
pub static FAILOVERS: Counter =
    Counter::new("wagate_cp_failovers_total", "Lost workers whose sessions were failed over");
pub static MESSAGES_REDISPATCHED: Counter = Counter::new(
    "wagate_cp_messages_redispatched_total",
    "PENDING sends dispatched again after a session moved",
);
pub static SEND_REDISPATCHES: Counter = Counter::new(
    "wagate_send_redispatches_total",
    "SendMessage commands dispatched with an attempt number above 1 (re-dispatches)",
);
pub static STATUS_BATCHES: Counter =
    Counter::new("wagate_status_batches_total", "Message-status batches written by the status writer");
pub static STATUS_BATCH_RETRIES: Counter = Counter::new(
    "wagate_status_batch_retries_total",
    "Failed message-status batch writes (each is retried until written)",
);
pub static FLEET_TOTAL_SLOTS: Gauge =
    Gauge::new("wagate_fleet_total_slots", "Session slots of ONLINE workers");
pub static FLEET_USED_SLOTS: Gauge =
    Gauge::new("wagate_fleet_used_slots", "Session slots in use on ONLINE workers");
pub static FLEET_WAITING_SESSIONS: Gauge =
    Gauge::new("wagate_fleet_waiting_sessions", "Sessions waiting for a worker with free capacity");
pub static FLEET_RECOMMENDED_WORKERS: Gauge = Gauge::new(
    "wagate_fleet_recommended_workers",
    "Workers needed at the target utilisation (autoscaling signal)",
);

const COUNTERS: &[&Counter] = &[
    &WORKER_STREAMS_OPENED,
    &WORKER_STREAMS_REJECTED,
    &WORKERS_LOST,
    &COMMANDS_REJECTED_BUSY,
    &COMMANDS_TIMED_OUT,
    &MESSAGES_SENT,
    &MESSAGES_FAILED,
    &SESSIONS_CREATED,
    &SESSIONS_MOVED,
    &FAILOVERS,
    &MESSAGES_REDISPATCHED,
    &SEND_REDISPATCHES,
    &STATUS_BATCHES,
    &STATUS_BATCH_RETRIES,
];
const GAUGES: &[&Gauge] = &[
    &CONNECTED_WORKERS,
    &FLEET_TOTAL_SLOTS,
    &FLEET_USED_SLOTS,
    &FLEET_WAITING_SESSIONS,
    &FLEET_RECOMMENDED_WORKERS,
];

/// All metrics in the Prometheus text exposition format.
pub fn render() -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for c in COUNTERS {
        let _ =
            writeln!(out, "# HELP {} {}\n# TYPE {} counter\n{} {}", c.name, c.help, c.name, c.name, c.get());
    }
    for g in GAUGES {
        let _ =
            writeln!(out, "# HELP {} {}\n# TYPE {} gauge\n{} {}", g.name, g.help, g.name, g.name, g.get());
    }
    out
}
