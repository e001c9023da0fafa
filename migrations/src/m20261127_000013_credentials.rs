//! Credential lifecycle: a per-user token version (a password change or
//! logout-all invalidates every earlier access token at once) and rotating,
//! one-time refresh tokens grouped in families (reuse revokes the family);
//! the capacity an administrator set for a worker (`max_sessions_cap`), which
//! a worker's `Hello` may lower but never raise.

use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at {ts} NOT NULL,
    used_at {ts},
    revoked_at {ts},
    created_at {ts} NOT NULL
);
CREATE INDEX idx_refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX idx_refresh_tokens_user ON refresh_tokens (user_id);
ALTER TABLE workers ADD COLUMN max_sessions_cap INTEGER
"#;

const DOWN: &str = r#"
ALTER TABLE workers DROP COLUMN max_sessions_cap;
DROP TABLE IF EXISTS refresh_tokens;
ALTER TABLE users DROP COLUMN token_version
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
