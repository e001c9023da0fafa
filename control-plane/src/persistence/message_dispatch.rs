//! The `message_dispatch` ledger: sends no worker has acknowledged yet
//! (rows are inserted with their message by [`super::message_inserter`] and
//! removed by the status writer once acknowledged).
//!
//! The fence it enforces: a re-dispatch claims its attempt with a
//! compare-and-set on `attempts`, so two re-dispatchers (replicas, sweeps)
//! never send the same attempt.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::Db;
use super::enums::MessageType;
use super::measured::measured;

/// Takes a send out of the ledger (it was settled).
pub async fn remove(db: &Db, id: &str) -> Result<(), DbErr> {
    measured("message_dispatch.remove", async {
        db.conn.execute_raw(db.stmt("DELETE FROM message_dispatch WHERE id = $1", vec![id.into()])).await?;
        Ok(())
    })
    .await
}

/// Drops ledger rows whose message is gone (its session or user was
/// deleted). PostgreSQL only: there the ledger has no foreign key to
/// `messages` (migration 000017); SQLite's key still cascades.
pub async fn drop_orphans(db: &Db) -> Result<u64, DbErr> {
    if !db.is_postgres() {
        return Ok(0);
    }
    measured("message_dispatch.drop_orphans", async {
        let done = db
            .conn
            .execute_raw(db.stmt(
                "DELETE FROM message_dispatch d WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = d.id)",
                vec![],
            ))
            .await?;
        Ok(done.rows_affected())
    })
    .await
}

/// An unacknowledged send, as a re-dispatch needs it.
#[derive(Debug, Clone)]
pub struct Unacked {
    pub id: String,
    pub attempts: i32,
    pub to_number: String,
    pub message_type: MessageType,
    pub content: String,
    pub media_url: Option<String>,
    pub caption: Option<String>,
    pub filename: Option<String>,
    pub metadata: Option<String>,
}

/// Unacknowledged sends of one session (still PENDING), not dispatched
/// since `cutoff` (or never), oldest first.
pub async fn unacked(db: &Db, session_id: &str, cutoff: DateTime<Utc>) -> Result<Vec<Unacked>, DbErr> {
    measured("message_dispatch.unacked", async {
        let rows = db
            .conn
            .query_all_raw(db.stmt(
                "SELECT d.id, d.attempts, m.to_number, m.message_type, m.content, m.media_url, m.caption, \
                 m.filename, m.metadata FROM message_dispatch d JOIN messages m ON m.id = d.id \
                 WHERE d.session_id = $1 AND m.status = 'PENDING' AND (d.dispatched_at IS NULL OR d.dispatched_at < $2) \
                 ORDER BY d.created_at, d.id LIMIT 1000",
                vec![session_id.into(), cutoff.into()],
            ))
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Unacked {
                    id: row.try_get("", "id")?,
                    attempts: row.try_get("", "attempts")?,
                    to_number: row.try_get("", "to_number").unwrap_or_default(),
                    message_type: row.try_get("", "message_type")?,
                    content: row.try_get("", "content")?,
                    media_url: row.try_get("", "media_url")?,
                    caption: row.try_get("", "caption")?,
                    filename: row.try_get("", "filename")?,
                    metadata: row.try_get("", "metadata")?,
                })
            })
            .collect()
    })
    .await
}

/// Claims attempt `attempts + 1` of a send, if no one claimed it since it
/// was read. True when this caller holds it.
pub async fn claim_attempt(db: &Db, id: &str, attempts: i32) -> Result<bool, DbErr> {
    measured("message_dispatch.claim_attempt", async {
        let res = db
            .conn
            .execute_raw(db.stmt(
                "UPDATE message_dispatch SET attempts = $1, dispatched_at = $2 WHERE id = $3 AND attempts = $4",
                vec![(attempts + 1).into(), Utc::now().into(), id.into(), attempts.into()],
            ))
            .await?;
        Ok(res.rows_affected() == 1)
    })
    .await
}

/// CONNECTED sessions with sends never dispatched since before
/// `never_after`, or last dispatched before `stale` (at most 500).
pub async fn stale_sessions(
    db: &Db,
    never_after: DateTime<Utc>,
    stale: DateTime<Utc>,
) -> Result<Vec<String>, DbErr> {
    measured("message_dispatch.stale_sessions", async {
        let rows = db
            .conn
            .query_all_raw(db.stmt(
                "SELECT DISTINCT d.session_id FROM message_dispatch d JOIN sessions s ON s.id = d.session_id \
                 WHERE s.status = 'CONNECTED' AND ((d.dispatched_at IS NULL AND d.created_at < $1) OR d.dispatched_at < $2) \
                 LIMIT 500",
                vec![never_after.into(), stale.into()],
            ))
            .await?;
        rows.iter().map(|r| r.try_get::<String>("", "session_id")).collect()
    })
    .await
}
