//! The outbox: events written to `webhook_deliveries` in the same
//! transaction as the state change that causes them, so an event exists
//! if and only if its change was committed. Only sessions with an active
//! webhook subscribed to the event type get rows (asked of the in-memory
//! [`super::config::HookCache`]); others pay nothing more than that lookup.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, Statement, Value};
use serde::Serialize;

use super::Webhooks;
use super::config::ActiveHook;
use super::payload::{self, EventType, MessageStatusChanged};
use crate::persistence::Db;
use crate::persistence::status_writer::{EventKind, StatusUpdate};
use crate::state::SharedState;

/// One event for one webhook.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: String,
    pub webhook_id: String,
    pub session_id: String,
    pub event: EventType,
    pub payload: String,
    pub created_at: DateTime<Utc>,
}

impl OutboxRow {
    pub fn new<T: Serialize>(
        webhook_id: &str,
        session_id: &str,
        kind: EventType,
        at: DateTime<Utc>,
        data: &T,
    ) -> Self {
        let id = payload::new_event_id();
        let body = payload::render(&id, kind, session_id, at, data);
        Self {
            id,
            webhook_id: webhook_id.to_owned(),
            session_id: session_id.to_owned(),
            event: kind,
            payload: body,
            created_at: at,
        }
    }
}

/// Statement sizes used (rows per INSERT), so only a few distinct
/// statements are prepared per connection.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// Inserts `rows` as PENDING deliveries, due now, through `conn` (the
/// transaction of the state change).
pub async fn enqueue<C: ConnectionTrait>(conn: &C, db: &Db, rows: &[OutboxRow]) -> Result<(), DbErr> {
    let mut rest = rows;
    while !rest.is_empty() {
        let n = CHUNKS.into_iter().find(|&c| c <= rest.len()).unwrap_or(1);
        let (chunk, tail) = rest.split_at(n);
        conn.execute_raw(insert_stmt(db, chunk)).await?;
        rest = tail;
    }
    if !rows.is_empty() {
        metrics::counter!("wagate_webhook_events_enqueued_total").increment(rows.len() as u64);
    }
    Ok(())
}

fn insert_stmt(db: &Db, rows: &[OutboxRow]) -> Statement {
    let mut values: Vec<Value> = Vec::with_capacity(rows.len() * 8);
    let mut tuples = Vec::with_capacity(rows.len());
    for r in rows {
        let base = values.len();
        values.extend([
            r.id.clone().into(),
            r.webhook_id.clone().into(),
            r.session_id.clone().into(),
            r.event.as_str().into(),
            r.payload.clone().into(),
            r.created_at.into(),
            r.created_at.into(),
            r.created_at.into(),
        ]);
        let p: Vec<String> = (1..=8).map(|i| format!("${}", base + i)).collect();
        tuples.push(format!(
            "({}, {}, {}, {}, {}, 'PENDING', 0, {}, {}, {})",
            p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
        ));
    }
    let sql = format!(
        "INSERT INTO webhook_deliveries (id, webhook_id, session_id, event, payload, status, attempts, next_retry, \
         created_at, updated_at) VALUES {}",
        tuples.join(", ")
    );
    db.stmt(&sql, values)
}

/// Runs `stmt`, a state change of `session_id`; when it changed a row and
/// the session's webhook subscribes to `kind`, the event built by `data`
/// is written in the same transaction. Returns the rows the change affected.
pub async fn execute_with_event<T: Serialize>(
    state: &SharedState,
    session_id: &str,
    kind: EventType,
    stmt: Statement,
    data: impl FnOnce() -> T,
) -> Result<u64, DbErr> {
    let db = &state.db;
    let hooks = &state.webhooks;
    let Some(hook) = hooks.cache.subscribed(&db.conn, db, session_id, kind).await? else {
        return Ok(db.conn.execute_raw(stmt).await?.rows_affected());
    };
    let txn = db.begin().await?;
    let affected = txn.execute_raw(stmt).await?.rows_affected();
    if affected > 0 {
        let row = OutboxRow::new(&hook.id, session_id, kind, Utc::now(), &data());
        enqueue(&txn, db, std::slice::from_ref(&row)).await?;
    }
    txn.commit().await?;
    if affected > 0 {
        hooks.committed();
    }
    Ok(affected)
}

/// A `session.status` event for a change written through `conn` (the
/// open transaction) outside the worker's own events: failover, drain,
/// waiting for capacity. Call [`Webhooks::committed`] after the commit
/// when this returned true.
pub async fn session_status<C: ConnectionTrait>(
    conn: &C,
    state: &SharedState,
    session_id: &str,
    status: &str,
    reason: Option<String>,
) -> Result<bool, DbErr> {
    let db = &state.db;
    let Some(hook) = state.webhooks.cache.subscribed(conn, db, session_id, EventType::SessionStatus).await?
    else {
        return Ok(false);
    };
    let data = payload::SessionStatusChanged { status: status.to_owned(), reason, phone_number: None };
    let row = OutboxRow::new(&hook.id, session_id, EventType::SessionStatus, Utc::now(), &data);
    enqueue(conn, db, std::slice::from_ref(&row)).await?;
    Ok(true)
}

