//! The `users` table (hand-written statements; the rest goes through the
//! entities).
//!
//! The fence it enforces: a user's session creates and starts take the
//! user's row lock first, so they see each other and the tier limit holds.

use sea_orm::{ConnectionTrait, DbErr};

use super::Db;
use super::measured::measured;

/// Locks the user's row for the transaction (PostgreSQL; SQLite's
/// `BEGIN IMMEDIATE` already serialises writers).
pub async fn lock_row<C: ConnectionTrait>(conn: &C, db: &Db, user_id: &str) -> Result<(), DbErr> {
    if !db.is_postgres() {
        return Ok(());
    }
    measured("users.lock_row", async {
        conn.execute_raw(
            db.stmt("SELECT id FROM users WHERE id = $1 FOR UPDATE", vec![user_id.to_owned().into()]),
        )
        .await?;
        Ok(())
    })
    .await
}
