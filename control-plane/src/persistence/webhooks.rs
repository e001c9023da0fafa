//! The `webhooks` and `webhook_deliveries` tables: a session's webhook,
//! the outbox rows, claims (leases), attempt outcomes, the delivery log,
//! redelivery, replay and retention.
//!
//! The fence it enforces: a delivery is leased (`locked_until`,
//! `locked_by`) before it is sent; a claim leases only the oldest
//! undelivered event of an active webhook (its head), and the events behind
//! a head only the replica that holds it (`claim_run`), which keeps
//! per-webhook order across replicas; a redelivery or replay never touches
//! a delivery that is leased right now. Events are
//! inserted through the caller's transaction (the state change's), so an
//! event exists if and only if its change was committed.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, QueryResult, Value};

use super::Db;
use super::measured::measured;

pub fn parse_events(json: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(json).unwrap_or_default()
}

/// A `webhooks` row.
#[derive(Debug, Clone)]
pub struct WebhookRow {
    pub id: String,
    pub session_id: String,
    pub url: String,
    pub events: Vec<String>,
    pub secret: Option<String>,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub is_active: bool,
    pub last_delivery: Option<DateTime<Utc>>,
    pub failure_count: i32,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns [`WebhookRow::from_row`] reads.
const COLUMNS: &str = "id, session_id, url, events, secret, previous_secret, previous_secret_expires_at, \
    is_active, last_delivery, failure_count, disabled_reason, created_at, updated_at";

impl WebhookRow {
    fn from_row(r: &QueryResult) -> Result<Self, DbErr> {
        let events: String = r.try_get("", "events")?;
        Ok(Self {
            id: r.try_get("", "id")?,
            session_id: r.try_get("", "session_id")?,
            url: r.try_get("", "url")?,
            events: parse_events(&events),
            secret: r.try_get("", "secret")?,
            previous_secret: r.try_get("", "previous_secret")?,
            previous_secret_expires_at: r.try_get("", "previous_secret_expires_at")?,
            is_active: r.try_get("", "is_active")?,
            last_delivery: r.try_get("", "last_delivery")?,
            failure_count: r.try_get("", "failure_count")?,
            disabled_reason: r.try_get("", "disabled_reason")?,
            created_at: r.try_get("", "created_at")?,
            updated_at: r.try_get("", "updated_at")?,
        })
    }
}

/// A claimed delivery.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub webhook_id: String,
    pub session_id: Option<String>,
    pub event: String,
    pub payload: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// One event for one webhook.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: String,
    /// The webhook it goes to; none when only the live log wants it.
    pub webhook_id: Option<String>,
    /// Whether it also goes to the session's live event log.
    pub live: bool,
    pub session_id: String,
    /// The event type's name (`message.status`, …).
    pub event: &'static str,
    pub payload: String,
    pub created_at: DateTime<Utc>,
}

/// Where a session's events are recorded: its webhook (id, `events` list
/// as stored) and until when its live event log is on.
#[derive(Debug, Clone, Default)]
pub struct EventSinksRow {
    pub webhook: Option<(String, String)>,
    pub live_until: Option<DateTime<Utc>>,
}

/// A delivery of the log, as its owner sees it.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: String,
    pub event: String,
    pub status: String,
    pub attempts: i32,
    pub response_code: Option<i32>,
    pub response_body: Option<String>,
    pub last_error: Option<String>,
    pub next_retry: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub payload: String,
}

impl DeliveryRow {
    fn from_row(r: &QueryResult) -> Result<Self, DbErr> {
        let status: String = r.try_get("", "status")?;
        // The retry time means something only while one is due.
        let next_retry =
            if status == "RETRYING" || status == "PENDING" { r.try_get("", "next_retry")? } else { None };
        Ok(Self {
            id: r.try_get("", "id")?,
            event: r.try_get("", "event")?,
            attempts: r.try_get("", "attempts")?,
            response_code: r.try_get("", "response_code")?,
            response_body: r.try_get("", "response_body")?,
            last_error: r.try_get("", "last_error")?,
            next_retry,
            created_at: r.try_get("", "created_at")?,
            delivered_at: r.try_get("", "delivered_at")?,
            payload: r.try_get("", "payload")?,
            status,
        })
    }
}

