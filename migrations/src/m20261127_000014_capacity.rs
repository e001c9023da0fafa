//! Issue 12 (capacity is not free for the taking): `sessions.qr_since`, when
//! the session last started waiting for a QR scan on its worker. The sweep
//! stops a session still unpaired (INIT / QR_REQUIRED) `WAGATE_QR_TIMEOUT_SECS`
//! after it and frees its worker slot. NULL: paired, or not waiting on a
//! worker. Rows waiting for a scan today start their clock at `updated_at`.

use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
ALTER TABLE sessions ADD COLUMN qr_since {ts};
UPDATE sessions SET qr_since = updated_at WHERE status IN ('INIT', 'QR_REQUIRED') AND worker_id IS NOT NULL;
CREATE INDEX idx_sessions_qr_since ON sessions (qr_since)
"#;

const DOWN: &str = r#"
DROP INDEX IF EXISTS idx_sessions_qr_since;
ALTER TABLE sessions DROP COLUMN qr_since
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
