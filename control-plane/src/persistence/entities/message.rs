use sea_orm::entity::prelude::*;

use crate::persistence::enums::{MessageDirection, MessageStatus, MessageType};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub session_id: String,
    pub direction: MessageDirection,
    pub from_number: Option<String>,
    pub to_number: String,
    pub message_type: MessageType,
    pub content: String,
    pub media_url: Option<String>,
    pub filename: Option<String>,
    pub caption: Option<String>,
    pub status: MessageStatus,
    pub error_message: Option<String>,
    pub sent_at: Option<DateTimeUtc>,
    pub delivered_at: Option<DateTimeUtc>,
    pub read_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub wa_message_id: Option<String>,
    pub idempotency_key: Option<String>,
    /// JSON: the fields of LOCATION and CONTACT messages; `quoted` and
    /// `mentions` of any type.
    pub metadata: Option<String>,
    /// When the session edited it (its `content` is the new text).
    pub edited_at: Option<DateTimeUtc>,
    /// When it was deleted for everyone (its `content` is then empty).
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