/// The columns of a delivery in the log.
const DELIVERY_COLUMNS: &str = "id, event, status, attempts, response_code, response_body, last_error, \
    next_retry, created_at, delivered_at, payload";

/// Where the session's events are recorded: its webhook that records events
/// (active, or disabled by the dispatcher: its events wait for it to be
/// re-enabled) and its live log's end. Read through `conn` (the open
/// transaction, if any).
pub async fn recording_for_session<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    session_id: &str,
) -> Result<EventSinksRow, DbErr> {
    measured("webhooks.recording_for_session", async {
        let row = conn
            .query_one_raw(db.stmt(
                // Active, or disabled by the dispatcher (410, failures): its
                // events are still recorded, to go out once it is re-enabled.
                "SELECT s.live_until, w.id, w.events FROM sessions s LEFT JOIN webhooks w ON w.session_id = s.id \
                 AND (w.is_active = $2 OR w.disabled_reason IS NOT NULL) WHERE s.id = $1",
                vec![session_id.into(), true.into()],
            ))
            .await?;
        let Some(r) = row else { return Ok(EventSinksRow::default()) };
        let id: Option<String> = r.try_get("", "id")?;
        let events: Option<String> = r.try_get("", "events")?;
        Ok(EventSinksRow {
            webhook: id.map(|id| (id, events.unwrap_or_default())),
            live_until: r.try_get("", "live_until")?,
        })
    })
    .await
}

/// The session's webhook.
pub async fn by_session<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    session_id: &str,
) -> Result<Option<WebhookRow>, DbErr> {
    measured("webhooks.by_session", async {
        let row = conn
            .query_one_raw(db.stmt(
                &format!("SELECT {COLUMNS} FROM webhooks WHERE session_id = $1"),
                vec![session_id.into()],
            ))
            .await?;
        row.as_ref().map(WebhookRow::from_row).transpose()
    })
    .await
}

/// A webhook by id.
pub async fn by_id<C: ConnectionTrait>(conn: &C, db: &Db, id: &str) -> Result<Option<WebhookRow>, DbErr> {
    measured("webhooks.by_id", async {
        let row = conn
            .query_one_raw(db.stmt(&format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1"), vec![id.into()]))
            .await?;
        row.as_ref().map(WebhookRow::from_row).transpose()
    })
    .await
}

/// The webhooks of `ids` (one `IN` list; the caller pads it to a few sizes).
pub async fn by_ids(db: &Db, ids: &[&str]) -> Result<Vec<WebhookRow>, DbErr> {
    measured("webhooks.by_ids", async {
        let ids: Vec<Value> = ids.iter().map(|s| (*s).into()).collect();
        let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT {} FROM webhooks WHERE id IN ({})", COLUMNS, marks.join(", "));
        let rows = db.conn.query_all_raw(db.stmt(&sql, ids)).await?;
        rows.iter().map(WebhookRow::from_row).collect()
    })
    .await
}

/// What a put writes.
#[derive(Debug, Clone)]
pub struct HookConfig<'a> {
    pub url: &'a str,
    pub events_json: String,
    pub is_active: bool,
    /// A given secret (replaces the current one at once, no overlap).
    pub secret: Option<String>,
}

/// Updates a webhook's configuration (re-enabling it, resetting failures
/// when active); the rows changed.
pub async fn update(db: &Db, id: &str, c: HookConfig<'_>, now: DateTime<Utc>) -> Result<u64, DbErr> {
    measured("webhooks.update", async {
        let res = db
            .conn
            .execute_raw(db.stmt(
                "UPDATE webhooks SET url = $1, events = $2, is_active = $3, \
                 secret = COALESCE($4, secret), \
                 previous_secret = CASE WHEN $5 THEN NULL ELSE previous_secret END, \
                 previous_secret_expires_at = CASE WHEN $6 THEN NULL ELSE previous_secret_expires_at END, \
                 failure_count = CASE WHEN $7 THEN 0 ELSE failure_count END, \
                 disabled_reason = NULL, updated_at = $8 WHERE id = $9",
                vec![
                    c.url.into(),
                    c.events_json.into(),
                    c.is_active.into(),
                    c.secret.clone().into(),
                    c.secret.is_some().into(),
                    c.secret.is_some().into(),
                    c.is_active.into(),
                    now.into(),
                    id.into(),
                ],
            ))
            .await?;
        Ok(res.rows_affected())
    })
    .await
}

/// Creates the session's webhook (a unique violation: one was created
/// concurrently).
pub async fn insert(
    db: &Db,
    id: String,
    session_id: &str,
    c: HookConfig<'_>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    measured("webhooks.insert", async {
        db.conn
            .execute_raw(db.stmt(
                "INSERT INTO webhooks (id, session_id, url, events, secret, is_active, failure_count, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8)",
                vec![
                    id.into(),
                    session_id.into(),
                    c.url.into(),
                    c.events_json.into(),
                    c.secret.into(),
                    c.is_active.into(),
                    now.into(),
                    now.into(),
                ],
            ))
            .await?;
        Ok(())
    })
    .await
}

