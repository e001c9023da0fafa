//! The send pipeline (issue 10): a narrow dispatch ledger and HOT-friendly
//! message status updates.
//!
//! - `message_dispatch`: one row per outbound message that no worker has
//!   acknowledged yet (written with the message row, deleted in the same
//!   transaction as its first forward status move). Its attempt counter and
//!   `dispatched_at` tell the sweep what is genuinely unacknowledged, so
//!   the sweep scans this small table instead of `messages`.
//! - `idx_messages_status_created` is dropped: an index on `status` makes
//!   every status change a non-HOT update (a new index entry in each of the
//!   table's indexes). Nothing reads by status any more.
//! - PostgreSQL: `messages` keeps free room on each page (fillfactor) so the
//!   SENT / DELIVERED / READ updates stay on the page (HOT).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE message_dispatch (
    id TEXT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    created_at {ts} NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    dispatched_at {ts}
);
CREATE INDEX idx_message_dispatch_session ON message_dispatch (session_id);
INSERT INTO message_dispatch (id, session_id, created_at, attempts, dispatched_at)
    SELECT id, session_id, created_at, 1, created_at FROM messages
    WHERE status = 'PENDING' AND direction = 'OUTBOUND';
DROP INDEX IF EXISTS idx_messages_status_created;
"#;

const DOWN: &str = r#"
CREATE INDEX idx_messages_status_created ON messages (status, created_at);
DROP TABLE IF EXISTS message_dispatch;
"#;

/// Free room left on each `messages` page for HOT updates (PostgreSQL).
const POSTGRES_UP: &str = "ALTER TABLE messages SET (fillfactor = 60)";
const POSTGRES_DOWN: &str = "ALTER TABLE messages RESET (fillfactor)";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::execute(manager, UP).await?;
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager.get_connection().execute_unprepared(POSTGRES_UP).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager.get_connection().execute_unprepared(POSTGRES_DOWN).await?;
        }
        ddl::execute(manager, DOWN).await
    }
}
