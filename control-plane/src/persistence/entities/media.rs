use sea_orm::entity::prelude::*;

/// A stored media file of a session: its bytes are the object `object_key`
/// of the media store (`<user>/<sha256>`, shared by rows of one account
/// with the same content).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "media")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: String,
    pub session_id: String,
    pub sha256: String,
    pub object_key: String,
    pub mime_type: String,
    pub size_bytes: i64,
    pub filename: Option<String>,
    /// `OUTBOUND` (uploaded to be sent) or `INBOUND` (received).
    pub direction: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
