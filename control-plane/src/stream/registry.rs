//! Live worker streams of this replica, and command/reply correlation.
//!
//! Each connected worker has one [`WorkerConn`]: a bounded channel into its
//! outbound stream and a map of pending requests (u64 request id → oneshot).
//! Entries are keyed by (worker id, generation) and removed by the
//! [`Registration`] guard's `Drop`, so a reconnect of the same worker
//! preempts the stale stream and the stale stream's end cannot remove the new
//! entry. The generation is the worker's durable stream epoch (bumped in the
//! database by every Hello), so it also orders streams across replicas.
//!
//! Callers do not use the registry to reach a worker: they go through
//! [`crate::dispatch::Dispatcher`], which tries the local stream first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use wagate_proto::CommandSet;
use wagate_proto::error::{ApiError, ErrorCode};
use wagate_proto::v1::{Command, CommandResult, ControlMessage, command, control_message};

use crate::telemetry::metrics;

/// What goes down a worker's stream.
pub type Outbound = Result<ControlMessage, tonic::Status>;

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("worker {0} is not connected")]
    NotConnected(String),
    #[error("worker {0} is busy")]
    Busy(String),
    #[error("worker {0} did not answer in time")]
    Timeout(String),
    #[error("worker {0} went away before answering")]
    StreamClosed(String),
    #[error("the route to worker {0} cannot be looked up right now")]
    RouteUnavailable(String),
    /// The worker's stream protocol does not know the command: never sent.
    #[error("{0}")]
    Unsupported(String),
}

impl From<DispatchError> for ApiError {
    fn from(e: DispatchError) -> Self {
        match &e {
            DispatchError::NotConnected(_) | DispatchError::StreamClosed(_) => {
                ApiError::new(ErrorCode::WorkerUnavailable, e.to_string()).with_retry_after(2)
            }
            DispatchError::Busy(_) => ApiError::new(ErrorCode::WorkerBusy, e.to_string()).with_retry_after(1),
            DispatchError::Timeout(_) => ApiError::new(ErrorCode::DeadlineExceeded, e.to_string()),
            DispatchError::RouteUnavailable(_) => {
                ApiError::new(ErrorCode::Unavailable, e.to_string()).with_retry_after(1)
            }
            DispatchError::Unsupported(_) => ApiError::new(ErrorCode::NotSupportedByWorker, e.to_string()),
        }
    }
}

/// The `outcome` label of a command's result.
fn command_outcome(result: &Result<CommandResult, DispatchError>) -> &'static str {
    match result {
        Ok(r) if r.ok => "ok",
        Ok(_) => "error",
        Err(DispatchError::Busy(_)) => "busy",
        Err(DispatchError::Timeout(_)) => "timeout",
        Err(DispatchError::NotConnected(_) | DispatchError::StreamClosed(_)) => "gone",
        Err(DispatchError::RouteUnavailable(_)) => "unreachable",
        Err(DispatchError::Unsupported(_)) => "unsupported",
    }
}

/// One live worker stream.
pub struct WorkerConn {
    pub worker_id: String,
    pub generation: u64,
    /// The stream protocol version negotiated in the handshake.
    pub protocol_version: u32,
    /// The commands the worker declared in `Hello.commands`.
    pub commands: CommandSet,
    tx: mpsc::Sender<Outbound>,
    pending: Mutex<HashMap<u64, oneshot::Sender<CommandResult>>>,
    next_request_id: AtomicU64,
    /// Cancelled when the stream must end (preempted, shutdown).
    pub cancel: CancellationToken,
}

impl WorkerConn {
    /// Sends a command and waits for its result until `deadline`; its round
    /// trip is recorded by kind and outcome.
    pub async fn call(
        &self,
        kind: command::Kind,
        deadline: Duration,
    ) -> Result<CommandResult, DispatchError> {
        let label = kind.kind().name();
        let started = std::time::Instant::now();
        let result = self.call_inner(kind, deadline).await;
        metrics::command(label, command_outcome(&result), started.elapsed());
        result
    }

