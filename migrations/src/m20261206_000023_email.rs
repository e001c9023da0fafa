//! Email (issue 26): the durable email outbox (`email_outbox`, one row per
//! mail, `dedup_key` unique so one incident is one mail however many
//! replicas see it), single-use account tokens (`account_tokens`: password
//! reset and email verification, stored as SHA-256 hashes), and on `users`
//! the verification time and the notification switches (`notify_mask`, bits:
//! 1 session status, 2 message quota, 4 webhook disabled; all on by
//! default). Accounts that existed before count as verified.

use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
ALTER TABLE users ADD COLUMN email_verified_at {ts};
ALTER TABLE users ADD COLUMN notify_mask INTEGER NOT NULL DEFAULT 7;
UPDATE users SET email_verified_at = created_at;
CREATE TABLE email_outbox (
    id TEXT PRIMARY KEY,
    dedup_key TEXT NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    kind TEXT NOT NULL,
    to_addr TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('PENDING', 'RETRYING', 'SENT', 'FAILED')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at {ts} NOT NULL,
    locked_until {ts},
    locked_by TEXT,
    last_error TEXT,
    created_at {ts} NOT NULL,
    sent_at {ts},
    updated_at {ts} NOT NULL
);
CREATE UNIQUE INDEX uq_email_outbox_dedup ON email_outbox (dedup_key);
CREATE INDEX idx_email_outbox_due ON email_outbox (status, next_attempt_at);
CREATE INDEX idx_email_outbox_created ON email_outbox (created_at);
CREATE TABLE account_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL CHECK (purpose IN ('PASSWORD_RESET', 'VERIFY_EMAIL')),
    token_hash TEXT NOT NULL,
    email TEXT NOT NULL,
    expires_at {ts} NOT NULL,
    used_at {ts},
    created_at {ts} NOT NULL
);
CREATE UNIQUE INDEX uq_account_tokens_hash ON account_tokens (token_hash);
CREATE INDEX idx_account_tokens_user ON account_tokens (user_id, purpose)
"#;

const DOWN: &str = r#"
DROP TABLE IF EXISTS account_tokens;
DROP TABLE IF EXISTS email_outbox;
ALTER TABLE users DROP COLUMN notify_mask;
ALTER TABLE users DROP COLUMN email_verified_at
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
