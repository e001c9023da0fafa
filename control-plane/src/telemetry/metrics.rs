//! Control-plane metrics through the `metrics` facade (rendered by the
//! Prometheus recorder of [`wagate_proto::telemetry`]). The unlabelled
//! counters and gauges keep their statics (`metrics::SESSIONS_CREATED.inc()`);
//! labelled series have a name constant and a small recording function.

use std::time::Duration;

pub struct Counter {
    pub name: &'static str,
    pub help: &'static str,
}

impl Counter {
    const fn new(name: &'static str, help: &'static str) -> Self {
        Self { name, help }
    }
    pub fn inc(&self) {
        ::metrics::counter!(self.name).increment(1);
    }
}

pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
}

impl Gauge {
    const fn new(name: &'static str, help: &'static str) -> Self {
        Self { name, help }
    }
    pub fn set(&self, v: i64) {
        ::metrics::gauge!(self.name).set(v as f64);
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
pub static SESSIONS_QR_EXPIRED: Counter = Counter::new(
    "wagate_cp_sessions_qr_expired_total",
    "Unpaired sessions stopped after the QR timeout (worker slot freed)",
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
pub static STATUS_BATCHES: Counter = Counter::new(
    crate::persistence::status_writer::STATUS_BATCHES,
    "Message-status batches written by the status writer",
);
pub static STATUS_BATCH_RETRIES: Counter = Counter::new(
    crate::persistence::status_writer::STATUS_BATCH_RETRIES,
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

/// Latency of gRPC calls served, labelled `method` (`/wagate.v1.SessionService/GetSession`) and `code`.
pub const GRPC_SERVER_DURATION: &str = "wagate_cp_grpc_request_duration_seconds";
/// Round trip of a command to a worker, labelled `kind` and `outcome` (ok, error, busy, timeout, gone).
pub const COMMAND_DURATION: &str = "wagate_cp_command_duration_seconds";
/// Outcomes of sends, labelled `outcome` (sent, failed, pending, refused).
pub const SEND_OUTCOMES: &str = "wagate_cp_send_outcomes_total";
/// Re-dispatch rounds of unacknowledged sends, labelled `result` (dispatched;
/// empty: rows found, all claimed elsewhere meanwhile).
pub const REDISPATCH_ROUNDS: &str = "wagate_cp_redispatch_rounds_total";

pub static SERVING: Gauge = Gauge::new(
    "wagate_cp_serving",
    "1 while this replica's grpc.health status is SERVING (database and cache answer), 0 while NOT_SERVING",
);
/// Sessions by status (`status` label: INIT, QR_REQUIRED, CONNECTED, …), counted in the database.
pub const SESSIONS_BY_STATUS: &str = "wagate_sessions";
pub static EMAILS_ENQUEUED: Counter =
    Counter::new("wagate_emails_enqueued_total", "Emails written to the email outbox (after de-duplication)");
pub static EMAIL_BACKLOG: Gauge =
    Gauge::new("wagate_email_backlog", "Emails waiting in the outbox (PENDING or RETRYING)");
pub static EMAIL_OLDEST_PENDING: Gauge = Gauge::new(
    "wagate_email_oldest_pending_seconds",
    "Age in seconds of the oldest email waiting in the outbox (0 when none)",
);
/// Email send attempts by outcome (`sent`, `retrying`, `failed`).
pub const EMAIL_ATTEMPTS: &str = "wagate_email_attempts_total";

const COUNTERS: &[&Counter] = &[
    &EMAILS_ENQUEUED,
    &WORKER_STREAMS_OPENED,
    &WORKER_STREAMS_REJECTED,
    &WORKERS_LOST,
    &COMMANDS_REJECTED_BUSY,
    &COMMANDS_TIMED_OUT,
    &MESSAGES_SENT,
    &MESSAGES_FAILED,
    &SESSIONS_CREATED,
    &SESSIONS_MOVED,
    &SESSIONS_QR_EXPIRED,
    &FAILOVERS,
    &MESSAGES_REDISPATCHED,
    &SEND_REDISPATCHES,
    &STATUS_BATCHES,
    &STATUS_BATCH_RETRIES,
];
const GAUGES: &[&Gauge] = &[
    &SERVING,
    &EMAIL_BACKLOG,
    &EMAIL_OLDEST_PENDING,
    &CONNECTED_WORKERS,
    &FLEET_TOTAL_SLOTS,
    &FLEET_USED_SLOTS,
    &FLEET_WAITING_SESSIONS,
    &FLEET_RECOMMENDED_WORKERS,
];

/// Installs the recorder, describes every metric and registers the
/// unlabelled ones at zero so that they are scraped before their first event.
pub fn describe() {
    wagate_proto::telemetry::prometheus();
    for c in COUNTERS {
        ::metrics::describe_counter!(c.name, c.help);
        ::metrics::counter!(c.name).increment(0);
    }
    for g in GAUGES {
        ::metrics::describe_gauge!(g.name, g.help);
        ::metrics::gauge!(g.name).increment(0.0);
    }
    ::metrics::describe_histogram!(
        GRPC_SERVER_DURATION,
        ::metrics::Unit::Seconds,
        "Latency of gRPC calls served"
    );
    ::metrics::describe_histogram!(
        COMMAND_DURATION,
        ::metrics::Unit::Seconds,
        "Round trip of commands to workers"
    );
    ::metrics::describe_counter!(SEND_OUTCOMES, "Sends by outcome");
    ::metrics::describe_histogram!(
        crate::persistence::measured::DB_OPERATION_SECONDS,
        ::metrics::Unit::Seconds,
        "Database operations by name and outcome"
    );
    ::metrics::describe_counter!(
        crate::persistence::measured::DB_OPERATION_ERRORS,
        "Failed database operations by name and error kind (unique_violation, not_found, connection, timeout, other)"
    );
    ::metrics::describe_counter!(REDISPATCH_ROUNDS, "Re-dispatch rounds of unacknowledged sends by result");
    ::metrics::describe_gauge!(
        SESSIONS_BY_STATUS,
        "Sessions by status, counted in the database (every replica reports the same figures)"
    );
    ::metrics::describe_counter!(EMAIL_ATTEMPTS, "Email send attempts by outcome (sent, retrying, failed)");
}

/// Sessions of each status (`counts`: status name → how many; statuses absent read 0).
pub fn sessions_by_status(counts: &[(String, i64)]) {
    for status in ["INIT", "QR_REQUIRED", "CONNECTED", "DISCONNECTED", "RECONNECTING", "ERROR"] {
        let n = counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
        ::metrics::gauge!(SESSIONS_BY_STATUS, "status" => status).set(n as f64);
    }
}

/// One email send attempt's outcome.
pub fn email_attempt(outcome: &'static str) {
    ::metrics::counter!(EMAIL_ATTEMPTS, "outcome" => outcome).increment(1);
}

/// One re-dispatch round (`dispatched` or `empty`).
pub fn redispatch_round(result: &'static str) {
    ::metrics::counter!(REDISPATCH_ROUNDS, "result" => result).increment(1);
}

/// One command round trip to a worker.
pub fn command(kind: &'static str, outcome: &'static str, elapsed: Duration) {
    ::metrics::histogram!(COMMAND_DURATION, "kind" => kind, "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

/// One send's outcome.
pub fn send_outcome(outcome: &'static str) {
    ::metrics::counter!(SEND_OUTCOMES, "outcome" => outcome).increment(1);
}
