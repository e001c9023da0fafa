//! Single-use tokens mailed to an account's owner: password reset (30
//! minutes) and email verification (48 hours). A token is 256 random bits
//! (`wpr_…` / `wev_…`), stored as its SHA-256 hash with the address it was
//! mailed to; redeeming spends it in one statement.

use chrono::{DateTime, Utc};
use rand::RngCore;

use super::templates::{self, kind};
use crate::persistence::account_tokens::{self, Purpose};
use crate::persistence::email_outbox::NewEmail;
use crate::persistence::users::User;
use crate::state::SharedState;

pub const RESET_TTL_MINUTES: i64 = 30;
pub const VERIFY_TTL_HOURS: i64 = 48;

fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// The stored form of a presented token.
pub fn hash(token: &str) -> String {
    crate::auth::refresh::hash(token.trim())
}

/// Issues a reset token for `user` and enqueues its mail.
pub async fn send_password_reset(state: &SharedState, user: &User) -> crate::error::CpResult<()> {
    let token = new_token("wpr_");
    let now = Utc::now();
    let expires: DateTime<Utc> = now + chrono::Duration::minutes(RESET_TTL_MINUTES);
    let id = account_tokens::insert(
        &state.db,
        &user.id,
        Purpose::PasswordReset,
        &hash(&token),
        &user.email,
        expires,
        now,
    )
    .await?;
    let (subject, body) =
        templates::password_reset(&state.email.settings.public_url, &token, RESET_TTL_MINUTES);
    let mail = NewEmail {
        dedup_key: format!("reset:{id}"),
        user_id: Some(user.id.clone()),
        kind: kind::PASSWORD_RESET,
        to: user.email.clone(),
        subject,
        body,
    };
    state.email.enqueue(&state.db, mail).await?;
    Ok(())
}

/// Issues a verification token for `user`'s current address and enqueues its mail.
pub async fn send_verification(state: &SharedState, user: &User) -> crate::error::CpResult<()> {
    let token = new_token("wev_");
    let now = Utc::now();
    let expires = now + chrono::Duration::hours(VERIFY_TTL_HOURS);
    let id = account_tokens::insert(
        &state.db,
        &user.id,
        Purpose::VerifyEmail,
        &hash(&token),
        &user.email,
        expires,
        now,
    )
    .await?;
    let (subject, body) = templates::verify_email(&state.email.settings.public_url, &token, VERIFY_TTL_HOURS);
    let mail = NewEmail {
        dedup_key: format!("verify:{id}"),
        user_id: Some(user.id.clone()),
        kind: kind::VERIFY_EMAIL,
        to: user.email.clone(),
        subject,
        body,
    };
    state.email.enqueue(&state.db, mail).await?;
    Ok(())
}
