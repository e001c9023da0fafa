//! The database: connection (PostgreSQL or SQLite), migrations, entities,
//! and every hand-written statement, as typed, measured functions per
//! table (`sessions`, `messages`, `message_dispatch`, `workers`, `webhooks`,
//! `usage`, `api_keys`, `auth_states`, `users`, `analytics`). The
//! session generation fence ([`sessions::Fence`]) and the worker stream
//! epoch fence ([`workers`]) are rendered here and nowhere else.
//!
//! The database is the source of truth for users, sessions, workers, keys
//! and messages (a session's worker included); the cache layer holds only
//! what is shared between replicas (worker → replica records, leases,
//! deny-lists, rate-limit counters).

pub(crate) mod analytics;
pub(crate) mod api_keys;
pub(crate) mod auth_states;
pub mod entities;
pub mod enums;
pub mod measured;
pub(crate) mod message_dispatch;
pub mod message_inserter;
pub(crate) mod messages;
pub(crate) mod sessions;
pub mod status_writer;
pub(crate) mod usage;
pub(crate) mod users;
pub(crate) mod webhooks;
pub mod workers;

use std::path::Path;
use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, Statement};
use sea_orm_migration::MigratorTrait;
use wagate_migrations::Migrator;

/// A connected, migrated database.
#[derive(Clone, Debug)]
pub struct Db {
    pub conn: DatabaseConnection,
}

impl Db {
    /// Connects to `url` (`postgres://…` or `sqlite://path?mode=rwc`), creating
    /// the SQLite file's folder when needed, and applies pending migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbErr> {
        let is_sqlite = url.starts_with("sqlite:");
        if is_sqlite {
            ensure_sqlite_dir(url);
        }
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(10))
            .sqlx_logging(false);
        if is_sqlite {
            // SQLite has one writer; one connection avoids SQLITE_BUSY on
            // deferred transactions that upgrade from read to write.
            opts.max_connections(1).min_connections(1);
        } else {
            opts.max_connections(max_connections.max(2)).min_connections(1);
        }
        let conn = sea_orm::Database::connect(opts).await?;
        if is_sqlite {
            for pragma in
                ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL", "PRAGMA foreign_keys = ON"]
            {
                conn.execute_unprepared(pragma).await?;
            }
        }
        Migrator::up(&conn, None).await?;
        Ok(Self { conn })
    }

    pub fn backend(&self) -> DatabaseBackend {
        self.conn.get_database_backend()
    }

    pub fn is_postgres(&self) -> bool {
        self.backend() == DatabaseBackend::Postgres
    }

    /// Builds a raw statement for this backend, turning `$1`-style
    /// placeholders into `?` for SQLite.
    pub fn stmt(&self, sql: &str, values: Vec<sea_orm::Value>) -> Statement {
        let sql = match self.backend() {
            DatabaseBackend::Postgres => sql.to_owned(),
            _ => dollar_to_question(sql),
        };
        Statement::from_sql_and_values(self.backend(), sql, values)
    }

    /// Starts a transaction. On SQLite it takes the write lock at `BEGIN`
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes
    /// fails at once with `SQLITE_BUSY` when another connection (another
    /// replica on the same file) committed in between, without waiting on the
    /// busy timeout. PostgreSQL transactions are unchanged.
    pub async fn begin(&self) -> Result<sea_orm::DatabaseTransaction, DbErr> {
        use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
        if self.is_postgres() {
            return self.conn.begin().await;
        }
        self.conn
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
    }

    pub async fn ping(&self) -> Result<(), DbErr> {
        self.conn.ping().await
    }
}

fn dollar_to_question(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

fn ensure_sqlite_dir(url: &str) {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return;
    }
    if let Some(parent) = Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        let _ = std::fs::create_dir_all(parent);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_rewritten_for_sqlite() {
        assert_eq!(
            super::dollar_to_question("a = $1 AND b = $12 AND c = '$'"),
            "a = ? AND b = ? AND c = '$'"
        );
    }
}
