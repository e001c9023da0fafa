//! Rate limits and usage metering: an administrator's per-user message
//! quota (`users.message_quota`, NULL: the tier's), and `usage_records` as
//! counters per billing month, user, session, API key and metric, upserted
//! by each replica's periodic flush (the brief's table had no metric and a
//! required API key; nothing wrote to it yet, so it is replaced). Usage rows
//! keep the session and key ids without foreign keys: deleting a session or
//! revoking a key must not erase what was billed.

use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
ALTER TABLE users ADD COLUMN message_quota BIGINT;
DROP TABLE IF EXISTS usage_records;
CREATE TABLE usage_records (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id TEXT NOT NULL DEFAULT '',
    api_key_id TEXT NOT NULL DEFAULT '',
    metric TEXT NOT NULL,
    usage_count BIGINT NOT NULL DEFAULT 0,
    billing_date {ts} NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE UNIQUE INDEX uq_usage_records_key ON usage_records (billing_date, user_id, session_id, api_key_id, metric);
CREATE INDEX idx_usage_user_billing ON usage_records (user_id, billing_date)
"#;

const DOWN: &str = r#"
DROP TABLE IF EXISTS usage_records;
CREATE TABLE usage_records (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id TEXT REFERENCES sessions (id) ON DELETE SET NULL,
    api_key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    usage_count INTEGER NOT NULL DEFAULT 0,
    billing_date {ts} NOT NULL,
    created_at {ts} NOT NULL
);
CREATE INDEX idx_usage_user_billing ON usage_records (user_id, billing_date);
CREATE INDEX idx_usage_key_billing ON usage_records (api_key_id, billing_date);
CREATE INDEX idx_usage_session_billing ON usage_records (session_id, billing_date);
ALTER TABLE users DROP COLUMN message_quota
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
