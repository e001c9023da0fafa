use sea_orm::entity::prelude::*;

use crate::persistence::enums::LogLevel;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "system_logs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub level: LogLevel,
    pub service: String,
    pub message: String,
    pub details: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub worker_id: Option<String>,
    pub timestamp: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
