//! Group commit of outbound message rows.
//!
//! Concurrent sends hand their PENDING row to a writer task, which inserts
//! everything queued at that moment as one multi-row `INSERT` (one commit)
//! and then answers each caller. A caller only continues (and dispatches to
//! the worker) once its row is committed, so "durable before dispatch"
//! holds. No timer: rows queue up naturally while the previous batch
//! commits, so a lone send waits for nothing but its own insert.
//!
//! A failed batch is retried row by row, so each caller gets its own
//! outcome (e.g. the unique violation of a duplicate `Idempotency-Key`).

use std::sync::Arc;

use sea_orm::{DbErr, EntityTrait, TransactionTrait};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::persistence::Db;
use crate::persistence::entities::message;

/// Rows inserted by one statement at most.
const MAX_BATCH: usize = 256;
/// Rows waiting for a writer before callers wait for room.
const QUEUE: usize = 4096;

type Job = (message::ActiveModel, oneshot::Sender<Result<(), DbErr>>);

#[derive(Debug)]
pub struct MessageInserter {
    /// None: group commit is off, every caller inserts its own row.
    tx: Option<mpsc::Sender<Job>>,
    db: Db,
}

impl MessageInserter {
    /// Starts `writers` writer tasks sharing one queue (0: group commit off).
    /// On `shutdown` they stop taking rows, drain the queue and end; later
    /// callers insert their own rows.
    pub fn spawn(db: Db, writers: usize, tasks: &TaskTracker, shutdown: CancellationToken) -> Self {
        if writers == 0 {
            return Self { tx: None, db };
        }
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers {
            tasks.spawn(run(db.clone(), rx.clone(), shutdown.clone()));
        }
        Self { tx: Some(tx), db }
    }

    /// Inserts `row`; returns once it is committed.
    pub async fn insert(&self, row: message::ActiveModel) -> Result<(), DbErr> {
        let Some(tx) = &self.tx else {
            return insert_one(&self.db, row).await;
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        if let Err(mpsc::error::SendError((row, _))) = tx.send((row, reply_tx)).await {
            return insert_one(&self.db, row).await;
        }
        reply_rx.await.map_err(|_| DbErr::Custom("message writer stopped before answering".into()))?
    }
}

async fn insert_one(db: &Db, row: message::ActiveModel) -> Result<(), DbErr> {
    message::Entity::insert(row).exec_without_returning(&db.conn).await.map(|_| ())
}

/// Statement sizes used (see `status_writer::SIZE_CLASSES`: each distinct
/// SQL text is prepared and cached per pooled connection, so the number of
/// shapes must stay small).
const SIZE_CLASSES: [usize; 4] = [64, 16, 4, 1];

/// Inserts `rows` in one transaction (one commit), as multi-row INSERTs of
/// a few fixed sizes.
async fn insert_batch(db: &Db, mut rows: Vec<message::ActiveModel>) -> Result<(), DbErr> {
    let txn = db.conn.begin().await?;
    while !rows.is_empty() {
        let size = SIZE_CLASSES.iter().copied().find(|&c| c <= rows.len()).unwrap_or(1);
        let chunk: Vec<message::ActiveModel> = rows.drain(..size).collect();
        message::Entity::insert_many(chunk).exec_without_returning(&txn).await?;
    }
    txn.commit().await
}

async fn run(db: Db, rx: Arc<Mutex<mpsc::Receiver<Job>>>, shutdown: CancellationToken) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let mut rx = rx.lock().await;
            let first = tokio::select! {
                biased;
                job = rx.recv() => job,
                () = shutdown.cancelled() => {
                    rx.close();
                    rx.recv().await
                }
            };
            let Some(first) = first else { break };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        if batch.len() == 1 {
            let (row, reply) = batch.remove(0);
            let _ = reply.send(insert_one(&db, row).await);
            continue;
        }
        let rows: Vec<message::ActiveModel> = batch.iter().map(|(r, _)| r.clone()).collect();
        match insert_batch(&db, rows).await {
            Ok(_) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, rows = batch.len(), "batch insert failed, inserting row by row");
                for (row, reply) in batch.drain(..) {
                    let _ = reply.send(insert_one(&db, row).await);
                }
            }
        }
    }
}
