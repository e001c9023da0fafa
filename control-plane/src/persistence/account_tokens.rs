//! The `account_tokens` table: single-use tokens mailed to an account's
//! owner (password reset, email verification), stored as SHA-256 hashes of
//! 256-bit random values, with the address they were mailed to.
//!
//! The fence it enforces: a token is spent at most once ([`spend`] applies
//! only while it is unused and unexpired).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::Db;
use super::measured::measured;

/// What a token is for (the `purpose` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    PasswordReset,
    VerifyEmail,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::PasswordReset => "PASSWORD_RESET",
            Purpose::VerifyEmail => "VERIFY_EMAIL",
        }
    }
}

/// Stores a new token; returns its row id.
pub async fn insert(
    db: &Db,
    user_id: &str,
    purpose: Purpose,
    token_hash: &str,
    email: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<String, DbErr> {
    measured("account_tokens.insert", async {
        let id = uuid::Uuid::now_v7().to_string();
        db.conn
            .execute_raw(db.stmt(
                "INSERT INTO account_tokens (id, user_id, purpose, token_hash, email, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                vec![
                    id.clone().into(),
                    user_id.into(),
                    purpose.as_str().into(),
                    token_hash.into(),
                    email.into(),
                    expires_at.into(),
                    now.into(),
                ],
            ))
            .await?;
        Ok(id)
    })
    .await
}

/// A spent token: whose, and the address it was mailed to.
#[derive(Debug, Clone)]
pub struct Spent {
    pub user_id: String,
    pub email: String,
}

/// Spends the token with this hash and purpose if it is unused and not
/// expired (one statement: two callers cannot both spend it).
pub async fn spend(
    db: &Db,
    token_hash: &str,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<Option<Spent>, DbErr> {
    measured("account_tokens.spend", async {
        let row = db
            .conn
            .query_one_raw(db.stmt(
                "UPDATE account_tokens SET used_at = $1 WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL \
                 AND expires_at > $4 RETURNING user_id, email",
                vec![now.into(), token_hash.into(), purpose.as_str().into(), now.into()],
            ))
            .await?;
        row.map(|r| Ok(Spent { user_id: r.try_get("", "user_id")?, email: r.try_get("", "email")? })).transpose()
    })
    .await
}

/// Spends every live token of the user for `purpose` (after a reset: the
/// other links mailed before it stop working).
pub async fn spend_all(db: &Db, user_id: &str, purpose: Purpose, now: DateTime<Utc>) -> Result<u64, DbErr> {
    measured("account_tokens.spend_all", async {
        let res = db
            .conn
            .execute_raw(db.stmt(
                "UPDATE account_tokens SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL",
                vec![now.into(), user_id.into(), purpose.as_str().into()],
            ))
            .await?;
        Ok(res.rows_affected())
    })
    .await
}

/// Deletes tokens that expired before `cutoff`; how many.
pub async fn delete_expired(db: &Db, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    measured("account_tokens.delete_expired", async {
        let res = db
            .conn
            .execute_raw(db.stmt("DELETE FROM account_tokens WHERE expires_at < $1", vec![cutoff.into()]))
            .await?;
        Ok(res.rows_affected())
    })
    .await
}

/// The unused, unexpired token with this hash and purpose (not spent).
pub async fn live(
    db: &Db,
    token_hash: &str,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<Option<Spent>, DbErr> {
    measured("account_tokens.live", async {
        let row = db
            .conn
            .query_one_raw(db.stmt(
                "SELECT user_id, email FROM account_tokens WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL \
                 AND expires_at > $3",
                vec![token_hash.into(), purpose.as_str().into(), now.into()],
            ))
            .await?;
        row.map(|r| Ok(Spent { user_id: r.try_get("", "user_id")?, email: r.try_get("", "email")? })).transpose()
    })
    .await
}