fn rank(kind: EventKind) -> u8 {
    match kind {
        EventKind::Sent => 1,
        EventKind::Delivered => 2,
        EventKind::Read => 3,
        EventKind::Failed => 4,
    }
}

fn status_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Sent => "SENT",
        EventKind::Delivered => "DELIVERED",
        EventKind::Read => "READ",
        EventKind::Failed => "FAILED",
    }
}

/// `message.status` events for a status-writer batch, written through
/// `conn` after the batch's UPDATEs (same transaction). An update counts
/// as applied when the row's status is now the update's, or (for SENT /
/// DELIVERED) a later one that the same batch or an earlier one reached.
/// Does nothing (no SQL) while no webhook is active anywhere.
pub async fn enqueue_message_statuses<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    hooks: &Webhooks,
    batch: &[StatusUpdate],
) -> Result<usize, DbErr> {
    if batch.is_empty() || !hooks.any_active() {
        return Ok(0);
    }
    // (message id) → [(kind, at)] in batch order.
    let mut wanted: HashMap<&str, Vec<(EventKind, DateTime<Utc>)>> = HashMap::new();
    for u in batch {
        let (id, kind, at) = match u {
            StatusUpdate::Sent { id, at, .. } => (id.as_str(), EventKind::Sent, *at),
            StatusUpdate::Event { kind, id, at, .. } => (id.as_str(), *kind, *at),
        };
        let v = wanted.entry(id).or_default();
        if !v.iter().any(|(k, _)| *k == kind) {
            v.push((kind, at));
        }
    }
    let ids: Vec<&str> = wanted.keys().copied().collect();
    let mut rows = Vec::new();
    for chunk in ids.chunks(64) {
        let padded = pad(chunk);
        let marks: Vec<String> = (1..=padded.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id, session_id, status, wa_message_id, to_number, error_message FROM messages WHERE id IN ({})",
            marks.join(", ")
        );
        let values: Vec<Value> = padded.iter().map(|s| (*s).into()).collect();
        rows.extend(conn.query_all_raw(db.stmt(&sql, values)).await?);
    }
    let mut out = Vec::new();
    let mut hooks_of: HashMap<String, Option<std::sync::Arc<ActiveHook>>> = HashMap::new();
    for r in rows {
        let id: String = r.try_get("", "id")?;
        let session_id: String = r.try_get("", "session_id")?;
        let status: String = r.try_get("", "status")?;
        let Some(kinds) = wanted.get(id.as_str()) else { continue };
        let hook = match hooks_of.get(&session_id) {
            Some(h) => h.clone(),
            None => {
                let h = hooks.cache.subscribed(conn, db, &session_id, EventType::MessageStatus).await?;
                hooks_of.insert(session_id.clone(), h.clone());
                h
            }
        };
        let Some(hook) = hook else { continue };
        let now_rank = match status.as_str() {
            "SENT" => 1,
            "DELIVERED" => 2,
            "READ" => 3,
            "FAILED" => 4,
            _ => 0,
        };
        let mut kinds = kinds.clone();
        kinds.sort_by_key(|(k, _)| rank(*k));
        for (kind, at) in kinds {
            let applied = match kind {
                EventKind::Failed => now_rank == 4,
                k => now_rank != 4 && now_rank >= rank(k),
            };
            if !applied {
                continue;
            }
            let data = MessageStatusChanged {
                message_id: id.clone(),
                status: status_name(kind),
                wa_message_id: r.try_get("", "wa_message_id")?,
                to: r.try_get("", "to_number")?,
                reason: if kind == EventKind::Failed { r.try_get("", "error_message")? } else { None },
                timestamp: payload::rfc3339(at),
            };
            out.push(OutboxRow::new(&hook.id, &session_id, EventType::MessageStatus, at, &data));
        }
    }
    // Creation order = delivery order within a session.
    out.sort_by(|a, b| a.id.cmp(&b.id));
    enqueue(conn, db, &out).await?;
    Ok(out.len())
}

/// Pads an `IN` list to 1, 4, 16 or 64 entries by repeating its last one.
fn pad<'a>(items: &[&'a str]) -> Vec<&'a str> {
    let target = [1, 4, 16, 64].into_iter().find(|&c| c >= items.len()).unwrap_or(items.len());
    let mut v = items.to_vec();
    if let Some(last) = items.last() {
        v.resize(target, last);
    }
    v
}

/// `message.status` events ride in the status writer's batch transaction.
#[async_trait::async_trait]
impl crate::persistence::status_writer::StatusHook for Webhooks {
    fn wants(&self) -> bool {
        self.any_active()
    }

    async fn in_transaction(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        db: &Db,
        batch: &[StatusUpdate],
        _applied: &[crate::persistence::status_writer::Applied],
    ) -> Result<usize, DbErr> {
        enqueue_message_statuses(txn, db, self, batch).await
    }

    fn committed(&self, added: usize) {
        if added > 0 {
            Webhooks::committed(self);
        }
    }
}