    async fn call_inner(
        &self,
        kind: command::Kind,
        deadline: Duration,
    ) -> Result<CommandResult, DispatchError> {
        if !self.commands.contains(kind.kind()) {
            return Err(DispatchError::Unsupported(format!(
                "the worker running this session does not support the {} command (it runs: {})",
                kind.kind(),
                self.commands
            )));
        }
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        self.lock_pending().insert(request_id, reply_tx);
        // Removes the pending entry however this future ends (answer,
        // timeout, or the caller giving up), so the map never leaks.
        let _pending = PendingGuard { conn: self, request_id };
        let deadline_ms = u32::try_from(deadline.as_millis()).unwrap_or(u32::MAX);
        let msg = ControlMessage {
            kind: Some(control_message::Kind::Command(Command { request_id, deadline_ms, kind: Some(kind) })),
        };
        match self.tx.try_send(Ok(msg)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::COMMANDS_REJECTED_BUSY.inc();
                return Err(DispatchError::Busy(self.worker_id.clone()));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(DispatchError::NotConnected(self.worker_id.clone()));
            }
        }
        match tokio::time::timeout(deadline, reply_rx).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) => Err(DispatchError::StreamClosed(self.worker_id.clone())),
            Err(_) => {
                metrics::COMMANDS_TIMED_OUT.inc();
                Err(DispatchError::Timeout(self.worker_id.clone()))
            }
        }
    }

    /// Sends a message that expects no reply (Drain).
    pub async fn send(&self, msg: ControlMessage) -> bool {
        self.tx.send(Ok(msg)).await.is_ok()
    }

    /// Hands a result to the caller waiting for it; late results (caller
    /// gave up) are dropped.
    pub fn complete(&self, result: CommandResult) -> bool {
        let sender = self.lock_pending().remove(&result.request_id);
        match sender {
            Some(tx) => tx.send(result).is_ok(),
            None => false,
        }
    }

    pub fn pending_count(&self) -> usize {
        self.lock_pending().len()
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<CommandResult>>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

struct PendingGuard<'a> {
    conn: &'a WorkerConn,
    request_id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.conn.lock_pending().remove(&self.request_id);
    }
}

#[derive(Default)]
pub struct Registry {
    workers: RwLock<HashMap<String, Arc<WorkerConn>>>,
}

