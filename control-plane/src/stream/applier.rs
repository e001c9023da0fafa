//! The second half of a worker stream's reader: heartbeats, events and the
//! Goodbye mark, applied in arrival order by a task of their own.
//!
//! The reader ([`crate::stream::connect`]) only reads: command results go to
//! their callers at once, everything that writes (events to the database,
//! heartbeat samples and route refreshes, the OFFLINE mark of a leaving
//! worker) is queued here. So a result never waits behind an event's write:
//! a QR, auth-state or inbound-message storm delays other events, not sends.
//!
//! The queue is bounded by bytes ([`QUEUE_BYTES`], each item counted at its
//! encoded size): a worker that produces events faster than the database
//! takes them is slowed down at its stream (HTTP/2 flow control), and the
//! replica's memory stays bounded. At the end of the stream the reader
//! waits for the queue to drain before it marks the worker OFFLINE, so the
//! events a worker sent before it left are applied before its sessions move.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tracing::Instrument;
use wagate_proto::v1;

use crate::persistence::workers;
use crate::state::SharedState;
use crate::stream::events;
use crate::stream::heartbeat::Liveness;
use crate::stream::registry::WorkerConn;

/// Bytes of heartbeats and events a stream may have queued, not yet applied.
pub const QUEUE_BYTES: usize = 32 * 1024 * 1024;

/// What the applier does, in order.
pub enum Item {
    Heartbeat(v1::Heartbeat),
    Event(Box<v1::Event>),
    /// The worker said Goodbye: out of placement at once.
    Leaving,
}

impl Item {
    fn size(&self) -> usize {
        match self {
            Item::Heartbeat(h) => h.encoded_len(),
            Item::Event(e) => e.encoded_len(),
            Item::Leaving => 0,
        }
    }
}

/// The reader's handle on its applier.
pub struct Applier {
    tx: mpsc::UnboundedSender<(Item, OwnedSemaphorePermit)>,
    budget: Arc<Semaphore>,
    superseded: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Applier {
    /// Starts the applier of `conn`'s stream (tracked for shutdown).
    pub fn spawn(state: &SharedState, conn: Arc<WorkerConn>, span: tracing::Span) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let superseded = Arc::new(AtomicBool::new(false));
        let task = state.tasks.spawn(run(state.clone(), conn, rx, superseded.clone()).instrument(span));
        Self { tx, budget: Arc::new(Semaphore::new(QUEUE_BYTES)), superseded, task }
    }

    /// Queues `item`; waits only while the stream's queue is over its byte
    /// budget.
    pub async fn push(&self, item: Item) {
        let bytes = u32::try_from(item.size().clamp(1, QUEUE_BYTES)).unwrap_or(u32::MAX);
        let Ok(permit) = self.budget.clone().acquire_many_owned(bytes).await else { return };
        let _ = self.tx.send((item, permit));
    }

    /// A heartbeat found the stream stale (a newer one exists): the
    /// applier cancelled the connection.
    pub fn superseded(&self) -> bool {
        self.superseded.load(Ordering::Acquire)
    }

    /// Applies what is queued, then stops.
    pub async fn finish(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

async fn run(
    state: SharedState,
    conn: Arc<WorkerConn>,
    mut rx: mpsc::UnboundedReceiver<(Item, OwnedSemaphorePermit)>,
    superseded: Arc<AtomicBool>,
) {
    let epoch = conn.generation;
    let mut live = Liveness::new(&state, epoch);
    while let Some((item, _permit)) = rx.recv().await {
        match item {
            Item::Heartbeat(hb) => {
                if !superseded.load(Ordering::Acquire) && !live.heartbeat(&state, &conn.worker_id, &hb).await
                {
                    superseded.store(true, Ordering::Release);
                    conn.cancel.cancel();
                }
            }
            Item::Event(event) => events::handle(&state, &conn.worker_id, *event).await,
            Item::Leaving => {
                // Heartbeats write no status; it stays out of placement
                // until its next Hello, and its sessions move when it is gone.
                if let Err(err) = workers::mark_offline(&state.db, &conn.worker_id, epoch).await {
                    tracing::warn!(error = %err, "could not mark leaving worker offline");
                }
            }
        }
    }
}