/// Deletes a webhook (its deliveries go with it).
pub async fn delete(db: &Db, id: String) -> Result<(), DbErr> {
    measured("webhooks.delete", async {
        db.conn.execute_raw(db.stmt("DELETE FROM webhooks WHERE id = $1", vec![id.into()])).await?;
        Ok(())
    })
    .await
}

/// A new signing secret; the current one stays valid until `until`.
pub async fn rotate_secret(
    db: &Db,
    id: &str,
    secret: &str,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    measured("webhooks.rotate_secret", async {
        db.conn
            .execute_raw(db.stmt(
                "UPDATE webhooks SET previous_secret = secret, previous_secret_expires_at = $1, secret = $2, \
                 updated_at = $3 WHERE id = $4",
                vec![until.into(), secret.into(), now.into(), id.into()],
            ))
            .await?;
        Ok(())
    })
    .await
}

/// A delivery succeeded: no failures in a row, last delivery now.
pub async fn reset_failures(db: &Db, id: &str, now: DateTime<Utc>) -> Result<(), DbErr> {
    measured("webhooks.reset_failures", async {
        db.conn
            .execute_raw(db.stmt(
                "UPDATE webhooks SET failure_count = 0, last_delivery = $1 WHERE id = $2",
                vec![now.into(), id.into()],
            ))
            .await?;
        Ok(())
    })
    .await
}

/// A delivery failed for good: one more failure in a row.
pub async fn count_failure(db: &Db, id: &str) -> Result<(), DbErr> {
    measured("webhooks.count_failure", async {
        db.conn
            .execute_raw(
                db.stmt(
                    "UPDATE webhooks SET failure_count = failure_count + 1 WHERE id = $1",
                    vec![id.into()],
                ),
            )
            .await?;
        Ok(())
    })
    .await
}

/// Turns a webhook off with `reason`; its undelivered events stay.
pub async fn disable(db: &Db, id: &str, reason: &str, now: DateTime<Utc>) -> Result<(), DbErr> {
    measured("webhooks.disable", async {
        db.conn
            .execute_raw(db.stmt(
                "UPDATE webhooks SET is_active = $1, disabled_reason = $2, updated_at = $3 WHERE id = $4",
                vec![false.into(), reason.into(), now.into(), id.into()],
            ))
            .await?;
        Ok(())
    })
    .await
}

/// True when some webhook records events (active, or disabled by the
/// dispatcher).
pub async fn any_recording(db: &Db) -> Result<bool, DbErr> {
    measured("webhooks.any_recording", async {
        Ok(db
            .conn
            .query_one_raw(db.stmt(
                "SELECT id FROM webhooks WHERE is_active = $1 OR disabled_reason IS NOT NULL LIMIT 1",
                vec![true.into()],
            ))
            .await?
            .is_some())
    })
    .await
}

