//! Refresh tokens: `wrt_` + 64 hex chars, shown once, stored as a SHA-256
//! hash. Each use rotates the token (the old one is spent, a new one of the
//! same family is issued); presenting a spent or revoked token is taken as
//! theft and revokes the whole family, so neither the thief nor the owner
//! can go on without signing in again.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use wagate_proto::error::ErrorCode;

use crate::error::{CpResult, api};
use crate::persistence::Db;
use crate::persistence::refresh_tokens;

pub const TOKEN_PREFIX: &str = "wrt_";

/// A refresh token just issued (the only time its plaintext exists).
pub struct Issued {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// A new refresh-token family (one per sign-in).
pub fn new_family() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// How a presented refresh token was judged.
pub enum Redeemed {
    /// Valid and now spent: issue a new one in `family_id` for `user_id`.
    Rotated { user_id: String, family_id: String },
    /// Spent or revoked before: the family is revoked now (its access
    /// tokens must be refused too).
    Reused { user_id: String, family_id: String },
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn looks_like_token(token: &str) -> bool {
    token.len() == TOKEN_PREFIX.len() + 64
        && token.starts_with(TOKEN_PREFIX)
        && token[TOKEN_PREFIX.len()..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Issues a refresh token for `user_id` in `family_id` ([`new_family`] at sign-in).
pub async fn issue(db: &Db, user_id: &str, family_id: &str, ttl: std::time::Duration) -> CpResult<Issued> {
    let bytes: [u8; 32] = rand::random();
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let now = Utc::now();
    let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(30));
    refresh_tokens::insert(db, user_id, family_id, hash(&token), expires_at, now).await?;
    Ok(Issued { token, expires_at })
}

/// Spends `token` once. Unknown or expired → 401; reuse revokes the family.
pub async fn redeem(db: &Db, token: &str) -> CpResult<Redeemed> {
    let invalid = || api(ErrorCode::InvalidToken, "invalid or expired refresh token");
    if !looks_like_token(token) {
        return Err(invalid());
    }
    let row = refresh_tokens::by_hash(db, hash(token), None).await?.ok_or_else(invalid)?;
    let now = Utc::now();
    if row.used_at.is_some() || row.revoked_at.is_some() {
        revoke_family(db, &row.family_id).await?;
        return Ok(Redeemed::Reused { user_id: row.user_id, family_id: row.family_id });
    }
    if row.expires_at <= now {
        return Err(invalid());
    }
    // Spend it atomically: of two concurrent uses, one wins and the other is
    // a reuse.
    if !refresh_tokens::spend(db, &row.id, now).await? {
        revoke_family(db, &row.family_id).await?;
        return Ok(Redeemed::Reused { user_id: row.user_id, family_id: row.family_id });
    }
    Ok(Redeemed::Rotated { user_id: row.user_id, family_id: row.family_id })
}

/// Revokes the family of `token` if it is one of `user_id`'s (logout with
/// a refresh token: a caller signs out their own sign-ins, never another
/// user's). Returns the family revoked. Unknown tokens and other users'
/// are ignored alike: logout never reveals whether a token existed.
pub async fn revoke_token_family(db: &Db, user_id: &str, token: &str) -> CpResult<Option<String>> {
    if !looks_like_token(token) {
        return Ok(None);
    }
    let row = refresh_tokens::by_hash(db, hash(token), Some(user_id)).await?;
    let Some(row) = row else { return Ok(None) };
    revoke_family(db, &row.family_id).await?;
    Ok(Some(row.family_id))
}

async fn revoke_family(db: &Db, family_id: &str) -> CpResult<()> {
    refresh_tokens::revoke_family(db, family_id, Utc::now()).await?;
    Ok(())
}

/// Revokes every refresh token of a user (logout-all, password change).
pub async fn revoke_all(db: &Db, user_id: &str) -> CpResult<()> {
    refresh_tokens::revoke_user(db, user_id, Utc::now()).await?;
    Ok(())
}
