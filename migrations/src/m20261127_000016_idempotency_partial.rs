//! The unique index on `(session_id, idempotency_key)` only holds rows that
//! have a key: most sends come without one, and every row in the index is
//! one more B-tree insert per send (NULL keys never conflicted anyway, so
//! the rule it enforces is the same). The idempotent lookup
//! (`session_id = $1 AND idempotency_key = $2`) implies the predicate and
//! still uses it.

use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
DROP INDEX IF EXISTS idx_messages_idempotency;
CREATE UNIQUE INDEX idx_messages_idempotency ON messages (session_id, idempotency_key) WHERE idempotency_key IS NOT NULL
"#;

const DOWN: &str = r#"
DROP INDEX IF EXISTS idx_messages_idempotency;
CREATE UNIQUE INDEX idx_messages_idempotency ON messages (session_id, idempotency_key)
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
