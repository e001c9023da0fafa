//! The `email_outbox` table: one row per mail, written before it is sent
//! (a restart loses nothing), claimed by one replica at a time with a lease
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL), and kept as the delivery log.
//!
//! The fence it enforces: `dedup_key` is unique and inserts are `ON
//! CONFLICT DO NOTHING`, so one incident enqueues one mail however many
//! replicas (or retries) see it; a claim takes only rows that are due and
//! not leased, re-checked on the locked row.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, QueryResult, Value};

use super::Db;
use super::measured::measured;

/// A mail to enqueue.
#[derive(Debug, Clone)]
pub struct NewEmail {
    pub dedup_key: String,
    pub user_id: Option<String>,
    pub kind: &'static str,
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Inserts `mail` as PENDING, due now; false when its `dedup_key` was
/// already there (nothing written).
pub async fn enqueue(db: &Db, mail: &NewEmail, now: DateTime<Utc>) -> Result<bool, DbErr> {
    measured("email_outbox.enqueue", async {
        let res = db
            .conn
            .execute_raw(db.stmt(
                "INSERT INTO email_outbox (id, dedup_key, user_id, kind, to_addr, subject, body, status, attempts, \
                 next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'PENDING', 0, $8, $9, $10) \
                 ON CONFLICT (dedup_key) DO NOTHING",
                vec![
                    uuid::Uuid::now_v7().to_string().into(),
                    mail.dedup_key.clone().into(),
                    mail.user_id.clone().into(),
                    mail.kind.into(),
                    mail.to.clone().into(),
                    mail.subject.clone().into(),
                    mail.body.clone().into(),
                    now.into(),
                    now.into(),
                    now.into(),
                ],
            ))
            .await?;
        Ok(res.rows_affected() == 1)
    })
    .await
}

/// A claimed mail.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub attempts: i32,
}

fn claimed_from(r: &QueryResult) -> Result<Claimed, DbErr> {
    Ok(Claimed {
        id: r.try_get("", "id")?,
        kind: r.try_get("", "kind")?,
        to: r.try_get("", "to_addr")?,
        subject: r.try_get("", "subject")?,
        body: r.try_get("", "body")?,
        attempts: r.try_get("", "attempts")?,
    })
}

