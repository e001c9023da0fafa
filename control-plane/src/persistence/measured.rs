//! Every typed persistence operation runs through [`measured`]: one
//! `wagate_db_operation_seconds` histogram sample per call, labelled with the
//! operation's name and outcome (the idea of neon's `with_measured_conn`),
//! and for a failed call one `wagate_db_operation_errors_total` sample
//! labelled with the operation and the error's [`ErrorKind`] (a bounded set).

use std::future::Future;
use std::time::Instant;

use sea_orm::sqlx::Error as SqlxError;
use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr, SqlErr};

/// Duration of each operation, labelled `op` and `outcome` (`ok`, `error`).
pub const DB_OPERATION_SECONDS: &str = "wagate_db_operation_seconds";
/// Failed operations, labelled `op` and `kind` ([`ErrorKind::as_str`]).
pub const DB_OPERATION_ERRORS: &str = "wagate_db_operation_errors_total";

/// What kind of failure an operation met: the `kind` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A unique constraint refused the row (a taken email, id, …).
    UniqueViolation,
    /// The row the operation needed is not there.
    NotFound,
    /// The database could not be reached or the connection broke (closed
    /// pool, I/O, TLS, protocol, server shutting down).
    Connection,
    /// Waited too long: for a pooled connection, on a lock (SQLite busy), or
    /// the statement was cancelled by its timeout.
    Timeout,
    /// Anything else (a bug, a type mismatch, another constraint).
    Other,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 5] =
        [Self::UniqueViolation, Self::NotFound, Self::Connection, Self::Timeout, Self::Other];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UniqueViolation => "unique_violation",
            Self::NotFound => "not_found",
            Self::Connection => "connection",
            Self::Timeout => "timeout",
            Self::Other => "other",
        }
    }

    /// The kind of `err`.
    pub fn of(err: &DbErr) -> Self {
        if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
            return Self::UniqueViolation;
        }
        match err {
            DbErr::RecordNotFound(_) | DbErr::RecordNotUpdated => Self::NotFound,
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => Self::Timeout,
            DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) | DbErr::Conn(_) => Self::Connection,
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
                Self::of_sqlx(e)
            }
            _ => Self::Other,
        }
    }

    fn of_sqlx(e: &SqlxError) -> Self {
        match e {
            SqlxError::RowNotFound => Self::NotFound,
            SqlxError::PoolTimedOut => Self::Timeout,
            SqlxError::Io(_)
            | SqlxError::Tls(_)
            | SqlxError::Protocol(_)
            | SqlxError::PoolClosed
            | SqlxError::WorkerCrashed => Self::Connection,
            SqlxError::Database(db) => match db.code().as_deref() {
                // PostgreSQL: statement timeout / cancelled, lock timeout.
                Some("57014" | "55P03") => Self::Timeout,
                // SQLite: SQLITE_BUSY (and its extended codes), SQLITE_LOCKED.
                Some("5" | "6" | "261" | "517" | "262") => Self::Timeout,
                // PostgreSQL: 08xxx connection exception, 57xxx operator
                // intervention (server shutting down, cannot connect now).
                Some(c) if c.starts_with("08") || c.starts_with("57") => Self::Connection,
                _ => Self::Other,
            },
            _ => Self::Other,
        }
    }
}

/// An error [`measured`] can label.
pub trait Classify {
    fn kind(&self) -> ErrorKind;
}

impl Classify for DbErr {
    fn kind(&self) -> ErrorKind {
        ErrorKind::of(self)
    }
}

/// Runs `f`, recording its duration under `op` (and the kind of its error).
pub async fn measured<T, E, F>(op: &'static str, f: F) -> Result<T, E>
where
    E: Classify,
    F: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let result = f.await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    ::metrics::histogram!(DB_OPERATION_SECONDS, "op" => op, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    if let Err(err) = &result {
        ::metrics::counter!(DB_OPERATION_ERRORS, "op" => op, "kind" => err.kind().as_str()).increment(1);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sea_orm::ConnectionTrait;

    use super::*;

    fn sqlx(e: SqlxError) -> DbErr {
        DbErr::Query(RuntimeErr::SqlxError(Arc::new(e)))
    }

    #[test]
    fn kinds_of_errors_without_a_database() {
        assert_eq!(ErrorKind::of(&DbErr::RecordNotFound("user".into())), ErrorKind::NotFound);
        assert_eq!(ErrorKind::of(&DbErr::RecordNotUpdated), ErrorKind::NotFound);
        assert_eq!(ErrorKind::of(&sqlx(SqlxError::RowNotFound)), ErrorKind::NotFound);
        assert_eq!(ErrorKind::of(&DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)), ErrorKind::Timeout);
        assert_eq!(ErrorKind::of(&sqlx(SqlxError::PoolTimedOut)), ErrorKind::Timeout);
        assert_eq!(
            ErrorKind::of(&DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)),
            ErrorKind::Connection
        );
        assert_eq!(
            ErrorKind::of(&DbErr::Conn(RuntimeErr::Internal("refused".into()))),
            ErrorKind::Connection
        );
        assert_eq!(ErrorKind::of(&sqlx(SqlxError::PoolClosed)), ErrorKind::Connection);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(
            ErrorKind::of(&DbErr::Exec(RuntimeErr::SqlxError(Arc::new(SqlxError::Io(io))))),
            ErrorKind::Connection
        );
        assert_eq!(ErrorKind::of(&DbErr::Custom("bug".into())), ErrorKind::Other);
        assert_eq!(ErrorKind::of(&DbErr::Type("mismatch".into())), ErrorKind::Other);
        let labels: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(labels, ["unique_violation", "not_found", "connection", "timeout", "other"]);
    }

    /// A real unique violation (SQLite) is told apart from another
    /// constraint's refusal.
    #[tokio::test]
    async fn kinds_of_database_errors() {
        let db = super::super::Db::connect("sqlite::memory:", 1).await.unwrap();
        db.conn.execute_unprepared("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER NOT NULL)").await.unwrap();
        db.conn.execute_unprepared("INSERT INTO t (id, n) VALUES ('a', 1)").await.unwrap();
        let dup = db.conn.execute_unprepared("INSERT INTO t (id, n) VALUES ('a', 2)").await.unwrap_err();
        assert_eq!(ErrorKind::of(&dup), ErrorKind::UniqueViolation, "{dup:?}");
        let null = db.conn.execute_unprepared("INSERT INTO t (id, n) VALUES ('b', NULL)").await.unwrap_err();
        assert_eq!(ErrorKind::of(&null), ErrorKind::Other, "{null:?}");
        let measured_err = measured("t.insert", async {
            db.conn.execute_unprepared("INSERT INTO t (id, n) VALUES ('a', 3)").await.map(|_| ())
        })
        .await
        .unwrap_err();
        assert_eq!(measured_err.kind(), ErrorKind::UniqueViolation);
    }
}