/// Inserts `rows` as PENDING deliveries, due now, in one statement through
/// `conn` (the transaction of the state change).
pub async fn insert_pending<C: ConnectionTrait>(conn: &C, db: &Db, rows: &[OutboxRow]) -> Result<(), DbErr> {
    measured("webhook_deliveries.insert_pending", async {
        let mut values: Vec<Value> = Vec::with_capacity(rows.len() * 8);
        let mut tuples = Vec::with_capacity(rows.len());
        for r in rows {
            let base = values.len();
            values.extend([
                r.id.clone().into(),
                r.webhook_id.clone().into(),
                r.session_id.clone().into(),
                r.event.into(),
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
        conn.execute_raw(db.stmt(&sql, values)).await?;
        Ok(())
    })
    .await
}

/// A test event's one attempt, as it is logged.
#[derive(Debug, Clone)]
pub struct TestDelivery {
    pub id: String,
    pub webhook_id: String,
    pub session_id: String,
    pub event: &'static str,
    pub payload: String,
    /// DELIVERED or FAILED.
    pub status: &'static str,
    pub response_code: Option<i32>,
    pub response_body: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// Logs a test event's attempt (never dispatched again).
pub async fn insert_test(db: &Db, d: TestDelivery) -> Result<(), DbErr> {
    measured("webhook_deliveries.insert_test", async {
        db.conn
            .execute_raw(db.stmt(
                "INSERT INTO webhook_deliveries (id, webhook_id, session_id, event, payload, status, attempts, \
                 response_code, response_body, last_error, created_at, delivered_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $10, $11, $12)",
                vec![
                    d.id.into(),
                    d.webhook_id.into(),
                    d.session_id.into(),
                    d.event.into(),
                    d.payload.into(),
                    d.status.into(),
                    d.response_code.into(),
                    d.response_body.into(),
                    d.last_error.into(),
                    d.created_at.into(),
                    d.delivered_at.into(),
                    d.updated_at.into(),
                ],
            ))
            .await?;
        Ok(())
    })
    .await
}

/// One delivery of the webhook's log (`DELIVERY_COLUMNS`).
pub async fn delivery(db: &Db, id: &str, webhook_id: &str) -> Result<Option<DeliveryRow>, DbErr> {
    measured("webhook_deliveries.get", async {
        let row = db
            .conn
            .query_one_raw(db.stmt(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1 AND webhook_id = $2"
                ),
                vec![id.into(), webhook_id.into()],
            ))
            .await?;
        row.as_ref().map(DeliveryRow::from_row).transpose()
    })
    .await
}

/// A page of the webhook's log, newest first: with `status` only, below
/// `cursor` (a delivery id) if given, at most `limit` rows.
pub async fn deliveries(
    db: &Db,
    webhook_id: &str,
    status: Option<&'static str>,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, DbErr> {
    measured("webhook_deliveries.list", async {
        let mut sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1");
        let mut values: Vec<Value> = vec![webhook_id.into()];
        if let Some(s) = status {
            values.push(s.into());
            sql.push_str(&format!(" AND status = ${}", values.len()));
        }
        if let Some(cursor) = cursor {
            values.push(cursor.into());
            sql.push_str(&format!(" AND id < ${}", values.len()));
        }
        values.push(limit.into());
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", values.len()));
        let rows = db.conn.query_all_raw(db.stmt(&sql, values)).await?;
        rows.iter().map(DeliveryRow::from_row).collect()
    })
    .await
}

/// Queues one delivery again (PENDING, no attempts, due now) unless it is
/// leased right now; the rows changed.
pub async fn redeliver(db: &Db, id: &str, webhook_id: &str, now: DateTime<Utc>) -> Result<u64, DbErr> {
    measured("webhook_deliveries.redeliver", async {
        let res = db
            .conn
            .execute_raw(db.stmt(
                "UPDATE webhook_deliveries SET status = 'PENDING', attempts = 0, next_retry = $1, updated_at = $2 \
                 WHERE id = $3 AND webhook_id = $4 AND (locked_until IS NULL OR locked_until < $5)",
                vec![now.into(), now.into(), id.into(), webhook_id.into(), now.into()],
            ))
            .await?;
        Ok(res.rows_affected())
    })
    .await
}

/// Queues again every undelivered event (not tests) since `since` that is
/// not leased right now; how many.
pub async fn replay(
    db: &Db,
    webhook_id: &str,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    measured("webhook_deliveries.replay", async {
        let res = db
            .conn
            .execute_raw(db.stmt(
                "UPDATE webhook_deliveries SET status = 'PENDING', attempts = 0, next_retry = $1, updated_at = $2 \
                 WHERE webhook_id = $3 AND created_at >= $4 AND status <> 'DELIVERED' AND event <> 'webhook.test' \
                 AND (locked_until IS NULL OR locked_until < $5)",
                vec![now.into(), now.into(), webhook_id.into(), since.into(), now.into()],
            ))
            .await?;
        Ok(res.rows_affected())
    })
    .await
}

fn claimed_from(r: &QueryResult) -> Result<Claimed, DbErr> {
    Ok(Claimed {
        id: r.try_get("", "id")?,
        webhook_id: r.try_get("", "webhook_id")?,
        session_id: r.try_get("", "session_id")?,
        event: r.try_get("", "event")?,
        payload: r.try_get("", "payload")?,
        attempts: r.try_get("", "attempts")?,
        created_at: r.try_get("", "created_at")?,
    })
}

/// The predicate of `idx_webhook_deliveries_undelivered` (webhook_id, id)
/// WHERE PENDING/RETRYING. A webhook's undelivered events are read as the
/// range `e.webhook_id >= $a AND e.webhook_id <= $a` with `webhook_id` in
/// the `ORDER BY`, so that only that index can give their order: with an
/// equality PostgreSQL may walk the primary key from the oldest row of the
/// whole log instead (EXPLAIN on a 30k-row outbox: 2.1 ms and 6,001 rows
/// filtered per head, against 0.04 ms and one index entry).
const UNDELIVERED_OF: &str = "e.status IN ('PENDING', 'RETRYING')";

/// Leases (until `lease`, for `replica`) up to `limit` due deliveries, each
/// the head (oldest undelivered event) of an active webhook: one probe of
/// the undelivered index per active webhook, however long the outbox (the
/// former `NOT EXISTS` over every undelivered row was quadratic: 1.4 s per
/// claim with 24k rows queued). A head already leased or not due leaves
/// its webhook out. PostgreSQL: `FOR UPDATE OF d SKIP LOCKED` on the head
/// rows, whose conditions are re-checked once locked; skipping a head only
/// leaves that webhook for the next round (never its second event).
pub async fn claim(
    db: &Db,
    lease: DateTime<Utc>,
    replica: &str,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Claimed>, DbErr> {
    measured("webhook_deliveries.claim", async {
        let lock = if db.is_postgres() { "FOR UPDATE OF d SKIP LOCKED" } else { "" };
        let sql = format!(
            "UPDATE webhook_deliveries SET locked_until = $1, locked_by = $2 WHERE id IN ( \
               SELECT d.id FROM ( \
                 SELECT (SELECT e.id FROM webhook_deliveries e \
                         WHERE e.webhook_id >= w.id AND e.webhook_id <= w.id AND {UNDELIVERED_OF} \
                         ORDER BY e.webhook_id, e.id LIMIT 1) AS head \
                 FROM webhooks w WHERE w.is_active = $3) h \
               JOIN webhook_deliveries d ON d.id = h.head \
               WHERE (d.next_retry IS NULL OR d.next_retry <= $4) \
                 AND (d.locked_until IS NULL OR d.locked_until < $5) \
               ORDER BY d.next_retry, d.id LIMIT $6 {lock}) \
             AND status IN ('PENDING', 'RETRYING') AND (next_retry IS NULL OR next_retry <= $7) \
             AND (locked_until IS NULL OR locked_until < $8) \
             RETURNING id, webhook_id, session_id, event, payload, attempts, created_at"
        );
        let rows = db
            .conn
            .query_all_raw(db.stmt(
                &sql,
                vec![
                    lease.into(),
                    replica.into(),
                    true.into(),
                    now.into(),
                    now.into(),
                    i64::try_from(limit).unwrap_or(64).into(),
                    now.into(),
                    now.into(),
                ],
            ))
            .await?;
        rows.iter().map(claimed_from).collect()
    })
    .await
}

/// Leases the events behind `after`, in order, up to `limit`: the next
/// undelivered events of the webhook, stopping before the first one that
/// is not due or is leased. `after` is an event of `webhook_id` leased by
/// `replica` with every undelivered event before it (the head it claimed,
/// or the last of the run it is sending, whose successes are not written
/// yet). Safe because no one else can lease an event behind a head leased
/// here (claims take heads only); the stop keeps a gap (an event leased
/// elsewhere after a redelivery) from being jumped. In delivery order.
pub async fn claim_run(
    db: &Db,
    webhook_id: &str,
    after: &str,
    lease: DateTime<Utc>,
    replica: &str,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Claimed>, DbErr> {
    measured("webhook_deliveries.claim_run", async {
        let sql = format!(
            "WITH win AS ( \
               SELECT e.id, e.next_retry, e.locked_until FROM webhook_deliveries e \
               WHERE e.webhook_id >= $1 AND e.webhook_id <= $2 AND {UNDELIVERED_OF} AND e.id > $3 \
               ORDER BY e.webhook_id, e.id LIMIT $4), \
             stop AS (SELECT MIN(id) AS id FROM win \
               WHERE (next_retry IS NOT NULL AND next_retry > $5) OR (locked_until IS NOT NULL AND locked_until >= $6)) \
             UPDATE webhook_deliveries SET locked_until = $7, locked_by = $8 \
             WHERE id IN (SELECT win.id FROM win, stop WHERE stop.id IS NULL OR win.id < stop.id) \
               AND status IN ('PENDING', 'RETRYING') AND (locked_until IS NULL OR locked_until < $9) \
             RETURNING id, webhook_id, session_id, event, payload, attempts, created_at"
        );
        let rows = db
            .conn
            .query_all_raw(db.stmt(
                &sql,
                vec![
                    webhook_id.into(),
                    webhook_id.into(),
                    after.into(),
                    i64::try_from(limit).unwrap_or(64).into(),
                    now.into(),
                    now.into(),
                    lease.into(),
                    replica.into(),
                    now.into(),
                ],
            ))
            .await?;
        let mut out = rows.iter().map(claimed_from).collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    })
    .await
}

/// Gives leases back without counting an attempt and without changing
/// when the events are due (the rest of a run that stopped early).
pub async fn release_many(db: &Db, ids: &[&str]) -> Result<(), DbErr> {
    measured("webhook_deliveries.release_many", async {
        for chunk in ids.chunks(64) {
            let list = pad(chunk);
            let marks: Vec<String> = (1..=list.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "UPDATE webhook_deliveries SET locked_until = NULL, locked_by = NULL WHERE id IN ({})",
                marks.join(", ")
            );
            db.conn.execute_raw(db.stmt(&sql, list.into_iter().map(Into::into).collect())).await?;
        }
        Ok(())
    })
    .await
}

/// Pads an `IN` list to 1, 4, 16 or 64 entries by repeating its last one
/// (few distinct statements to prepare).
fn pad<'a>(items: &[&'a str]) -> Vec<&'a str> {
    let target = [1, 4, 16, 64].into_iter().find(|&c| c >= items.len()).unwrap_or(items.len());
    let mut v = items.to_vec();
    if let Some(last) = items.last() {
        v.resize(target, last);
    }
    v
}

/// Gives a lease back without counting an attempt; due again at `next`.
pub async fn release(db: &Db, id: &str, next: DateTime<Utc>) -> Result<(), DbErr> {
    measured("webhook_deliveries.release", async {
        db.conn
            .execute_raw(db.stmt(
                "UPDATE webhook_deliveries SET locked_until = NULL, locked_by = NULL, next_retry = $1 WHERE id = $2",
                vec![next.into(), id.into()],
            ))
            .await?;
        Ok(())
    })
    .await
}

/// What an attempt got back.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub attempts: i32,
    pub response_code: Value,
    pub response_body: Value,
    pub last_error: Value,
    pub now: DateTime<Utc>,
}

/// DELIVERED for every id of `ids` (each leased here, one attempt more,
/// the same answer), leases released: one statement per 64 deliveries.
pub async fn record_delivered_many(
    db: &Db,
    ids: &[&str],
    response_code: Option<i32>,
    response_body: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    measured("webhook_deliveries.record_delivered_many", async {
        for chunk in ids.chunks(64) {
            let list = pad(chunk);
            let marks: Vec<String> = (5..5 + list.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "UPDATE webhook_deliveries SET status = 'DELIVERED', attempts = attempts + 1, response_code = $1, \
                 response_body = $2, last_error = NULL, delivered_at = $3, next_retry = NULL, locked_until = NULL, \
                 locked_by = NULL, updated_at = $4 WHERE id IN ({})",
                marks.join(", ")
            );
            let mut values: Vec<Value> = vec![response_code.into(), response_body.clone().into(), now.into(), now.into()];
            values.extend(list.into_iter().map(Into::into));
            db.conn.execute_raw(db.stmt(&sql, values)).await?;
        }
        Ok(())
    })
    .await
}

/// RETRYING at `at`, lease released.
pub async fn record_retrying(db: &Db, id: &str, o: Outcome, at: DateTime<Utc>) -> Result<(), DbErr> {
    measured("webhook_deliveries.record_retrying", async {
        db.conn
            .execute_raw(db.stmt(
                "UPDATE webhook_deliveries SET status = 'RETRYING', attempts = $1, response_code = $2, \
                 response_body = $3, last_error = $4, next_retry = $5, locked_until = NULL, locked_by = NULL, \
                 updated_at = $6 WHERE id = $7",
                vec![
                    o.attempts.into(),
                    o.response_code,
                    o.response_body,
                    o.last_error,
                    at.into(),
                    o.now.into(),
                    id.into(),
                ],
            ))
            .await?;
        Ok(())
    })
    .await
}

/// FAILED for good, lease released.
pub async fn record_failed(db: &Db, id: &str, o: Outcome) -> Result<(), DbErr> {
    measured("webhook_deliveries.record_failed", async {
        db.conn
            .execute_raw(db.stmt(
                "UPDATE webhook_deliveries SET status = 'FAILED', attempts = $1, response_code = $2, \
                 response_body = $3, last_error = $4, next_retry = NULL, locked_until = NULL, locked_by = NULL, \
                 updated_at = $5 WHERE id = $6",
                vec![o.attempts.into(), o.response_code, o.response_body, o.last_error, o.now.into(), id.into()],
            ))
            .await?;
        Ok(())
    })
    .await
}

/// Undelivered events: how many, and when the oldest was created (`None`
/// when the figures cannot be read).
pub async fn backlog(db: &Db) -> Result<Option<(i64, Option<DateTime<Utc>>)>, DbErr> {
    measured("webhook_deliveries.backlog", async {
        let row = db
            .conn
            .query_one_raw(db.stmt(
                "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM webhook_deliveries \
                 WHERE status IN ('PENDING', 'RETRYING')",
                vec![],
            ))
            .await?;
        Ok(row.map(|r| (r.try_get("", "n").unwrap_or(0), r.try_get("", "oldest").ok().flatten())))
    })
    .await
}

/// Deletes deliveries created before `cutoff`; how many.
pub async fn delete_before(db: &Db, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    measured("webhook_deliveries.delete_before", async {
        let res = db
            .conn
            .execute_raw(db.stmt("DELETE FROM webhook_deliveries WHERE created_at < $1", vec![cutoff.into()]))
            .await?;
        Ok(res.rows_affected())
    })
    .await
}
