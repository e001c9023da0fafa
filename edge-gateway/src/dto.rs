//! REST request and response bodies (camelCase JSON) and their mapping to
//! and from the gRPC messages. Response types borrow from the gRPC reply so
//! answering copies no strings.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use wagate_proto::error::ApiError;
use wagate_proto::v1::{
    AuthResponse, CreateSessionResponse, DeleteSessionResponse, ListSessionsResponse, MessageContent,
    MessageStatus, MessageType, QrResponse, SendRequest, SendResponse, Session, SessionStatus, User,
    UserRole, UserTier,
};

use crate::json::{Field, JsonBody, Kind, require};

// ---------------------------------------------------------------- requests

/// `POST auth/register`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterBody {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub name: Option<String>,
}

impl JsonBody for RegisterBody {
    const FIELDS: &'static [Field] = &[
        Field::required("email", Kind::String),
        Field::required("password", Kind::String),
        Field::optional("name", Kind::String),
    ];
    fn validate(&self) -> Result<(), ApiError> {
        require("email", &self.email)?;
        require_present("password", &self.password)
    }
}

/// `POST auth/login`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginBody {
    pub email: String,
    pub password: String,
}

impl JsonBody for LoginBody {
    const FIELDS: &'static [Field] =
        &[Field::required("email", Kind::String), Field::required("password", Kind::String)];
    fn validate(&self) -> Result<(), ApiError> {
        require("email", &self.email)?;
        require_present("password", &self.password)
    }
}

/// `POST sessions`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateSessionBody {
    pub name: String,
    #[serde(default)]
    pub session_id: Option<String>,
}

impl JsonBody for CreateSessionBody {
    const FIELDS: &'static [Field] =
        &[Field::required("name", Kind::String), Field::optional("sessionId", Kind::String)];
    fn validate(&self) -> Result<(), ApiError> {
        require("name", &self.name)
    }
}

/// `POST sessions/{id}/send`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendBody {
    pub to: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub media_url: Option<String>,
    #[serde(default)]
    pub caption: Option<String>,
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub vcard: Option<String>,
}

const MESSAGE_TYPES: &str = "text, image, document, audio, video, sticker, location, contact";

impl JsonBody for SendBody {
    const FIELDS: &'static [Field] = &[
        Field::required("to", Kind::String),
        Field::optional("type", Kind::String),
        Field::optional("message", Kind::String),
        Field::optional("mediaUrl", Kind::String),
        Field::optional("caption", Kind::String),
        Field::optional("filename", Kind::String),
        Field::optional("latitude", Kind::Number),
        Field::optional("longitude", Kind::Number),
        Field::optional("name", Kind::String),
        Field::optional("phone", Kind::String),
        Field::optional("vcard", Kind::String),
    ];

    fn validate(&self) -> Result<(), ApiError> {
        require("to", &self.to)?;
        let kind = self.message_type()?;
        let missing =
            |name: &'static str, what: &str| ApiError::invalid(name, format!("{name} is required {what}"));
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        match kind {
            MessageType::Text if blank(&self.message) => {
                return Err(missing("message", "for a text message"));
            }
            MessageType::Image
            | MessageType::Video
            | MessageType::Audio
            | MessageType::Document
            | MessageType::Sticker
                if blank(&self.media_url) =>
            {
                return Err(missing("mediaUrl", "for a media message"));
            }
            MessageType::Location => {
                let lat = self.latitude.ok_or_else(|| missing("latitude", "for a location message"))?;
                let lon = self.longitude.ok_or_else(|| missing("longitude", "for a location message"))?;
                if !(-90.0..=90.0).contains(&lat) {
                    return Err(ApiError::invalid("latitude", "latitude must be between -90 and 90"));
                }
                if !(-180.0..=180.0).contains(&lon) {
                    return Err(ApiError::invalid("longitude", "longitude must be between -180 and 180"));
                }
            }
            MessageType::Contact if blank(&self.phone) && blank(&self.vcard) => {
                return Err(missing("phone", "(or vcard) for a contact message"));
            }
            _ => {}
        }
        Ok(())
    }
}

