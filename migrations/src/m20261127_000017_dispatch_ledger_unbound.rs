//! PostgreSQL: the `message_dispatch` ledger no longer has a foreign key to
//! `messages`. Every send inserts a ledger row with its message, in the same
//! statement, so the key could never catch anything; but its check (a
//! lookup of the message and a row lock on it) cost 7–10 µs per send, a
//! quarter of the insert (measured with `EXPLAIN ANALYZE` on a 64-row
//! batch). What the key's `ON DELETE CASCADE` did (ledger rows of deleted
//! messages, i.e. of deleted sessions or users) the sweeper now does
//! (`message_dispatch::drop_orphans`). SQLite keeps the key (its
//! constraints cannot be dropped in place, and its cost there is small).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = "ALTER TABLE message_dispatch DROP CONSTRAINT IF EXISTS message_dispatch_id_fkey";

const DOWN: &[&str] = &[
    "DELETE FROM message_dispatch d WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = d.id)",
    "ALTER TABLE message_dispatch ADD CONSTRAINT message_dispatch_id_fkey \
     FOREIGN KEY (id) REFERENCES messages (id) ON DELETE CASCADE",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager.get_connection().execute_unprepared(UP).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            for sql in DOWN {
                manager.get_connection().execute_unprepared(sql).await?;
            }
        }
        Ok(())
    }
}
