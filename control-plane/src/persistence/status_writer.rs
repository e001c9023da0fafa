//! Batched message-status writes, off the hot path.
//!
//! A send's row is written PENDING (durably) before the worker gets the
//! command; what follows (the ack's SENT, the worker's DELIVERED / READ /
//! FAILED events) only moves the row forward and may be batched: concurrent
//! updates are queued and written by one background task, one statement per
//! kind for the whole batch, in one transaction. This keeps the worker
//! stream's reader from waiting on the database for every status event (a
//! command result queued behind such writes waits too), and turns N commits
//! into one.
//!
//! The guards of the single-row statements are kept: status only moves
//! forward (`status IN (…)`), and events are fenced by the session's current
//! worker. A full queue (or a stopped writer) falls back to writing directly.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, TransactionTrait, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::persistence::Db;
use crate::webhooks::Webhooks;

/// Largest statement (updates of one kind) written at once.
const MAX_BATCH: usize = 256;
/// Queue length before callers write directly.
const QUEUE: usize = 16 * 1024;

/// One forward move of an outbound message.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusUpdate {
    /// The worker acked the send.
    Sent { id: String, at: DateTime<Utc>, wa_message_id: Option<String> },
    /// A status event from `worker_id` for a message of `session_id`.
    Event { kind: EventKind, id: String, session_id: String, worker_id: String, at: DateTime<Utc> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Sent,
    Delivered,
    Read,
    Failed,
}

impl EventKind {
    /// `SET` clause (with `$T` = the event time) and the statuses it moves from.
    fn set_and_from(self) -> (&'static str, &'static str) {
        match self {
            EventKind::Sent => ("status = 'SENT', sent_at = COALESCE(sent_at, $T)", "'PENDING'"),
            EventKind::Delivered => (
                "status = 'DELIVERED', delivered_at = $T, sent_at = COALESCE(sent_at, delivered_at, $T)",
                "'PENDING', 'SENT'",
            ),
            EventKind::Read => (
                "status = 'READ', read_at = $T, delivered_at = COALESCE(delivered_at, $T)",
                "'PENDING', 'SENT', 'DELIVERED'",
            ),
            EventKind::Failed => (
                "status = 'FAILED', error_message = COALESCE(error_message, 'failed on worker')",
                "'PENDING', 'SENT'",
            ),
        }
    }
}

/// Handle of the background writer (cheap to share).
#[derive(Debug)]
pub struct StatusWriter {
    /// None: batching is off, every update is written by its caller.
    tx: Option<mpsc::Sender<StatusUpdate>>,
    db: Db,
    /// `message.status` events go to the webhook outbox in each batch's transaction.
    webhooks: Arc<Webhooks>,
}

impl StatusWriter {
    /// Starts the writer task (unless `batched` is false); it drains its
    /// queue and stops on `shutdown`.
    pub fn spawn(
        db: Db,
        batched: bool,
        webhooks: Arc<Webhooks>,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        if !batched {
            return Self { tx: None, db, webhooks };
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        tasks.spawn(run(db.clone(), webhooks.clone(), rx, shutdown));
        Self { tx: Some(tx), db, webhooks }
    }

    /// Queues `update`; writes it directly when batching is off or the
    /// queue is full or closed.
    pub async fn submit(&self, update: StatusUpdate) -> Result<(), DbErr> {
        let update = match &self.tx {
            None => update,
            Some(tx) => match tx.try_send(update) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(u) | mpsc::error::TrySendError::Closed(u)) => u,
            },
        };
        write_batch(&self.db, &self.webhooks, std::slice::from_ref(&update)).await
    }
}

async fn run(
    db: Db,
    webhooks: Arc<Webhooks>,
    mut rx: mpsc::Receiver<StatusUpdate>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let first = tokio::select! {
            biased;
            u = rx.recv() => u,
            () = shutdown.cancelled() => {
                // Refuse new work, then drain what is queued.
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { break };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(u) => batch.push(u),
                Err(_) => break,
            }
        }
        let mut attempt = 0;
        while let Err(err) = write_batch(&db, &webhooks, &batch).await {
            attempt += 1;
            if attempt >= 3 {
                tracing::error!(error = %err, updates = batch.len(), "status batch dropped after retries; later events settle these rows");
                break;
            }
            tracing::warn!(error = %err, updates = batch.len(), "status batch failed, retrying");
            tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
        }
        batch.clear();
    }
    tracing::debug!("status writer stopped");
}

/// Statement sizes used: every batch is padded up to one of these (by
/// repeating its last entry, harmless in `IN` lists and `CASE`), so only a
/// handful of distinct statements exist. Each distinct SQL text is prepared
/// and cached per pooled connection; unbounded shapes grew the control
/// plane to hundreds of MiB.
const SIZE_CLASSES: [usize; 5] = [1, 4, 16, 64, 256];

fn padded<'a>(items: &[&'a StatusUpdate]) -> Vec<&'a StatusUpdate> {
    let target = SIZE_CLASSES.iter().copied().find(|&c| c >= items.len()).unwrap_or(items.len());
    let mut v = items.to_vec();
    if let Some(last) = items.last() {
        v.resize(target, last);
    }
    v
}