impl SendBody {
    /// The message type named by `type` (any case; `text` when absent).
    pub fn message_type(&self) -> Result<MessageType, ApiError> {
        let Some(kind) = self.kind.as_deref() else { return Ok(MessageType::Text) };
        let kind = kind.trim();
        const TYPES: [(&str, MessageType); 8] = [
            ("text", MessageType::Text),
            ("image", MessageType::Image),
            ("document", MessageType::Document),
            ("audio", MessageType::Audio),
            ("video", MessageType::Video),
            ("sticker", MessageType::Sticker),
            ("location", MessageType::Location),
            ("contact", MessageType::Contact),
        ];
        TYPES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(kind))
            .map(|&(_, t)| t)
            .ok_or_else(|| ApiError::invalid("type", format!("type must be one of {MESSAGE_TYPES}")))
    }

    /// The gRPC request for sending this body through `session_id`.
    pub fn into_request(self, session_id: &str) -> Result<SendRequest, ApiError> {
        let kind = self.message_type()?;
        Ok(SendRequest {
            session_id: session_id.to_owned(),
            to: self.to,
            content: Some(MessageContent {
                r#type: kind as i32,
                text: self.message.unwrap_or_default(),
                media_url: self.media_url,
                caption: self.caption,
                filename: self.filename,
                latitude: self.latitude,
                longitude: self.longitude,
                name: self.name,
                phone: self.phone,
                vcard: self.vcard,
            }),
        })
    }
}

fn require_present(name: &'static str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() { Err(ApiError::invalid(name, format!("{name} is required"))) } else { Ok(()) }
}

/// `?page=&limit=` of a list: positive integers when present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageQuery {
    pub page: u32,
    pub limit: u32,
}

impl PageQuery {
    /// Parses the query string (absent or empty values mean "default" = 0).
    pub fn parse(query: Option<&str>) -> Result<PageQuery, ApiError> {
        let mut out = PageQuery::default();
        for pair in query.unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "page" => &mut out.page,
                "limit" => &mut out.limit,
                _ => continue,
            };
            if value.is_empty() {
                continue;
            }
            *slot = value
                .parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| ApiError::invalid(key, format!("{key} must be a positive integer")))?;
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------- responses

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

fn strip(name: &'static str, prefix: &str) -> &'static str {
    name.strip_prefix(prefix).unwrap_or(name)
}

pub fn session_status_name(v: i32) -> &'static str {
    SessionStatus::try_from(v).map_or("UNSPECIFIED", |s| strip(s.as_str_name(), "SESSION_STATUS_"))
}

pub fn message_status_name(v: i32) -> &'static str {
    MessageStatus::try_from(v).map_or("UNSPECIFIED", |s| strip(s.as_str_name(), "MESSAGE_STATUS_"))
}

pub fn role_name(v: i32) -> &'static str {
    UserRole::try_from(v).map_or("UNSPECIFIED", |s| strip(s.as_str_name(), "USER_ROLE_"))
}

pub fn tier_name(v: i32) -> &'static str {
    UserTier::try_from(v).map_or("UNSPECIFIED", |s| strip(s.as_str_name(), "USER_TIER_"))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDto<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    pub role: &'static str,
    pub tier: &'static str,
    pub is_active: bool,
    pub last_login_at: Option<Ts>,
    pub created_at: Option<Ts>,
    pub updated_at: Option<Ts>,
}

impl<'a> From<&'a User> for UserDto<'a> {
    fn from(u: &'a User) -> Self {
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
        }
    }
}

/// Answer of register and login.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthDto<'a> {
    pub user: UserDto<'a>,
    pub token: &'a str,
    pub expires_at: Option<Ts>,
}

impl<'a> AuthDto<'a> {
    pub fn from_proto(r: &'a AuthResponse) -> Option<Self> {
        Some(AuthDto {
            user: r.user.as_ref()?.into(),
            token: &r.token,
            expires_at: Ts::from_proto(r.expires_at.as_ref()),
        })
    }
}

/// A session as listed and fetched.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionDto<'a> {
    pub id: &'a str,
    pub session_id: &'a str,
    pub name: &'a str,
    pub status: &'static str,
    pub phone_number: Option<&'a str>,
    pub worker_id: Option<&'a str>,
    pub qr_code: Option<&'a str>,
    pub last_seen_at: Option<Ts>,
    pub created_at: Option<Ts>,
    pub updated_at: Option<Ts>,
    pub api_key_prefix: Option<&'a str>,
    /// Why the session waits (e.g. for a worker with free capacity) or failed.
    pub status_reason: Option<&'a str>,
}

