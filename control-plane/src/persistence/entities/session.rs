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
    /// Since when the session waits for a QR scan on its worker (NULL: paired,
    /// or not on a worker); the sweep frees its slot after the QR timeout.
    pub qr_since: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
