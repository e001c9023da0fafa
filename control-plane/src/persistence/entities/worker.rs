use sea_orm::entity::prelude::*;

use crate::persistence::enums::WorkerStatus;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "workers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Informational (not unique): workers are identified by id.
    pub endpoint: String,
    pub status: WorkerStatus,
    pub session_count: i32,
    pub max_sessions: i32,
    pub cpu_usage: f64,
    pub memory_usage: f64,
    pub last_heartbeat: DateTimeUtc,
    pub description: Option<String>,
    pub version: Option<String>,
    pub token_hash: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Bumped by every Hello; liveness writes are fenced by it.
    pub stream_epoch: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