impl Registry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers a new stream for `worker_id` with its stream epoch
    /// (`generation`), negotiated protocol version and declared commands, preempting any older
    /// one. `welcome` is queued on the stream before the connection becomes
    /// reachable, so it is the first message the worker reads (no command
    /// can overtake it). Returns the connection, the receiving end of its
    /// outbound channel and the guard whose drop unregisters it.
    pub fn register(
        self: &Arc<Self>,
        worker_id: &str,
        generation: u64,
        protocol_version: u32,
        commands: CommandSet,
        capacity: usize,
        welcome: ControlMessage,
    ) -> (Arc<WorkerConn>, mpsc::Receiver<Outbound>, Registration) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        // A fresh channel with room for one: cannot fail.
        let _ = tx.try_send(Ok(welcome));
        let conn = Arc::new(WorkerConn {
            worker_id: worker_id.to_owned(),
            generation,
            protocol_version,
            commands,
            tx,
            pending: Mutex::new(HashMap::new()),
            next_request_id: AtomicU64::new(1),
            cancel: CancellationToken::new(),
        });
        let old = self.write().insert(worker_id.to_owned(), conn.clone());
        if let Some(old) = old {
            tracing::info!(
                worker_id,
                old_generation = old.generation,
                generation,
                "worker reconnected, preempting stale stream"
            );
            old.cancel.cancel();
        }
        metrics::CONNECTED_WORKERS.set(self.len() as i64);
        let guard =
            Registration { registry: Arc::downgrade(self), worker_id: worker_id.to_owned(), generation };
        (conn, rx, guard)
    }

    pub fn get(&self, worker_id: &str) -> Option<Arc<WorkerConn>> {
        self.read().get(worker_id).cloned()
    }

    /// Ends this replica's stream of `worker_id` if it is older than `epoch`
    /// (the worker opened a newer one elsewhere). True when one was ended.
    pub fn preempt_older(&self, worker_id: &str, epoch: u64) -> bool {
        match self.get(worker_id) {
            Some(conn) if conn.generation < epoch => {
                conn.cancel.cancel();
                true
            }
            _ => false,
        }
    }

    /// Sends a command to a worker connected to this replica (the unit tests
    /// below; callers use the dispatcher).
    #[cfg(test)]
    pub async fn call(
        &self,
        worker_id: &str,
        kind: command::Kind,
        deadline: Duration,
    ) -> Result<CommandResult, DispatchError> {
        let conn = self.get(worker_id).ok_or_else(|| DispatchError::NotConnected(worker_id.to_owned()))?;
        conn.call(kind, deadline).await
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends every stream (shutdown).
    pub fn cancel_all(&self) {
        for conn in self.read().values() {
            conn.cancel.cancel();
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<WorkerConn>>> {
        self.workers.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<WorkerConn>>> {
        self.workers.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Unregisters (worker id, generation) on drop, and fails its pending calls.
pub struct Registration {
    registry: std::sync::Weak<Registry>,
    pub worker_id: String,
    pub generation: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(registry) = self.registry.upgrade() else { return };
        let removed = {
            let mut map = registry.write();
            match map.get(&self.worker_id) {
                Some(c) if c.generation == self.generation => map.remove(&self.worker_id),
                _ => None,
            }
        };
        if let Some(conn) = removed {
            conn.cancel.cancel();
            // Dropping the senders wakes every waiting caller with StreamClosed.
            conn.lock_pending().clear();
        }
        metrics::CONNECTED_WORKERS.set(registry.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagate_proto::v1::GetStatus;

    fn get_status() -> command::Kind {
        command::Kind::GetStatus(GetStatus { session_id: "s".into() })
    }

    fn welcome() -> ControlMessage {
        ControlMessage { kind: Some(control_message::Kind::Welcome(Default::default())) }
    }

    #[tokio::test]
    async fn welcome_is_first_and_unknown_commands_are_refused() {
        let registry = Registry::new();
        let (conn, mut rx, _guard) = registry.register("w1", 1, 1, CommandSet::ALL, 8, welcome());
        // A command racing the handshake still queues behind Welcome.
        let r2 = registry.clone();
        let call = tokio::spawn(async move { r2.call("w1", get_status(), Duration::from_millis(50)).await });
        let first = rx.recv().await.unwrap().unwrap();
        assert!(matches!(first.kind, Some(control_message::Kind::Welcome(_))), "{first:?}");
        let second = rx.recv().await.unwrap().unwrap();
        assert!(matches!(second.kind, Some(control_message::Kind::Command(_))), "{second:?}");
        let _ = call.await;
        drop(conn);

        // A worker that does not declare a command never gets it.
        let without = CommandSet::ALL.without(wagate_proto::CommandKind::GetStatus);
        let (_old, mut rx, _g) = registry.register("w0", 1, 1, without, 8, welcome());
        let _ = rx.recv().await;
        let err = registry.call("w0", get_status(), Duration::from_millis(50)).await.unwrap_err();
        assert!(matches!(err, DispatchError::Unsupported(_)), "{err}");
        assert_eq!(ApiError::from(err).code, ErrorCode::NotSupportedByWorker);
        assert!(rx.try_recv().is_err(), "nothing was sent");
    }

    #[tokio::test]
    async fn reply_is_correlated_by_request_id() {
        let registry = Registry::new();
        let (conn, mut rx, _guard) = registry.register("w1", 1, 1, CommandSet::ALL, 8, welcome());
        let echo = tokio::spawn(async move {
            while let Some(Ok(msg)) = rx.recv().await {
                if let Some(control_message::Kind::Command(cmd)) = msg.kind {
                    conn.complete(CommandResult {
                        request_id: cmd.request_id,
                        ok: true,
                        ..Default::default()
                    });
                }
            }
        });
        let (a, b) = tokio::join!(
            registry.call("w1", get_status(), Duration::from_secs(1)),
            registry.call("w1", get_status(), Duration::from_secs(1))
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_ne!(a.request_id, b.request_id);
        assert!(a.ok && b.ok);
        echo.abort();
    }

    #[tokio::test]
    async fn full_channel_is_busy_and_timeouts_clean_up() {
        let registry = Registry::new();
        let (conn, _rx, _guard) = registry.register("w1", 1, 1, CommandSet::ALL, 2, welcome());
        let err = registry.call("w1", get_status(), Duration::from_millis(20)).await.unwrap_err();
        assert!(matches!(err, DispatchError::Timeout(_)), "{err}");
        assert_eq!(conn.pending_count(), 0, "timed-out caller must not leak");
        // the first message still sits in the channel (capacity 1): next is busy
        let err = registry.call("w1", get_status(), Duration::from_millis(20)).await.unwrap_err();
        assert!(matches!(err, DispatchError::Busy(_)), "{err}");
        assert_eq!(conn.pending_count(), 0);
    }

    #[tokio::test]
    async fn reconnect_preempts_and_stale_guard_keeps_new_entry() {
        let registry = Registry::new();
        let (old, _rx1, old_guard) = registry.register("w1", 1, 1, CommandSet::ALL, 4, welcome());
        let (new, _rx2, _new_guard) = registry.register("w1", 2, 1, CommandSet::ALL, 4, welcome());
        assert!(old.cancel.is_cancelled());
        assert!(new.generation > old.generation);
        drop(old_guard);
        assert_eq!(registry.get("w1").map(|c| c.generation), Some(new.generation));
        assert!(matches!(
            registry.call("w2", get_status(), Duration::from_millis(10)).await,
            Err(DispatchError::NotConnected(_))
        ));
    }

    #[tokio::test]
    async fn dropping_registration_fails_waiting_callers() {
        let registry = Registry::new();
        let (_conn, _rx, guard) = registry.register("w1", 1, 1, CommandSet::ALL, 4, welcome());
        let r2 = registry.clone();
        let call = tokio::spawn(async move { r2.call("w1", get_status(), Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(guard);
        let res = tokio::time::timeout(Duration::from_secs(1), call).await.unwrap().unwrap();
        assert!(matches!(res, Err(DispatchError::StreamClosed(_))));
        assert!(registry.is_empty());
    }
}
