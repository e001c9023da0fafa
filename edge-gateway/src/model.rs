//! Response pieces several resources share: timestamps, enum names,
//! pagination, and the user as every route shows it. Resource-specific
//! bodies live next to their handlers in [`crate::routes`].

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use wagate_proto::v1;

/// An RFC 3339 timestamp in UTC with milliseconds (`2024-01-15T10:30:00.000Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ts(pub DateTime<Utc>);

impl Ts {
    pub fn from_proto(t: Option<&prost_types::Timestamp>) -> Option<Ts> {
        t.and_then(wagate_proto::time::from_proto).map(Ts)
    }
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
    }
}

impl utoipa::PartialSchema for Ts {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .examples(["2026-01-15T10:30:00.000Z"])
            .into()
    }
}

impl utoipa::ToSchema for Ts {}

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The REST name of a proto enum value: its proto name without the type
/// prefix (`SESSION_STATUS_QR_REQUIRED` → `QR_REQUIRED`), `UNSPECIFIED` for
/// an unknown number. The one place enum names are mapped.
macro_rules! enum_name {
    ($fn:ident, $ty:ty, $prefix:literal) => {
        pub fn $fn(v: i32) -> &'static str {
            <$ty>::try_from(v).map_or("UNSPECIFIED", |s| {
                let name = s.as_str_name();
                name.strip_prefix($prefix).unwrap_or(name)
            })
        }
    };
}

enum_name!(session_status_name, v1::SessionStatus, "SESSION_STATUS_");
enum_name!(message_status_name, v1::MessageStatus, "MESSAGE_STATUS_");
enum_name!(message_type_name, v1::MessageType, "MESSAGE_TYPE_");
enum_name!(direction_name, v1::MessageDirection, "MESSAGE_DIRECTION_");
enum_name!(role_name, v1::UserRole, "USER_ROLE_");
enum_name!(tier_name, v1::UserTier, "USER_TIER_");
enum_name!(worker_status_name, v1::WorkerStatus, "WORKER_STATUS_");

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaginationDto {
    pub total: u64,
    pub page: u32,
    pub limit: u32,
    pub total_pages: u64,
}

impl PaginationDto {
    pub fn new(total: u64, page: u32, limit: u32) -> Self {
        let total_pages = if limit == 0 { 0 } else { total.div_ceil(u64::from(limit)) };
        PaginationDto { total, page, limit, total_pages }
    }

    pub fn from_proto(p: Option<&v1::Pagination>) -> Self {
        let p = p.cloned().unwrap_or_default();
        PaginationDto::new(p.total, p.page, p.limit)
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDto<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    /// USER or ADMINISTRATOR.
    pub role: &'static str,
    /// BASIC, PRO or MAX.
    pub tier: &'static str,
    pub is_active: bool,
    pub last_login_at: Option<Ts>,
    pub created_at: Option<Ts>,
    pub updated_at: Option<Ts>,
    /// Messages per hour an administrator set for this user (`null`: the tier's quota).
    pub message_quota: Option<i64>,
    /// Whether the owner followed the verification link mailed at sign-up.
    pub email_verified: bool,
    /// Which notification emails the owner gets.
    pub notifications: NotificationsDto,
}

/// Notification emails the owner gets (each one switchable with `PATCH /me`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationsDto {
    /// A CONNECTED session went DISCONNECTED (or logged out), or stayed RECONNECTING over 5 minutes.
    pub session_status: bool,
    /// The message quota reached 80 % and 100 %.
    pub quota: bool,
    /// A webhook was disabled after repeated failures.
    pub webhook_disabled: bool,
}

impl From<Option<&v1::NotificationPrefs>> for NotificationsDto {
    fn from(p: Option<&v1::NotificationPrefs>) -> Self {
        let p = p.cloned().unwrap_or_default();
        NotificationsDto {
            session_status: p.session_status.unwrap_or(true),
            quota: p.quota.unwrap_or(true),
            webhook_disabled: p.webhook_disabled.unwrap_or(true),
        }
    }
}

impl<'a> From<&'a v1::User> for UserDto<'a> {
    fn from(u: &'a v1::User) -> Self {
        UserDto {
            id: &u.id,
            name: &u.name,
            email: &u.email,
            role: role_name(u.role),
            tier: tier_name(u.tier),
            is_active: u.is_active,
            last_login_at: Ts::from_proto(u.last_login_at.as_ref()),
            created_at: Ts::from_proto(u.created_at.as_ref()),
            updated_at: Ts::from_proto(u.updated_at.as_ref()),
            message_quota: u.message_quota,
            email_verified: u.email_verified,
            notifications: NotificationsDto::from(u.notifications.as_ref()),
        }
    }
}

/// A deleted account (own or by an administrator).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedUserDto {
    pub user_id: String,
    pub deleted: bool,
    pub sessions_deleted: u32,
}

impl From<v1::DeleteUserResponse> for DeletedUserDto {
    fn from(r: v1::DeleteUserResponse) -> Self {
        DeletedUserDto { user_id: r.user_id, deleted: r.deleted, sessions_deleted: r.sessions_deleted }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_and_timestamps() {
        assert_eq!(session_status_name(v1::SessionStatus::Connected as i32), "CONNECTED");
        assert_eq!(session_status_name(v1::SessionStatus::QrRequired as i32), "QR_REQUIRED");
        assert_eq!(session_status_name(99), "UNSPECIFIED");
        assert_eq!(message_status_name(v1::MessageStatus::Sent as i32), "SENT");
        assert_eq!(role_name(v1::UserRole::User as i32), "USER");
        assert_eq!(tier_name(v1::UserTier::Basic as i32), "BASIC");
        let ts = prost_types::Timestamp { seconds: 1_705_314_600, nanos: 5_000_000 };
        let json = serde_json::to_string(&Ts::from_proto(Some(&ts))).unwrap();
        assert_eq!(json, r#""2024-01-15T10:30:00.005Z""#);
    }

    #[test]
    fn pagination() {
        let p = PaginationDto::new(41, 2, 20);
        assert_eq!(
            serde_json::to_value(p).unwrap(),
            serde_json::json!({"total": 41, "page": 2, "limit": 20, "totalPages": 3})
        );
    }
}
