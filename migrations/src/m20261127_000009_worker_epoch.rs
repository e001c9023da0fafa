//! Issue 9: many control-plane replicas.
//!
//! - `workers.stream_epoch`: a durable, strictly increasing number per worker,
//!   bumped by every `Hello`. Liveness writes (OFFLINE marks, samples) apply
//!   only with the current epoch, so the end of a stale stream on one replica
//!   cannot mark a worker OFFLINE that reconnected to another.
//! - `workers.endpoint` is informational: no longer unique (workers are
//!   identified by id; two workers on one host share the host name).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP_PG: &str = r#"
ALTER TABLE workers ADD COLUMN stream_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workers DROP CONSTRAINT IF EXISTS workers_endpoint_key;
CREATE INDEX idx_workers_endpoint ON workers (endpoint);
"#;

/// SQLite cannot drop a column constraint: the table is rebuilt (the
/// documented 12-step procedure, foreign keys off meanwhile).
const UP_SQLITE: &str = r#"
CREATE TABLE workers_new (
    id TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'ONLINE' CHECK (status IN ('ONLINE', 'OFFLINE', 'MAINTENANCE')),
    session_count INTEGER NOT NULL DEFAULT 0 CHECK (session_count >= 0),
    max_sessions INTEGER NOT NULL DEFAULT 50 CHECK (max_sessions >= 0),
    cpu_usage DOUBLE PRECISION NOT NULL DEFAULT 0,
    memory_usage DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_heartbeat TEXT NOT NULL,
    description TEXT,
    version TEXT,
    token_hash TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    stream_epoch BIGINT NOT NULL DEFAULT 0
);
INSERT INTO workers_new (id, endpoint, status, session_count, max_sessions, cpu_usage, memory_usage,
    last_heartbeat, description, version, token_hash, created_at, updated_at, stream_epoch)
  SELECT id, endpoint, status, session_count, max_sessions, cpu_usage, memory_usage,
    last_heartbeat, description, version, token_hash, created_at, updated_at, 0 FROM workers;
DROP TABLE workers;
ALTER TABLE workers_new RENAME TO workers;
CREATE INDEX idx_workers_placement ON workers (status, session_count);
CREATE INDEX idx_workers_endpoint ON workers (endpoint)
"#;

const DOWN: &str = r#"
DROP INDEX IF EXISTS idx_workers_endpoint;
ALTER TABLE workers DROP COLUMN stream_epoch;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => {
                let conn = manager.get_connection();
                conn.execute_unprepared("PRAGMA foreign_keys = OFF").await?;
                let result = async {
                    conn.execute_unprepared("BEGIN").await?;
                    for stmt in UP_SQLITE.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                        if let Err(e) = conn.execute_unprepared(stmt).await {
                            let _ = conn.execute_unprepared("ROLLBACK").await;
                            return Err(e);
                        }
                    }
                    conn.execute_unprepared("COMMIT").await.map(|_| ())
                }
                .await;
                conn.execute_unprepared("PRAGMA foreign_keys = ON").await?;
                result
            }
            _ => ddl::execute(manager, UP_PG).await,
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::execute(manager, DOWN).await
    }

    fn use_transaction(&self) -> Option<bool> {
        // PostgreSQL: one transaction (default); SQLite: manual, see `up`.
        None
    }
}