impl<'a> From<&'a Session> for SessionDto<'a> {
    fn from(s: &'a Session) -> Self {
        SessionDto {
            id: &s.id,
            session_id: &s.id,
            name: &s.name,
            status: session_status_name(s.status),
            phone_number: s.phone_number.as_deref(),
            worker_id: s.worker_id.as_deref(),
            qr_code: s.qr_code.as_deref(),
            last_seen_at: Ts::from_proto(s.last_seen_at.as_ref()),
            created_at: Ts::from_proto(s.created_at.as_ref()),
            updated_at: Ts::from_proto(s.updated_at.as_ref()),
            api_key_prefix: s.api_key_prefix.as_deref(),
            status_reason: s.status_reason.as_deref(),
        }
    }
}

/// Answer of `POST sessions`: the session and its API key (shown once).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedSessionDto<'a> {
    pub session_id: &'a str,
    pub id: &'a str,
    pub name: &'a str,
    pub status: &'static str,
    pub worker_id: Option<&'a str>,
    pub phone_number: Option<&'a str>,
    pub qr_code: Option<&'a str>,
    pub api_key: &'a str,
    pub api_key_prefix: Option<&'a str>,
    pub created_at: Option<Ts>,
    pub updated_at: Option<Ts>,
    pub last_seen_at: Option<Ts>,
}

