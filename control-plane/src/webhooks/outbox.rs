//! The outbox: events written to `webhook_deliveries` in the same
//! transaction as the state change that causes them, so an event exists
//! if and only if its change was committed. Only sessions with an active
//! webhook subscribed to the event type get rows (asked of the in-memory
//! [`super::config::HookCache`]); others pay nothing more than that lookup.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Webhooks;
use super::config::ActiveHook;
use super::payload::{self, EventType, MessageStatusData};
use crate::persistence::sessions::{self, Fence, FencedWrite};
use crate::persistence::status_writer::{Applied, EventKind, StatusUpdate};
pub use crate::persistence::webhooks::OutboxRow;
use crate::persistence::{Conn, Db, DbErr, Tx, messages, session_events, webhooks};
use crate::state::SharedState;

impl OutboxRow {
    /// The event of `kind` for where `hook` sends it (its webhook if it
    /// subscribes, the live log if it is on).
    pub fn new<T: Serialize>(
        hook: &ActiveHook,
        session_id: &str,
        kind: EventType,
        at: DateTime<Utc>,
        data: &T,
    ) -> Self {
        let id = payload::new_event_id();
        let body = payload::render(&id, kind, session_id, at, data);
        Self {
            id,
            webhook_id: hook.webhook_for(kind).map(str::to_owned),
            live: hook.live(kind),
            session_id: session_id.to_owned(),
            event: kind.as_str(),
            payload: body,
            created_at: at,
        }
    }
}

/// Statement sizes used (rows per INSERT), so only a few distinct
/// statements are prepared per connection.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// Inserts `rows` through `conn` (the transaction of the state change): as
/// PENDING deliveries, due now, for their webhook, and into the session's
/// live event log when it is on.
pub async fn enqueue<C: Conn>(conn: &C, db: &Db, rows: &[OutboxRow]) -> Result<(), DbErr> {
    // The hot path (webhooks only) copies nothing.
    let hooked: Cow<'_, [OutboxRow]> = if rows.iter().all(|r| r.webhook_id.is_some()) {
        Cow::Borrowed(rows)
    } else {
        Cow::Owned(rows.iter().filter(|r| r.webhook_id.is_some()).cloned().collect())
    };
    let mut rest: &[OutboxRow] = &hooked;
    while !rest.is_empty() {
        let n = CHUNKS.into_iter().find(|&c| c <= rest.len()).unwrap_or(1);
        let (chunk, tail) = rest.split_at(n);
        webhooks::insert_pending(conn, db, chunk).await?;
        rest = tail;
    }
    if !hooked.is_empty() {
        metrics::counter!("wagate_webhook_events_enqueued_total").increment(hooked.len() as u64);
    }
    let live: Vec<_> = rows
        .iter()
        .filter(|r| r.live)
        .map(|r| (r.id.as_str(), r.session_id.as_str(), r.event, r.payload.as_str(), r.created_at))
        .collect();
    for chunk in live.chunks(64) {
        session_events::insert(conn, db, chunk).await?;
    }
    if !live.is_empty() {
        metrics::counter!("wagate_live_events_recorded_total").increment(live.len() as u64);
    }
    Ok(())
}

