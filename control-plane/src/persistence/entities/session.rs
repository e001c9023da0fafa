use sea_orm::entity::prelude::*;

use crate::persistence::enums::SessionStatus;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: String,
    pub worker_id: Option<String>,
    pub name: String,
    pub phone_number: Option<String>,
    pub status: SessionStatus,
    pub qr_code: Option<String>,
    pub last_seen_at: Option<DateTimeUtc>,
    pub generation: i64,
    /// Why the session waits or failed (e.g. no worker with free capacity).
    pub status_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
