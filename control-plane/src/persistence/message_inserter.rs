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
//!
//! Each outbound row comes with its `message_dispatch` ledger row (attempt
//! 1 and `dispatched_at` when it is dispatched right after the commit),
//! written in the same transaction: the ledger is how the sweep knows what
//! no worker has acknowledged yet.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, EntityTrait, Value};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::persistence::Db;
use crate::persistence::entities::message;
use crate::persistence::measured::measured;
use crate::persistence::messages::Message;

/// Rows inserted by one statement at most.
const MAX_BATCH: usize = 256;
/// Rows waiting for a writer before callers wait for room.
const QUEUE: usize = 4096;

/// The `message_dispatch` row of an outbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub id: String,
    pub session_id: String,
    pub created_at: DateTime<Utc>,
    /// 1 when it is dispatched at once, 0 when it waits (session moving).
    pub attempts: i32,
    pub dispatched_at: Option<DateTime<Utc>>,
}

type Row = (message::ActiveModel, Option<LedgerRow>);
type Job = (Row, oneshot::Sender<Result<(), DbErr>>);

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

    /// Inserts `row` (and its ledger row); returns once it is committed.
    pub async fn insert(&self, row: Message, ledger: Option<LedgerRow>) -> Result<(), DbErr> {
        let row = (message::ActiveModel::from(row).reset_all(), ledger);
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

async fn insert_one(db: &Db, (row, ledger): Row) -> Result<(), DbErr> {
    if db.is_postgres() {
        db.conn.execute_raw(pg_insert_stmt(db, &[(row, ledger)])?).await?;
        return Ok(());
    }
    let Some(ledger) = ledger else {
        return message::Entity::insert(row).exec_without_returning(&db.conn).await.map(|_| ());
    };
    let txn = db.begin().await?;
    message::Entity::insert(row).exec_without_returning(&txn).await?;
    txn.execute_raw(ledger_stmt(db, &ledger)).await?;
    txn.commit().await
}

/// One ledger row (SQLite; PostgreSQL writes ledger rows inside
/// [`pg_insert_stmt`]).
fn ledger_stmt(db: &Db, r: &LedgerRow) -> sea_orm::Statement {
    db.stmt(
        "INSERT INTO message_dispatch (id, session_id, created_at, attempts, dispatched_at) VALUES ($1, $2, $3, $4, $5)",
        vec![
            r.id.clone().into(),
            r.session_id.clone().into(),
            r.created_at.into(),
            r.attempts.into(),
            r.dispatched_at.into(),
        ],
    )
}

/// PostgreSQL: the whole batch (message rows and their ledger rows) as ONE
/// statement with one JSON parameter: one round trip and one commit, and a
/// single statement text whatever the batch size (no per-size prepared
/// statements). Both inserts are in the one statement, so a ledger row is
/// never visible without its message (PostgreSQL's ledger has no foreign
/// key: migration 000017).
fn pg_insert_stmt(db: &Db, rows: &[Row]) -> Result<sea_orm::Statement, DbErr> {
    use sea_orm::TryIntoModel;
    let models = rows
        .iter()
        .map(|(am, ledger)| Ok((am.clone().try_into_model()?, ledger.as_ref())))
        .collect::<Result<Vec<(message::Model, Option<&LedgerRow>)>, DbErr>>()?;
    // Serialized straight from borrowed fields (no `serde_json::Value` tree).
    let entries: Vec<PgEntry<'_>> = models.iter().map(|(m, ledger)| PgEntry::new(m, *ledger)).collect();
    let json = serde_json::to_string(&entries).map_err(|e| DbErr::Custom(format!("message batch: {e}")))?;
    const COLS: &str = "id, session_id, direction, from_number, to_number, message_type, content, media_url, \
        filename, caption, status, error_message, sent_at, delivered_at, read_at, created_at, wa_message_id, \
        idempotency_key, metadata";
    let sql = format!(
        "WITH v AS (SELECT * FROM json_to_recordset($1::json) AS v(id text, session_id text, direction text, \
            from_number text, to_number text, message_type text, content text, media_url text, filename text, \
            caption text, status text, error_message text, sent_at timestamptz, delivered_at timestamptz, \
            read_at timestamptz, created_at timestamptz, wa_message_id text, idempotency_key text, metadata text, \
            ledger boolean, attempts int, dispatched_at timestamptz)), \
         m AS (INSERT INTO messages ({COLS}) SELECT {COLS} FROM v) \
         INSERT INTO message_dispatch (id, session_id, created_at, attempts, dispatched_at) \
         SELECT id, session_id, created_at, attempts, dispatched_at FROM v WHERE ledger"
    );
    Ok(db.stmt(&sql, vec![Value::from(json)]))
}

/// One message row (and its ledger row) of [`pg_insert_stmt`]'s JSON.
#[derive(serde::Serialize)]
struct PgEntry<'a> {
    id: &'a str,
    session_id: &'a str,
    direction: String,
    from_number: Option<&'a str>,
    to_number: &'a str,
    message_type: String,
    content: &'a str,
    media_url: Option<&'a str>,
    filename: Option<&'a str>,
    caption: Option<&'a str>,
    status: String,
    error_message: Option<&'a str>,
    sent_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    read_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    wa_message_id: Option<&'a str>,
    idempotency_key: Option<&'a str>,
    metadata: Option<&'a str>,
    ledger: bool,
    attempts: Option<i32>,
    dispatched_at: Option<DateTime<Utc>>,
}