/// Applies `write`, a worker's event about `fence.session_id`, inside its
/// generation fence; when it changed a row and the session's webhook
/// subscribes to `kind`, the event built by `data` is written in the same
/// transaction. Returns the rows the change affected.
pub(crate) async fn execute_with_event<T: Serialize>(
    state: &SharedState,
    kind: EventType,
    fence: &Fence<'_>,
    write: &FencedWrite,
    data: impl FnOnce() -> T,
) -> Result<u64, DbErr> {
    let db = &state.db;
    let hooks = &state.webhooks;
    let session_id = fence.session_id;
    let Some(hook) = hooks.cache.subscribed(&db.conn, db, session_id, kind).await? else {
        return sessions::apply_fenced(&db.conn, db, fence, write).await;
    };
    let txn = db.begin().await?;
    let affected = sessions::apply_fenced(&txn, db, fence, write).await?;
    if affected > 0 {
        let row = OutboxRow::new(&hook, session_id, kind, Utc::now(), &data());
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
pub async fn session_status<C: Conn>(
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
    let data = payload::SessionStatusData { status: status.to_owned(), reason, phone_number: None };
    let row = OutboxRow::new(&hook, session_id, EventType::SessionStatus, Utc::now(), &data);
    enqueue(conn, db, std::slice::from_ref(&row)).await?;
    Ok(true)
}

/// One event of `kind` for the session's webhook, if it has one subscribed,
/// written through `conn`. Call [`Webhooks::committed`] after the commit
/// (or at once on a plain connection) when this returned true.
pub async fn event<C: Conn, T: Serialize>(
    conn: &C,
    state: &SharedState,
    session_id: &str,
    kind: EventType,
    data: &T,
) -> Result<bool, DbErr> {
    let db = &state.db;
    let Some(hook) = state.webhooks.cache.subscribed(conn, db, session_id, kind).await? else {
        return Ok(false);
    };
    let row = OutboxRow::new(&hook, session_id, kind, Utc::now(), data);
    enqueue(conn, db, std::slice::from_ref(&row)).await?;
    Ok(true)
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
/// `conn` after the batch's UPDATEs (same transaction). Each status is
/// recorded once in a message's life: by the batch whose UPDATE changed the
/// row (`applied`) and set that status's time (`sent_at`, `delivered_at`,
/// `read_at` are only ever set once). A repeated acknowledgement (a send
/// dispatched again) changes nothing and adds nothing; a DELIVERED that
/// overtakes its SENT (two replicas) records SENT then DELIVERED, in that
/// order. Does nothing (no SQL) while no webhook or live log is on.
pub async fn enqueue_message_statuses<C: Conn>(
    conn: &C,
    db: &Db,
    hooks: &Webhooks,
    batch: &[StatusUpdate],
    applied: &[Applied],
) -> Result<usize, DbErr> {
    if batch.is_empty() || applied.is_empty() || !hooks.any_active() {
        return Ok(0);
    }
    let changed: HashSet<&str> = applied.iter().map(|a| a.id.as_str()).collect();
    // (message id) → the times this batch carries for it.
    let mut times: HashMap<&str, Vec<DateTime<Utc>>> = HashMap::new();
    for u in batch {
        let (id, at) = match u {
            StatusUpdate::Sent { id, at, .. } | StatusUpdate::Event { id, at, .. } => (id.as_str(), *at),
        };
        if changed.contains(id) {
            times.entry(id).or_default().push(at);
        }
    }
    let ids: Vec<&str> = times.keys().copied().collect();
    let mut rows = Vec::new();
    for chunk in ids.chunks(64) {
        rows.extend(messages::statuses_of(conn, db, &pad(chunk)).await?);
    }
    let mut out = Vec::new();
    let mut hooks_of: HashMap<String, Option<std::sync::Arc<ActiveHook>>> = HashMap::new();
    for r in rows {
        let messages::StatusRow { id, session_id, status, .. } = &r;
        let Some(ats) = times.get(id.as_str()) else { continue };
        let hook = match hooks_of.get(session_id) {
            Some(h) => h.clone(),
            None => {
                let h = hooks.cache.subscribed(conn, db, session_id, EventType::MessageStatus).await?;
                hooks_of.insert(session_id.clone(), h.clone());
                h
            }
        };
        let Some(hook) = hook else { continue };
        // Set by this batch: one of its times (to the database's precision).
        let set_here = |t: Option<DateTime<Utc>>| {
            t.filter(|t| ats.iter().any(|at| (*at - *t).num_microseconds().is_some_and(|d| d.abs() < 1_000)))
        };
        let mut recorded = [
            (EventKind::Sent, set_here(r.sent_at)),
            (EventKind::Delivered, set_here(r.delivered_at)),
            (EventKind::Read, set_here(r.read_at)),
        ]
        .into_iter()
        .filter_map(|(k, at)| at.map(|at| (k, at)))
        .collect::<Vec<_>>();
        if status == "FAILED" {
            recorded.push((EventKind::Failed, ats.iter().copied().max().unwrap_or_else(Utc::now)));
        }
        for (kind, at) in recorded {
            let data = MessageStatusData {
                message_id: id.clone(),
                status: status_name(kind).to_owned(),
                wa_message_id: r.wa_message_id.clone(),
                to: r.to_number.clone(),
                reason: if kind == EventKind::Failed { r.error_message.clone() } else { None },
                timestamp: payload::rfc3339(at),
            };
            out.push(OutboxRow::new(&hook, session_id, EventType::MessageStatus, at, &data));
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
        txn: &Tx,
        db: &Db,
        batch: &[StatusUpdate],
        applied: &[Applied],
    ) -> Result<usize, DbErr> {
        enqueue_message_statuses(txn, db, self, batch, applied).await
    }

    fn committed(&self, added: usize) {
        if added > 0 {
            Webhooks::committed(self);
        }
    }
}
