//! Webhooks (issue 11): the durable outbox's columns. A delivery row is one
//! event for one webhook (its id is the event id, sent as `webhook-id`);
//! `session_id` and the per-webhook order give in-order delivery, `locked_*`
//! is the dispatcher's lease (claimed with `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL), and a rotated secret keeps signing until
//! `previous_secret_expires_at`.

use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
ALTER TABLE webhooks ADD COLUMN previous_secret TEXT;
ALTER TABLE webhooks ADD COLUMN previous_secret_expires_at {ts};
ALTER TABLE webhooks ADD COLUMN disabled_reason TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN session_id TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN last_error TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN locked_until {ts};
ALTER TABLE webhook_deliveries ADD COLUMN locked_by TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN updated_at {ts};
CREATE INDEX idx_webhook_deliveries_head ON webhook_deliveries (webhook_id, status, id);
CREATE INDEX idx_webhook_deliveries_created ON webhook_deliveries (created_at)
"#;

const DOWN: &str = r#"
DROP INDEX IF EXISTS idx_webhook_deliveries_created;
DROP INDEX IF EXISTS idx_webhook_deliveries_head;
ALTER TABLE webhook_deliveries DROP COLUMN updated_at;
ALTER TABLE webhook_deliveries DROP COLUMN locked_by;
ALTER TABLE webhook_deliveries DROP COLUMN locked_until;
ALTER TABLE webhook_deliveries DROP COLUMN last_error;
ALTER TABLE webhook_deliveries DROP COLUMN session_id;
ALTER TABLE webhooks DROP COLUMN disabled_reason;
ALTER TABLE webhooks DROP COLUMN previous_secret_expires_at;
ALTER TABLE webhooks DROP COLUMN previous_secret
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