impl<'a> PgEntry<'a> {
    fn new(m: &'a message::Model, ledger: Option<&LedgerRow>) -> Self {
        use sea_orm::ActiveEnum;
        Self {
            id: &m.id,
            session_id: &m.session_id,
            direction: m.direction.to_value(),
            from_number: m.from_number.as_deref(),
            to_number: &m.to_number,
            message_type: m.message_type.to_value(),
            content: &m.content,
            media_url: m.media_url.as_deref(),
            filename: m.filename.as_deref(),
            caption: m.caption.as_deref(),
            status: m.status.to_value(),
            error_message: m.error_message.as_deref(),
            sent_at: m.sent_at,
            delivered_at: m.delivered_at,
            read_at: m.read_at,
            created_at: m.created_at,
            wa_message_id: m.wa_message_id.as_deref(),
            idempotency_key: m.idempotency_key.as_deref(),
            metadata: m.metadata.as_deref(),
            ledger: ledger.is_some(),
            attempts: ledger.map(|l| l.attempts),
            dispatched_at: ledger.and_then(|l| l.dispatched_at),
        }
    }
}

/// Statement sizes used (see `status_writer::SIZE_CLASSES`: each distinct
/// SQL text is prepared and cached per pooled connection, so the number of
/// shapes must stay small).
const SIZE_CLASSES: [usize; 4] = [64, 16, 4, 1];

/// Inserts `rows` in one transaction (one commit), as multi-row INSERTs of
/// a few fixed sizes.
async fn insert_batch(db: &Db, batch: Vec<Row>) -> Result<(), DbErr> {
    if db.is_postgres() {
        db.conn.execute_raw(pg_insert_stmt(db, &batch)?).await?;
        return Ok(());
    }
    let (mut rows, ledger): (Vec<message::ActiveModel>, Vec<Option<LedgerRow>>) = batch.into_iter().unzip();
    let ledger: Vec<LedgerRow> = ledger.into_iter().flatten().collect();
    let txn = db.begin().await?;
    while !rows.is_empty() {
        let size = SIZE_CLASSES.iter().copied().find(|&c| c <= rows.len()).unwrap_or(1);
        let chunk: Vec<message::ActiveModel> = rows.drain(..size).collect();
        message::Entity::insert_many(chunk).exec_without_returning(&txn).await?;
    }
    for r in &ledger {
        txn.execute_raw(ledger_stmt(db, r)).await?;
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
            let _ = reply.send(measured("messages.insert", insert_one(&db, row)).await);
            continue;
        }
        let rows: Vec<Row> = batch.iter().map(|(r, _)| r.clone()).collect();
        match measured("messages.insert_batch", insert_batch(&db, rows)).await {
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
