//! `session_events`: the live event log a Server-Sent Events client reads
//! (and resumes from with `Last-Event-ID`). Ids are the events' own
//! (`evt_` + UUID v7, so they sort by creation time); payloads are the
//! webhook bodies, byte for byte.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, Value};

use super::Db;
use super::measured::measured;

/// One event of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEvent {
    pub id: String,
    pub event: String,
    pub payload: String,
}

/// Inserts events (id, session, type, body, time) through `conn` (the
/// transaction of the change that caused them).
pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    db: &Db,
    rows: &[(&str, &str, &str, &str, DateTime<Utc>)],
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    measured("session_events.insert", async {
        let mut values: Vec<Value> = Vec::with_capacity(rows.len() * 5);
        let mut tuples = Vec::with_capacity(rows.len());
        for (id, session_id, event, payload, at) in rows {
            let base = values.len();
            values.extend([
                (*id).into(),
                (*session_id).into(),
                (*event).into(),
                (*payload).into(),
                (*at).into(),
            ]);
            tuples.push(format!(
                "(${}, ${}, ${}, ${}, ${})",
                base + 1,
                base + 2,
                base + 3,
                base + 4,
                base + 5
            ));
        }
        let sql = format!(
            "INSERT INTO session_events (id, session_id, event, payload, created_at) VALUES {}",
            tuples.join(", ")
        );
        conn.execute_raw(db.stmt(&sql, values)).await?;
        Ok(())
    })
    .await
}

/// The session's events with an id above `after`, oldest first.
pub async fn after(db: &Db, session_id: &str, after: &str, limit: u64) -> Result<Vec<LiveEvent>, DbErr> {
    measured("session_events.after", async {
        let rows = db
            .conn
            .query_all_raw(db.stmt(
                "SELECT id, event, payload FROM session_events WHERE session_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                vec![session_id.into(), after.into(), (limit as i64).into()],
            ))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(LiveEvent {
                    id: r.try_get("", "id")?,
                    event: r.try_get("", "event")?,
                    payload: r.try_get("", "payload")?,
                })
            })
            .collect()
    })
    .await
}

/// Deletes events created before `cutoff`.
pub async fn delete_before(db: &Db, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    measured("session_events.delete_before", async {
        let res = db
            .conn
            .execute_raw(db.stmt("DELETE FROM session_events WHERE created_at < $1", vec![cutoff.into()]))
            .await?;
        Ok(res.rows_affected())
    })
    .await
}
