//! Messages are also found by their WhatsApp id within a session: a
//! reaction, an edit or a read receipt names a message by the id WhatsApp
//! gave it (inbound messages have no other), and receipts of a real driver
//! come keyed by it. Partial: rows without one (PENDING sends) stay out.

use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE INDEX IF NOT EXISTS idx_messages_wa_id ON messages (session_id, wa_message_id) WHERE wa_message_id IS NOT NULL
"#;

const DOWN: &str = r#"
DROP INDEX IF EXISTS idx_messages_wa_id
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
