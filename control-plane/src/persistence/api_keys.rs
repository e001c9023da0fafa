//! The `api_keys` table: the key lookup behind every session-key request,
//! the batched `last_used` write, and a session's key (issue, rotate, revoke).
//!
//! The fence it enforces: none of its own; what a key unlocks (session
//! status, worker, generation) is read in one statement so the send path
//! gets one consistent placement to fence its dispatch on.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

use super::Db;
use super::entities::api_key;
use super::enums::{SessionStatus, UserTier};
use super::measured::measured;

/// What a key lookup found (before the active / expiry checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub key_id: String,
    pub key_active: bool,
    pub user_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub session_id: String,
    pub status: SessionStatus,
    pub worker_id: Option<String>,
    pub generation: i64,
    /// The session owner (the message quota is theirs).
    pub user_id: String,
    pub tier: UserTier,
    pub message_quota: Option<i64>,
}

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

/// An `api_keys` row.
pub type ApiKey = api_key::Model;

/// The row of a session's new API key (named after the session, active).
pub fn new_row(
    session_id: &str,
    key_hash: String,
    key_prefix: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> ApiKey {
    ApiKey {
        id: uuid::Uuid::new_v4().to_string(),
        key_hash,
        key_prefix,
        session_id: session_id.to_owned(),
        name: format!("Session API Key - {session_id}"),
        is_active: true,
        last_used: None,
        created_at,
        expires_at,
    }
}

/// The key of a session (a session has at most one).
pub async fn of_session(db: &Db, session_id: &str) -> Result<Option<ApiKey>, DbErr> {
    measured(
        "api_keys.of_session",
        api_key::Entity::find().filter(api_key::Column::SessionId.eq(session_id)).one(&db.conn),
    )
    .await
}

/// The keys of these sessions.
pub async fn of_sessions(db: &Db, session_ids: Vec<String>) -> Result<Vec<ApiKey>, DbErr> {
    measured(
        "api_keys.of_sessions",
        api_key::Entity::find().filter(api_key::Column::SessionId.is_in(session_ids)).all(&db.conn),
    )
    .await
}

/// Inserts a key (inside `conn`'s transaction, or not); returns it as written.
pub async fn insert<C: ConnectionTrait>(conn: &C, row: ApiKey) -> Result<ApiKey, DbErr> {
    measured("api_keys.insert", async {
        let active: api_key::ActiveModel = row.into();
        active.reset_all().insert(conn).await
    })
    .await
}

/// Gives the key row a new secret: active again, never used, created now.
pub async fn reissue(
    db: &Db,
    current: ApiKey,
    key_hash: String,
    key_prefix: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<ApiKey, DbErr> {
    measured("api_keys.reissue", async {
        let mut a: api_key::ActiveModel = current.into();
        a.key_hash = Set(key_hash);
        a.key_prefix = Set(key_prefix);
        a.is_active = Set(true);
        a.last_used = Set(None);
        a.created_at = Set(created_at);
        a.expires_at = Set(expires_at);
        a.update(&db.conn).await
    })
    .await
}

/// Deactivates the key; returns it as written.
pub async fn deactivate(db: &Db, current: ApiKey) -> Result<ApiKey, DbErr> {
    measured("api_keys.deactivate", async {
        let mut a: api_key::ActiveModel = current.into();
        a.is_active = Set(false);
        a.update(&db.conn).await
    })
    .await
}
