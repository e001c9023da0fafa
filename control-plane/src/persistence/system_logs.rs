//! The `system_logs` table: the audit trail (written off the request path,
//! read by administrators).
//!
//! The fence it enforces: none; rows are only appended.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::Db;
use super::entities::system_log;
use super::enums::LogLevel;
use super::measured::measured;

/// A `system_logs` row.
pub type SystemLog = system_log::Model;

/// Appends one entry.
pub async fn insert(db: &Db, row: SystemLog) -> Result<(), DbErr> {
    measured("system_logs.insert", async {
        let active: system_log::ActiveModel = row.into();
        active.reset_all().insert(&db.conn).await?;
        Ok(())
    })
    .await
}

/// Which entries a page holds (`None`: any).
#[derive(Debug, Default)]
pub struct LogFilter<'a> {
    pub level: Option<LogLevel>,
    pub service: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// A page of entries, newest first, with the total.
pub async fn page(
    db: &Db,
    f: LogFilter<'_>,
    offset: u64,
    limit: u64,
) -> Result<(u64, Vec<SystemLog>), DbErr> {
    measured("system_logs.page", async {
        let mut query = system_log::Entity::find();
        if let Some(l) = f.level {
            query = query.filter(system_log::Column::Level.eq(l));
        }
        if let Some(service) = f.service {
            query = query.filter(system_log::Column::Service.eq(service));
        }
        if let Some(id) = f.user_id {
            query = query.filter(system_log::Column::UserId.eq(id));
        }
        if let Some(from) = f.from {
            query = query.filter(system_log::Column::Timestamp.gte(from));
        }
        if let Some(to) = f.to {
            query = query.filter(system_log::Column::Timestamp.lte(to));
        }
        let order = |q: sea_orm::Select<system_log::Entity>| {
            q.order_by_desc(system_log::Column::Timestamp).order_by_desc(system_log::Column::Id)
        };
        super::page(db, query, order, offset, limit).await
    })
    .await
}