/// Leases (until `lease`, for `replica`) up to `limit` due mails, oldest due first.
pub async fn claim(
    db: &Db,
    lease: DateTime<Utc>,
    replica: &str,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Claimed>, DbErr> {
    measured("email_outbox.claim", async {
        let lock = if db.is_postgres() { "FOR UPDATE SKIP LOCKED" } else { "" };
        let sql = format!(
            "UPDATE email_outbox SET locked_until = $1, locked_by = $2 WHERE id IN ( \
               SELECT id FROM email_outbox WHERE status IN ('PENDING', 'RETRYING') AND next_attempt_at <= $3 \
                 AND (locked_until IS NULL OR locked_until < $4) ORDER BY next_attempt_at, id LIMIT $5 {lock}) \
             AND status IN ('PENDING', 'RETRYING') AND (locked_until IS NULL OR locked_until < $6) \
             RETURNING id, kind, to_addr, subject, body, attempts"
        );
        let rows = db
            .conn
            .query_all_raw(db.stmt(
                &sql,
                vec![
                    lease.into(),
                    replica.into(),
                    now.into(),
                    now.into(),
                    i64::try_from(limit).unwrap_or(16).into(),
                    now.into(),
                ],
            ))
            .await?;
        rows.iter().map(claimed_from).collect()
    })
    .await
}

/// Releases the leases held under `replica`: called when a replica starts
/// (nothing of its own is in flight then), so a restart under the same id
/// does not wait for the leases its previous run died holding.
pub async fn release_leases_of(db: &Db, replica: &str) -> Result<u64, DbErr> {
    measured("email_outbox.release_leases_of", async {
        let res = db
            .conn
            .execute_raw(db.stmt(
                "UPDATE email_outbox SET locked_until = NULL, locked_by = NULL WHERE locked_by = $1 \
                 AND status IN ('PENDING', 'RETRYING')",
                vec![replica.into()],
            ))
            .await?;
        Ok(res.rows_affected())
    })
    .await
}

/// SENT: lease released, the body erased (it may hold a single-use token;
/// the log keeps the subject and the recipient).
pub async fn record_sent(db: &Db, id: &str, attempts: i32, now: DateTime<Utc>) -> Result<(), DbErr> {
    measured("email_outbox.record_sent", async {
        db.conn
            .execute_raw(db.stmt(
                "UPDATE email_outbox SET status = 'SENT', attempts = $1, body = '', last_error = NULL, sent_at = $2, \
                 locked_until = NULL, locked_by = NULL, updated_at = $3 WHERE id = $4",
                vec![attempts.into(), now.into(), now.into(), id.into()],
            ))
            .await?;
        Ok(())
    })
    .await
}

/// RETRYING at `next` (`Some`) or FAILED for good (`None`, body erased), lease released.
pub async fn record_failure(
    db: &Db,
    id: &str,
    attempts: i32,
    error: &str,
    next: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    measured("email_outbox.record_failure", async {
        let sql = if next.is_some() {
            "UPDATE email_outbox SET status = 'RETRYING', attempts = $1, last_error = $2, next_attempt_at = $3, \
             locked_until = NULL, locked_by = NULL, updated_at = $4 WHERE id = $5"
        } else {
            "UPDATE email_outbox SET status = 'FAILED', attempts = $1, last_error = $2, body = '', \
             next_attempt_at = COALESCE($3, next_attempt_at), locked_until = NULL, locked_by = NULL, updated_at = $4 \
             WHERE id = $5"
        };
        let next: Value = next.into();
        db.conn
            .execute_raw(db.stmt(sql, vec![attempts.into(), error.into(), next, now.into(), id.into()]))
            .await?;
        Ok(())
    })
    .await
}

/// One row of the delivery log.
#[derive(Debug, Clone)]
pub struct LogRow {
    pub id: String,
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub user_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub next_attempt_at: DateTime<Utc>,
}

/// A page of the delivery log, newest first, with the total.
pub async fn page(
    db: &Db,
    status: Option<&str>,
    offset: u64,
    limit: u64,
) -> Result<(u64, Vec<LogRow>), DbErr> {
    measured("email_outbox.page", async {
        let (filter, mut values): (&str, Vec<Value>) = match status {
            Some(s) => ("WHERE status = $1", vec![s.into()]),
            None => ("", vec![]),
        };
        let total = db
            .conn
            .query_one_raw(db.stmt(&format!("SELECT COUNT(*) AS n FROM email_outbox {filter}"), values.clone()))
            .await?
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0);
        let n = values.len();
        let sql = format!(
            "SELECT id, kind, to_addr, subject, status, attempts, last_error, user_id, created_at, sent_at, \
             next_attempt_at FROM email_outbox {filter} ORDER BY created_at DESC, id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        values.push(i64::try_from(limit).unwrap_or(20).into());
        values.push(i64::try_from(offset).unwrap_or(0).into());
        let rows = db.conn.query_all_raw(db.stmt(&sql, values)).await?;
        let rows = rows
            .iter()
            .map(|r| {
                Ok(LogRow {
                    id: r.try_get("", "id")?,
                    kind: r.try_get("", "kind")?,
                    to: r.try_get("", "to_addr")?,
                    subject: r.try_get("", "subject")?,
                    status: r.try_get("", "status")?,
                    attempts: r.try_get("", "attempts")?,
                    last_error: r.try_get("", "last_error")?,
                    user_id: r.try_get("", "user_id")?,
                    created_at: r.try_get("", "created_at")?,
                    sent_at: r.try_get("", "sent_at")?,
                    next_attempt_at: r.try_get("", "next_attempt_at")?,
                })
            })
            .collect::<Result<Vec<_>, DbErr>>()?;
        Ok((u64::try_from(total).unwrap_or(0), rows))
    })
    .await
}

/// Unsent mails: how many, and when the oldest was created.
pub async fn backlog(db: &Db) -> Result<(i64, Option<DateTime<Utc>>), DbErr> {
    measured("email_outbox.backlog", async {
        let row = db
            .conn
            .query_one_raw(db.stmt(
                "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM email_outbox WHERE status IN ('PENDING', 'RETRYING')",
                vec![],
            ))
            .await?;
        Ok(row.map_or((0, None), |r| (r.try_get("", "n").unwrap_or(0), r.try_get("", "oldest").ok().flatten())))
    })
    .await
}

/// Deletes mails created before `cutoff` that are settled (SENT / FAILED); how many.
pub async fn delete_before(db: &Db, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    measured("email_outbox.delete_before", async {
        let res = db
            .conn
            .execute_raw(db.stmt(
                "DELETE FROM email_outbox WHERE created_at < $1 AND status IN ('SENT', 'FAILED')",
                vec![cutoff.into()],
            ))
            .await?;
        Ok(res.rows_affected())
    })
    .await
}
