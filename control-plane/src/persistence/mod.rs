//! The database: connection (PostgreSQL or SQLite), migrations, entities,
//! and every statement the control plane runs (entity queries and raw SQL
//! alike), as typed functions per table wrapped by [`measured::measured`]
//! (`sessions`, `messages`, `message_dispatch`, `workers`, `webhooks`,
//! `usage`, `api_keys`, `auth_states`, `users`, `refresh_tokens`,
//! `system_logs`, `analytics`, `email_outbox`, `account_tokens`), with the row types they return. The
//! session generation fence ([`sessions::Fence`]) and the worker stream
//! epoch fence ([`workers`]) are rendered here and nowhere else.
//!
//! This module imports nothing from the features above it; they call it,
//! holding only [`Db`], [`Tx`] (a transaction from [`Db::begin`]), [`Conn`]
//! and [`DbErr`]. What it must tell a feature goes through a trait defined
//! here ([`status_writer::Written`], [`status_writer::StatusHook`]).
//!
//! The database is the source of truth for users, sessions, workers, keys
//! and messages (a session's worker included); the cache layer holds only
//! what is shared between replicas (worker → replica records, leases,
//! deny-lists, rate-limit counters).

pub(crate) mod account_tokens;
pub(crate) mod analytics;
pub(crate) mod api_keys;
pub(crate) mod auth_states;
pub(crate) mod email_outbox;
pub mod entities;
pub mod enums;
pub mod measured;
pub(crate) mod media;
pub(crate) mod message_dispatch;
pub mod message_inserter;
pub(crate) mod messages;
pub(crate) mod refresh_tokens;
pub(crate) mod session_events;
pub(crate) mod sessions;
pub mod status_writer;
pub(crate) mod system_logs;
pub(crate) mod usage;
pub(crate) mod users;
pub(crate) mod webhooks;
pub mod workers;

use std::path::Path;
use std::time::Duration;

use sea_orm::{ConnectOptions, DatabaseBackend, DatabaseConnection, Statement};
/// The handles the features hold and pass back in (a connection or a
/// transaction, generically [`Conn`]), and the error every operation returns.
/// The statements themselves stay in this module.
pub use sea_orm::{ConnectionTrait as Conn, DatabaseTransaction as Tx, DbErr};
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
        // `$N` → `?N`: SQLite's numbered parameter, so a statement may use
        // its parameters out of order or more than once, as on PostgreSQL.
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                out.push(d);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The SQLite file of `url` (`None` for `:memory:` or an empty path).
fn sqlite_path(url: &str) -> Option<&Path> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:") && !path.starts_with("file::memory:"))
        .then(|| Path::new(path))
}

/// Prepares the SQLite file before SQLite opens it: a folder we create is
/// 0700, the database file is created 0600 (SQLite gives its `-wal` and
/// `-shm` files the database file's mode), and an existing file readable by
/// others is narrowed to 0600. It holds password hashes and encrypted auth
/// states. An existing folder is left as it is (it may be shared, e.g.
/// `/tmp`); one that others can read is reported.
fn ensure_sqlite_dir(url: &str) {
    let Some(path) = sqlite_path(url) else { return };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        if parent.exists() {
            warn_if_open(parent);
        } else if let Err(e) = create_private_dir(parent) {
            tracing::warn!(path = %parent.display(), error = %e, "could not create the database folder");
        }
    }
    if let Err(e) = private_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "could not restrict the database file to 0600");
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn warn_if_open(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(dir)
        && meta.permissions().mode() & 0o007 != 0
    {
        tracing::warn!(path = %dir.display(), "the database folder is accessible to other users; consider chmod 700");
    }
}

#[cfg(not(unix))]
fn warn_if_open(_dir: &Path) {}

/// Creates the file 0600 if missing; narrows an existing file (and its
/// `-wal`/`-shm` companions) to 0600 when group or others may read it.
#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)?;
    for file in [path.to_path_buf(), suffixed(path, "-wal"), suffixed(path, "-shm")] {
        if let Ok(meta) = std::fs::metadata(&file)
            && meta.permissions().mode() & 0o077 != 0
        {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            tracing::info!(path = %file.display(), "database file narrowed to 0600");
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn private_file(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn suffixed(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

/// A page of `query` (filtered, not yet ordered) ordered by `order`: the
/// total count of the filtered rows and the rows `offset..offset + limit`.
pub(crate) async fn page<E>(
    db: &Db,
    query: sea_orm::Select<E>,
    order: impl FnOnce(sea_orm::Select<E>) -> sea_orm::Select<E>,
    offset: u64,
    limit: u64,
) -> Result<(u64, Vec<E::Model>), DbErr>
where
    E: sea_orm::EntityTrait,
    E::Model: Send + Sync,
{
    use sea_orm::{PaginatorTrait, QuerySelect};
    let total = query.clone().count(&db.conn).await?;
    let rows = order(query).offset(offset).limit(limit).all(&db.conn).await?;
    Ok((total, rows))
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    fn mode(path: &std::path::Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// The embedded database holds password hashes: 0600 in a 0700 folder
    /// we create, and an older 0644 file is narrowed.
    #[cfg(unix)]
    #[tokio::test]
    async fn sqlite_file_is_private() {
        let root = std::env::temp_dir().join(format!("wagate-mode-{}", uuid::Uuid::new_v4().simple()));
        let dir = root.join("data");
        let file = dir.join("wagate.db");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let db = super::Db::connect(&url, 1).await.unwrap();
        assert_eq!(mode(&file), 0o600, "database file");
        assert_eq!(mode(&dir), 0o700, "database folder");
        let wal = super::suffixed(&file, "-wal");
        if wal.exists() {
            assert_eq!(mode(&wal), 0o600, "wal file");
        }
        db.conn.close().await.unwrap();
        // a file left 0644 by an older version is narrowed at start-up
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let db = super::Db::connect(&url, 1).await.unwrap();
        assert_eq!(mode(&file), 0o600, "narrowed");
        db.conn.close().await.unwrap();
        std::fs::remove_dir_all(root).unwrap();
        assert_eq!(super::sqlite_path("sqlite::memory:"), None);
    }

    #[test]
    fn placeholders_are_rewritten_for_sqlite() {
        assert_eq!(
            super::dollar_to_question("a = $1 AND b = $12 AND c = '$'"),
            "a = ?1 AND b = ?12 AND c = '$'"
        );
    }
}