impl<'a> CreatedSessionDto<'a> {
    pub fn from_proto(r: &'a CreateSessionResponse) -> Option<Self> {
        let s = r.session.as_ref()?;
        Some(CreatedSessionDto {
            session_id: &s.id,
            id: &s.id,
            name: &s.name,
            status: session_status_name(s.status),
            worker_id: s.worker_id.as_deref(),
            phone_number: s.phone_number.as_deref(),
            qr_code: s.qr_code.as_deref(),
            api_key: &r.api_key,
            api_key_prefix: s.api_key_prefix.as_deref(),
            created_at: Ts::from_proto(s.created_at.as_ref()),
            updated_at: Ts::from_proto(s.updated_at.as_ref()),
            last_seen_at: Ts::from_proto(s.last_seen_at.as_ref()),
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaginationDto {
    pub total: u64,
    pub page: u32,
    pub limit: u32,
    pub total_pages: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionListDto<'a> {
    pub sessions: Vec<SessionDto<'a>>,
    pub pagination: PaginationDto,
}

impl<'a> From<&'a ListSessionsResponse> for SessionListDto<'a> {
    fn from(r: &'a ListSessionsResponse) -> Self {
        let total_pages = if r.limit == 0 { 0 } else { r.total.div_ceil(u64::from(r.limit)) };
        SessionListDto {
            sessions: r.sessions.iter().map(SessionDto::from).collect(),
            pagination: PaginationDto { total: r.total, page: r.page, limit: r.limit, total_pages },
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QrDto<'a> {
    pub session_id: &'a str,
    pub status: &'static str,
    pub qr_code: Option<&'a str>,
}

impl<'a> From<&'a QrResponse> for QrDto<'a> {
    fn from(r: &'a QrResponse) -> Self {
        QrDto {
            session_id: &r.session_id,
            status: session_status_name(r.status),
            qr_code: r.qr_code.as_deref(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedDto<'a> {
    pub session_id: &'a str,
    pub deleted: bool,
}

impl<'a> From<&'a DeleteSessionResponse> for DeletedDto<'a> {
    fn from(r: &'a DeleteSessionResponse) -> Self {
        DeletedDto { session_id: &r.session_id, deleted: r.deleted }
    }
}

/// Answer of a send.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendDto<'a> {
    pub message_id: &'a str,
    pub status: &'static str,
    pub to: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    pub created_at: Option<Ts>,
}

impl<'a> From<&'a SendResponse> for SendDto<'a> {
    fn from(r: &'a SendResponse) -> Self {
        SendDto {
            message_id: &r.message_id,
            status: message_status_name(r.status),
            to: &r.to,
            error: r.error.as_deref(),
            created_at: Ts::from_proto(r.created_at.as_ref()),
        }
    }
}

/// `GET /health` and `GET /health/ready`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthDto {
    pub status: &'static str,
    pub service: &'static str,
    pub version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;
    use wagate_proto::error::ErrorCode;

    fn send(body: &str) -> Result<SendBody, ApiError> {
        parse::<SendBody>(body.as_bytes())
    }

    #[test]
    fn send_type_is_case_insensitive_and_defaults_to_text() {
        for t in ["text", "TEXT", "Text"] {
            let b = send(&format!(r#"{{"to":"62811","type":"{t}","message":"hi"}}"#)).unwrap();
            assert_eq!(b.message_type().unwrap(), MessageType::Text);
        }
        let b = send(r#"{"to":"62811","message":"hi"}"#).unwrap();
        let req = b.into_request("s1").unwrap();
        assert_eq!(req.session_id, "s1");
        let content = req.content.unwrap();
        assert_eq!(content.r#type, MessageType::Text as i32);
        assert_eq!(content.text, "hi");
        let b = send(r#"{"to":"62811","type":"IMAGE","mediaUrl":"https://x/y.png","caption":"c"}"#).unwrap();
        let content = b.into_request("s1").unwrap().content.unwrap();
        assert_eq!(content.r#type, MessageType::Image as i32);
        assert_eq!(content.media_url.as_deref(), Some("https://x/y.png"));
    }

    #[test]
    fn send_validation_names_fields() {
        for (body, field) in [
            (r#"{"message":"hi"}"#, "to"),
            (r#"{"to":"","message":"hi"}"#, "to"),
            (r#"{"to":628,"message":"hi"}"#, "to"),
            (r#"{"to":"1","type":"fax","message":"hi"}"#, "type"),
            (r#"{"to":"1","type":7,"message":"hi"}"#, "type"),
            (r#"{"to":"1","type":"text"}"#, "message"),
            (r#"{"to":"1","type":"image"}"#, "mediaUrl"),
            (r#"{"to":"1","type":"location","latitude":"x","longitude":1}"#, "latitude"),
            (r#"{"to":"1","type":"location","longitude":1}"#, "latitude"),
            (r#"{"to":"1","type":"location","latitude":1,"longitude":200}"#, "longitude"),
            (r#"{"to":"1","type":"contact"}"#, "phone"),
        ] {
            let e = send(body).unwrap_err();
            assert_eq!(e.code, ErrorCode::ValidationError, "{body}");
            assert_eq!(e.field.as_deref(), Some(field), "{body}: {}", e.message);
        }
        assert!(send(r#"{"to":"1","type":"location","latitude":-6.2,"longitude":106.8}"#).is_ok());
    }

    #[test]
    fn page_query() {
        assert_eq!(PageQuery::parse(None).unwrap(), PageQuery::default());
        assert_eq!(PageQuery::parse(Some("page=2&limit=50&x=y")).unwrap(), PageQuery { page: 2, limit: 50 });
        assert_eq!(PageQuery::parse(Some("page=&limit=")).unwrap(), PageQuery::default());
        for (q, field) in
            [("page=0", "page"), ("limit=-1", "limit"), ("page=abc", "page"), ("limit=1e3", "limit")]
        {
            assert_eq!(PageQuery::parse(Some(q)).unwrap_err().field.as_deref(), Some(field), "{q}");
        }
    }

    #[test]
    fn enum_names_and_timestamps() {
        assert_eq!(session_status_name(SessionStatus::Connected as i32), "CONNECTED");
        assert_eq!(session_status_name(SessionStatus::QrRequired as i32), "QR_REQUIRED");
        assert_eq!(session_status_name(99), "UNSPECIFIED");
        assert_eq!(message_status_name(MessageStatus::Sent as i32), "SENT");
        assert_eq!(role_name(UserRole::User as i32), "USER");
        assert_eq!(tier_name(UserTier::Basic as i32), "BASIC");
        let ts = prost_types::Timestamp { seconds: 1_705_314_600, nanos: 5_000_000 };
        let json = serde_json::to_string(&Ts::from_proto(Some(&ts))).unwrap();
        assert_eq!(json, r#""2024-01-15T10:30:00.005Z""#);
    }

    #[test]
    fn list_pagination() {
        let r = ListSessionsResponse { sessions: vec![Session::default()], total: 41, page: 2, limit: 20 };
        let v = serde_json::to_value(SessionListDto::from(&r)).unwrap();
        assert_eq!(
            v["pagination"],
            serde_json::json!({"total": 41, "page": 2, "limit": 20, "totalPages": 3})
        );
        assert_eq!(v["sessions"][0]["status"], "UNSPECIFIED");
        assert!(v["sessions"][0]["lastSeenAt"].is_null());
    }
}
