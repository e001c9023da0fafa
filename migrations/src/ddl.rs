//! Renders portable DDL for the connected backend.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

/// Replaces the type placeholders of `sql` for `backend` and runs each
/// `;`-separated statement.
pub async fn execute(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    let backend = manager.get_database_backend();
    let rendered = render(backend, sql);
    let conn = manager.get_connection();
    for stmt in rendered.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        conn.execute_unprepared(stmt).await?;
    }
    Ok(())
}

pub fn render(backend: DatabaseBackend, sql: &str) -> String {
    let (ts, blob) = match backend {
        DatabaseBackend::Postgres => ("TIMESTAMPTZ", "BYTEA"),
        _ => ("TEXT", "BLOB"),
    };
    sql.replace("{ts}", ts).replace("{blob}", blob)
}
