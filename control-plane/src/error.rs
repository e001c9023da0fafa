//! The control plane's error type: module errors converge here and leave as
//! an [`ApiError`] (gRPC status with `x-wagate-code`).

use sea_orm::DbErr;
use wagate_proto::error::{ApiError, ErrorCode};

use crate::cache::CacheError;
use crate::stream::registry::DispatchError;

#[derive(Debug, thiserror::Error)]
pub enum CpError {
    /// Already classified for the caller (validation, auth, not found, …).
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("cache: {0}")]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    #[error("password hashing: {0}")]
    Hashing(String),
    #[error("the control plane is shutting down")]
    ShuttingDown,
}

pub type CpResult<T> = Result<T, CpError>;

impl From<CpError> for ApiError {
    fn from(e: CpError) -> Self {
        match e {
            CpError::Api(api) => api,
            CpError::Dispatch(d) => d.into(),
            CpError::ShuttingDown => {
                ApiError::new(ErrorCode::ShuttingDown, "the control plane is shutting down")
                    .with_retry_after(1)
            }
            CpError::Db(err) if is_unavailable(&err) => {
                tracing::warn!(error = %err, "database unavailable");
                ::metrics::counter!("wagate_db_unavailable_total").increment(1);
                ApiError::new(ErrorCode::Unavailable, "database unavailable, retry shortly")
                    .with_retry_after(2)
            }
            CpError::Db(err) => {
                tracing::error!(error = %err, "database error");
                ApiError::new(ErrorCode::Internal, "internal error")
            }
            CpError::Cache(err) => {
                tracing::error!(error = %err, "cache error");
                ApiError::new(ErrorCode::Unavailable, "cache unavailable").with_retry_after(1)
            }
            CpError::Hashing(err) => {
                tracing::error!(error = %err, "password hashing error");
                ApiError::new(ErrorCode::Internal, "internal error")
            }
        }
    }
}

impl From<CpError> for tonic::Status {
    fn from(e: CpError) -> Self {
        ApiError::from(e).to_status()
    }
}

/// Shorthand constructors used across services.
pub fn invalid(field: &str, message: impl Into<String>) -> CpError {
    CpError::Api(ApiError::invalid(field, message))
}

/// A well-formed request the caller may not make (a wrong current password,
/// an administrator acting on its own account): 403 naming the field.
pub fn refused(field: &str, message: impl Into<String>) -> CpError {
    CpError::Api(ApiError { field: Some(field.to_owned()), ..ApiError::new(ErrorCode::Forbidden, message) })
}

pub fn api(code: ErrorCode, message: impl Into<String>) -> CpError {
    CpError::Api(ApiError::new(code, message))
}

/// True when the database refused a row for a unique constraint.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// True when the database could not be reached or the connection broke
/// (pool exhausted or closed, I/O, TLS, protocol, server shutting down):
/// a dependency failure (503 + Retry-After), not a bug (500).
pub fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::Error as SqlxError;
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => match &**e {
            SqlxError::Io(_)
            | SqlxError::Tls(_)
            | SqlxError::Protocol(_)
            | SqlxError::PoolTimedOut
            | SqlxError::PoolClosed
            | SqlxError::WorkerCrashed => true,
            // 08xxx connection exception, 57xxx operator intervention
            // (server shutting down, cannot connect now).
            SqlxError::Database(db) => db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57")),
            _ => false,
        },
        _ => false,
    }
}
