use sea_orm::entity::prelude::*;

use crate::persistence::enums::{UserRole, UserTier};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    #[sea_orm(unique)]
    pub email: String,
    pub password_hash: String,
    pub role: UserRole,
    pub tier: UserTier,
    pub is_active: bool,
    /// Bumped by a password change or logout-all: tokens carry the version
    /// they were issued at and older ones are refused.
    pub token_version: i64,
    /// An administrator's message quota per window for this user (`None`:
    /// the tier's).
    pub message_quota: Option<i64>,
    pub last_login_at: Option<DateTimeUtc>,
    /// When the owner followed the verification link (`None`: not verified).
    pub email_verified_at: Option<DateTimeUtc>,
    /// Notification emails the owner wants (bits of `email::notify::Topic`).
    pub notify_mask: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