/// Writes `batch` in one transaction: one statement for the acks, one per
/// event kind (in forward order: SENT, DELIVERED, READ, FAILED).
pub async fn write_batch(db: &Db, webhooks: &Webhooks, batch: &[StatusUpdate]) -> Result<(), DbErr> {
    let acks: Vec<&StatusUpdate> = batch.iter().filter(|u| matches!(u, StatusUpdate::Sent { .. })).collect();
    let mut stmts = Vec::new();
    for chunk in acks.chunks(MAX_BATCH) {
        stmts.push(acks_stmt(db, &padded(chunk)));
    }
    let mut workers: Vec<&str> = Vec::new();
    for u in batch {
        if let StatusUpdate::Event { worker_id, .. } = u
            && !workers.contains(&worker_id.as_str())
        {
            workers.push(worker_id);
        }
    }
    for kind in [EventKind::Sent, EventKind::Delivered, EventKind::Read, EventKind::Failed] {
        for w in &workers {
            let evs: Vec<&StatusUpdate> = batch
                .iter()
                .filter(|u| {
                    matches!(u, StatusUpdate::Event { kind: k, worker_id, .. } if *k == kind && worker_id == w)
                })
                .collect();
            for chunk in evs.chunks(MAX_BATCH) {
                stmts.push(events_stmt(db, kind, w, &padded(chunk)));
            }
        }
    }
    // Webhooks (issue 11): skip the transaction only when no webhook is active anywhere.
    if stmts.len() == 1 && !webhooks.any_active() {
        db.conn.execute_raw(stmts.remove(0)).await?;
        return Ok(());
    }
    let txn = db.conn.begin().await?;
    for s in stmts {
        txn.execute_raw(s).await?;
    }
    // Webhooks (issue 11): `message.status` events in the same transaction.
    let events = crate::webhooks::outbox::enqueue_message_statuses(&txn, db, webhooks, batch).await?;
    txn.commit().await?;
    if events > 0 {
        webhooks.committed();
    }
    Ok(())
}

/// `UPDATE … SET status='SENT', sent_at = CASE id …, wa_message_id = CASE id … WHERE status='PENDING' AND id IN (…)`.
fn acks_stmt(db: &Db, acks: &[&StatusUpdate]) -> sea_orm::Statement {
    let mut values: Vec<Value> = Vec::with_capacity(acks.len() * 5);
    let mut p = 0usize;
    let mut next = |values: &mut Vec<Value>, v: Value| {
        values.push(v);
        p += 1;
        format!("${p}")
    };
    let mut sent_case = String::from("CASE id");
    let mut wa_case = String::from("CASE id");
    let mut ids = Vec::with_capacity(acks.len());
    for u in acks {
        if let StatusUpdate::Sent { id, at, wa_message_id } = u {
            let a = next(&mut values, id.clone().into());
            let b = next(&mut values, (*at).into());
            sent_case.push_str(&format!(" WHEN {a} THEN {b}"));
            let a = next(&mut values, id.clone().into());
            let b = next(&mut values, wa_message_id.clone().into());
            wa_case.push_str(&format!(" WHEN {a} THEN {b}"));
        }
    }
    for u in acks {
        if let StatusUpdate::Sent { id, .. } = u {
            ids.push(next(&mut values, id.clone().into()));
        }
    }
    let sql = format!(
        "UPDATE messages SET status = 'SENT', sent_at = {sent_case} ELSE sent_at END, \
         wa_message_id = {wa_case} ELSE wa_message_id END \
         WHERE status = 'PENDING' AND id IN ({})",
        ids.join(", ")
    );
    db.stmt(&sql, values)
}

/// One statement applying events of one kind from one worker: the rows
/// must belong to a session currently placed on that worker (the fence of
/// the single-row statement).
fn events_stmt(db: &Db, kind: EventKind, worker_id: &str, evs: &[&StatusUpdate]) -> sea_orm::Statement {
    let (set, from) = kind.set_and_from();
    let mut values: Vec<Value> = Vec::new();
    let mut p = 0usize;
    let mut next = |values: &mut Vec<Value>, v: Value| {
        values.push(v);
        p += 1;
        format!("${p}")
    };
    // One event time for the batch (they were queued within milliseconds).
    let at = evs
        .iter()
        .filter_map(|u| match u {
            StatusUpdate::Event { at, .. } => Some(*at),
            StatusUpdate::Sent { .. } => None,
        })
        .max()
        .unwrap_or_else(Utc::now);
    // SQLite placeholders are positional: every `$T` gets its own value.
    let set = set.split("$T").enumerate().fold(String::new(), |mut acc, (i, part)| {
        if i > 0 {
            acc.push_str(&next(&mut values, at.into()));
        }
        acc.push_str(part);
        acc
    });
    let mut ids = Vec::with_capacity(evs.len());
    for u in evs {
        if let StatusUpdate::Event { id, .. } = u {
            ids.push(next(&mut values, id.clone().into()));
        }
    }
    let w = next(&mut values, worker_id.into());
    let sql = format!(
        "UPDATE messages SET {set} WHERE id IN ({}) AND status IN ({from}) \
         AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = messages.session_id AND s.worker_id = {w})",
        ids.join(", ")
    );
    db.stmt(&sql, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_padded_to_a_few_sizes() {
        let u = StatusUpdate::Sent { id: "m".into(), at: Utc::now(), wa_message_id: None };
        for n in 1..=256 {
            let items = vec![&u; n];
            let p = padded(&items);
            assert!(SIZE_CLASSES.contains(&p.len()) && p.len() >= n, "{n} -> {}", p.len());
        }
    }
}
