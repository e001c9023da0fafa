//! The `session_auth_states` table: the newest encrypted auth-state
//! snapshot per session (sealing and opening are [`crate::stream::custody`]'s).
//!
//! The fence it enforces: a snapshot of an older generation never
//! overwrites a newer one (the upsert applies only while the stored
//! generation is not greater).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::Db;
use super::measured::measured;

/// A sealed snapshot as stored.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Stores `sealed` as the session's snapshot at `generation` unless a newer
/// generation is stored; the rows written.
pub async fn upsert(
    db: &Db,
    session_id: &str,
    sealed: Sealed,
    generation: i64,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    measured("auth_states.upsert", async {
        let res = db
            .conn
            .execute_raw(db.stmt(
                "INSERT INTO session_auth_states (session_id, key_id, nonce, ciphertext, generation, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (session_id) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, \
                    ciphertext = excluded.ciphertext, generation = excluded.generation, updated_at = excluded.updated_at \
                 WHERE session_auth_states.generation <= excluded.generation",
                vec![
                    session_id.into(),
                    sealed.key_id.into(),
                    sealed.nonce.into(),
                    sealed.ciphertext.into(),
                    generation.into(),
                    now.into(),
                ],
            ))
            .await?;
        Ok(res.rows_affected())
    })
    .await
}

/// Wipes the session's snapshot (logged out: the credentials are dead);
/// the rows removed.
pub async fn delete(db: &Db, session_id: &str) -> Result<u64, DbErr> {
    measured("auth_states.delete", async {
        let res = db
            .conn
            .execute_raw(
                db.stmt("DELETE FROM session_auth_states WHERE session_id = $1", vec![session_id.into()]),
            )
            .await?;
        Ok(res.rows_affected())
    })
    .await
}

/// The session's stored snapshot, still sealed.
pub async fn get(db: &Db, session_id: &str) -> Result<Option<Sealed>, DbErr> {
    measured("auth_states.get", async {
        let row = db
            .conn
            .query_one_raw(db.stmt(
                "SELECT key_id, nonce, ciphertext FROM session_auth_states WHERE session_id = $1",
                vec![session_id.into()],
            ))
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Sealed {
            key_id: row.try_get("", "key_id")?,
            nonce: row.try_get("", "nonce")?,
            ciphertext: row.try_get("", "ciphertext")?,
        }))
    })
    .await
}
