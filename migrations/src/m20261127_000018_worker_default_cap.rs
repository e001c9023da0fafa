//! Workers an administrator registered (`POST /admin/workers`, they hold a
//! `token_hash`) without saying `maxSessions` got the default capacity (50)
//! but no `max_sessions_cap`, so their `Hello` could advertise any capacity
//! and placement believed it (issue 20). Registration now always records the
//! cap; this gives the rows registered before it the default they were
//! given, and brings a capacity inflated by a `Hello` back under it (the
//! worker's next `Hello` may advertise less, never more). Workers that joined
//! with the shared token (no `token_hash`) have no administrator's setting
//! and are left as they are. Not undone by `down` (the cap is what the
//! administrator chose).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `DEFAULT_MAX_SESSIONS` of the control plane's worker registration.
const UP: &[&str] = &[
    "UPDATE workers SET max_sessions = CASE WHEN max_sessions > 50 THEN 50 ELSE max_sessions END \
     WHERE token_hash IS NOT NULL AND max_sessions_cap IS NULL",
    "UPDATE workers SET max_sessions_cap = 50 WHERE token_hash IS NOT NULL AND max_sessions_cap IS NULL",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for sql in UP {
            manager.get_connection().execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
