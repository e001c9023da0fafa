//! Fleet orchestration: encrypted auth-state custody and the reason a
//! session waits (e.g. for a worker with free capacity).

use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE session_auth_states (
    session_id TEXT PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    key_id TEXT NOT NULL,
    nonce {blob} NOT NULL,
    ciphertext {blob} NOT NULL,
    generation BIGINT NOT NULL,
    updated_at {ts} NOT NULL
);
ALTER TABLE sessions ADD COLUMN status_reason TEXT;
CREATE INDEX idx_sessions_waiting ON sessions (worker_id, status);
CREATE INDEX idx_messages_status_created ON messages (status, created_at);
"#;

const DOWN: &str = r#"
DROP INDEX IF EXISTS idx_messages_status_created;
DROP INDEX IF EXISTS idx_sessions_waiting;
ALTER TABLE sessions DROP COLUMN status_reason;
DROP TABLE IF EXISTS session_auth_states;
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
