//! The live event log (issue 23): `GET /sessions/{id}/events` (Server-Sent
//! Events) reads a session's events from here, resuming after the
//! `Last-Event-ID` a client reconnects with. A session's events are written
//! here (next to its webhook's outbox rows, in the same transaction) while
//! `sessions.live_until` is in the future: a live client turns it on for the
//! retention period, so sessions nobody watches pay nothing.
//!
//! Also: when a sent message was edited or deleted for everyone
//! (`PATCH`/`DELETE /sessions/{id}/messages/{messageId}`).

use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
ALTER TABLE sessions ADD COLUMN live_until {ts};
CREATE TABLE session_events (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at {ts} NOT NULL
);
CREATE INDEX idx_session_events_session ON session_events (session_id, id);
CREATE INDEX idx_session_events_created ON session_events (created_at);
ALTER TABLE messages ADD COLUMN edited_at {ts};
ALTER TABLE messages ADD COLUMN deleted_at {ts}
"#;

const DOWN: &str = r#"
ALTER TABLE messages DROP COLUMN deleted_at;
ALTER TABLE messages DROP COLUMN edited_at;
DROP TABLE IF EXISTS session_events;
ALTER TABLE sessions DROP COLUMN live_until
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::execute(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::execute(manager, DOWN).await
    }
}
