//! The schema's enums, stored as checked `TEXT`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum UserRole {
    #[sea_orm(string_value = "USER")]
    User,
    #[sea_orm(string_value = "ADMINISTRATOR")]
    Administrator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum UserTier {
    #[sea_orm(string_value = "BASIC")]
    Basic,
    #[sea_orm(string_value = "PRO")]
    Pro,
    #[sea_orm(string_value = "MAX")]
    Max,
}

impl UserTier {
    /// Active sessions a user of this tier may hold.
    pub const fn session_limit(self) -> u64 {
        match self {
            UserTier::Basic => 1,
            UserTier::Pro => 5,
            UserTier::Max => 20,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            UserTier::Basic => "BASIC",
            UserTier::Pro => "PRO",
            UserTier::Max => "MAX",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum SessionStatus {
    #[sea_orm(string_value = "INIT")]
    Init,
    #[sea_orm(string_value = "QR_REQUIRED")]
    QrRequired,
    #[sea_orm(string_value = "CONNECTED")]
    Connected,
    #[sea_orm(string_value = "DISCONNECTED")]
    Disconnected,
    #[sea_orm(string_value = "RECONNECTING")]
    Reconnecting,
    #[sea_orm(string_value = "ERROR")]
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum WorkerStatus {
    #[sea_orm(string_value = "ONLINE")]
    Online,
    #[sea_orm(string_value = "OFFLINE")]
    Offline,
    #[sea_orm(string_value = "MAINTENANCE")]
    Maintenance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum MessageDirection {
    #[sea_orm(string_value = "INBOUND")]
    Inbound,
    #[sea_orm(string_value = "OUTBOUND")]
    Outbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum MessageType {
    #[sea_orm(string_value = "TEXT")]
    Text,
    #[sea_orm(string_value = "IMAGE")]
    Image,
    #[sea_orm(string_value = "DOCUMENT")]
    Document,
    #[sea_orm(string_value = "AUDIO")]
    Audio,
    #[sea_orm(string_value = "VIDEO")]
    Video,
    #[sea_orm(string_value = "STICKER")]
    Sticker,
    #[sea_orm(string_value = "LOCATION")]
    Location,
    #[sea_orm(string_value = "CONTACT")]
    Contact,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum MessageStatus {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "SENT")]
    Sent,
    #[sea_orm(string_value = "DELIVERED")]
    Delivered,
    #[sea_orm(string_value = "READ")]
    Read,
    #[sea_orm(string_value = "FAILED")]
    Failed,
}

impl MessageStatus {
    /// Order of progress: a status update never moves a message backwards.
    pub const fn rank(self) -> u8 {
        match self {
            MessageStatus::Pending => 0,
            MessageStatus::Sent => 1,
            MessageStatus::Delivered => 2,
            MessageStatus::Read => 3,
            MessageStatus::Failed => 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum LogLevel {
    #[sea_orm(string_value = "ERROR")]
    Error,
    #[sea_orm(string_value = "WARN")]
    Warn,
    #[sea_orm(string_value = "INFO")]
    Info,
    #[sea_orm(string_value = "DEBUG")]
    Debug,
}

impl SessionStatus {
    /// The stored value (`CONNECTED`, …).
    pub fn db_value(&self) -> String {
        ActiveEnum::to_value(self)
    }
}

impl MessageType {
    /// The stored value (`TEXT`, …).
    pub fn db_value(&self) -> String {
        ActiveEnum::to_value(self)
    }
}
