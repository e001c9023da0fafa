//! The `api_keys` table (hand-written statements): the key lookup behind
//! every session-key request, and the batched `last_used` write.
//!
//! The fence it enforces: none of its own; what a key unlocks (session
//! status, worker, generation) is read in one statement so the send path
//! gets one consistent placement to fence its dispatch on.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::Db;
use super::measured::measured;
use crate::auth::key_cache::KeyEntry;

const KEY_LOOKUP: &str = "SELECT k.id AS key_id, k.is_active AS key_active, k.expires_at, s.id AS session_id, s.status, \
    s.worker_id, s.generation, u.is_active AS user_active, u.id AS user_id, u.tier, u.message_quota \
    FROM api_keys k JOIN sessions s ON s.id = k.session_id JOIN users u ON u.id = s.user_id \
    WHERE k.key_hash = $1";

/// What the key with this hash unlocks (before the active / expiry checks).
pub async fn lookup(db: &Db, key_hash: &str) -> Result<Option<KeyEntry>, DbErr> {
    measured("api_keys.lookup", async {
        let Some(row) = db.conn.query_one_raw(db.stmt(KEY_LOOKUP, vec![key_hash.to_owned().into()])).await?
        else {
            return Ok(None);
        };
        Ok(Some(KeyEntry {
            key_id: row.try_get("", "key_id")?,
            key_active: row.try_get("", "key_active")?,
            user_active: row.try_get("", "user_active")?,
            expires_at: row.try_get("", "expires_at")?,
            session_id: row.try_get("", "session_id")?,
            status: row.try_get("", "status")?,
            worker_id: row.try_get("", "worker_id")?,
            generation: row.try_get("", "generation")?,
            user_id: row.try_get("", "user_id")?,
            tier: row.try_get("", "tier")?,
            message_quota: row.try_get("", "message_quota")?,
        }))
    })
    .await
}

/// Writes `last_used` of a chunk of keys: one `UPDATE … SET last_used =
/// CASE id …`.
pub async fn set_last_used(db: &Db, chunk: &[(String, DateTime<Utc>)]) -> Result<(), DbErr> {
    measured("api_keys.last_used", async {
        let mut sql = String::from("UPDATE api_keys SET last_used = CASE id");
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 3);
        let mut n = 0;
        for (id, t) in chunk {
            sql.push_str(&format!(" WHEN ${} THEN ${}", n + 1, n + 2));
            values.push(id.clone().into());
            values.push((*t).into());
            n += 2;
        }
        sql.push_str(" ELSE last_used END WHERE id IN (");
        for (i, (id, _)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            n += 1;
            sql.push_str(&format!("${n}"));
            values.push(id.clone().into());
        }
        sql.push(')');
        db.conn.execute_raw(db.stmt(&sql, values)).await?;
        Ok(())
    })
    .await
}
