//! Media (issue 24): one row per stored file of a session. The bytes live in
//! the media store under `object_key` (`<user>/<sha256>`: content-addressed
//! per account, so one object can back several rows); a row expires at
//! `expires_at` and the retention sweep deletes it, and its object once no
//! other row of the account names it.

use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE media (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    object_key TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    filename TEXT,
    direction TEXT NOT NULL CHECK (direction IN ('OUTBOUND', 'INBOUND')),
    created_at {ts} NOT NULL,
    expires_at {ts} NOT NULL
);
CREATE INDEX idx_media_object ON media (object_key);
CREATE INDEX idx_media_expires ON media (expires_at)
"#;

const DOWN: &str = r#"
DROP INDEX IF EXISTS idx_media_expires;
DROP INDEX IF EXISTS idx_media_object;
DROP TABLE IF EXISTS media
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
