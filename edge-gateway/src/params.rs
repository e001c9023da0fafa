//! Query strings and path parameters: the [`Query`] extractor (typed
//! structs that derive `Deserialize` + `utoipa::IntoParams`, so the document
//! shows the same constraints the parser enforces) and the small parsers
//! their fields use. Errors name the parameter.

use std::fmt;

use axum::extract::FromRequestParts;
use chrono::{DateTime, Utc};
use http::request::Parts;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use wagate_proto::error::ApiError;

use crate::envelope::{Error, session_not_found};

/// Largest page number, limit and similar counters accepted.
pub const MAX_INT: u32 = i32::MAX as u32;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space); `None`
/// for a bad escape or invalid UTF-8.
pub fn decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex)?;
                let lo = bytes.get(i + 2).copied().and_then(hex)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The decoded, trimmed parameters (the last value of a repeated key wins).
/// A blank value is kept: a text filter reads it as "no filter" (its
/// documented pattern allows blank), a number, time or boolean refuses it
/// (the document says integer / date-time / boolean, and blank is none).
pub fn pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(k).ok_or_else(|| ApiError::invalid("query", "query string is not valid UTF-8"))?;
        let value = decode(v).ok_or_else(|| {
            ApiError::invalid(key.clone(), format!("{key} is not valid percent-encoded UTF-8"))
        })?;
        // No NUL in any parameter, known or not (see `json.rs`).
        if wagate_proto::text::has_nul(&key) {
            return Err(wagate_proto::text::nul_error("query"));
        }
        if wagate_proto::text::has_nul(&value) {
            return Err(wagate_proto::text::nul_error(&key));
        }
        out.retain(|(k, _)| *k != key);
        out.push((key, value.trim().to_owned()));
    }
    Ok(out)
}

/// Typed query parameters; a bad value is a 400 naming the parameter.
#[derive(Debug, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> Query<T> {
    pub fn parse(query: Option<&str>) -> Result<T, ApiError> {
        let pairs = pairs(query)?;
        let de = serde::de::value::MapDeserializer::<_, de::value::Error>::new(pairs.into_iter());
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let message = e.into_inner().to_string();
            if field == "." || field.is_empty() {
                ApiError::invalid("query", message)
            } else {
                ApiError::invalid(field.clone(), format!("{field} {message}"))
            }
        })
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        Ok(Query(Self::parse(parts.uri.query())?))
    }
}

/// A positive whole number (`1..=2^31-1`).
pub fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_INT).contains(n))
        .map(Some)
        .ok_or_else(|| de::Error::custom("must be a positive integer"))
}

/// `true`/`false` (or `1`/`0`), any case.
pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = String::deserialize(d)?;
    if v.eq_ignore_ascii_case("true") || v == "1" {
        Ok(Some(true))
    } else if v.eq_ignore_ascii_case("false") || v == "0" {
        Ok(Some(false))
    } else {
        Err(de::Error::custom("must be true or false"))
    }
}

/// An RFC 3339 time (`2026-01-15T10:30:00Z`).
pub fn time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<prost_types::Timestamp>, D::Error> {
    let v = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&v)
        .map(|t| Some(wagate_proto::time::to_proto(t.with_timezone(&Utc))))
        .map_err(|_| de::Error::custom("must be an RFC 3339 time, e.g. 2026-01-15T10:30:00Z"))
}

/// A string of at most `N` characters; blank is absent.
pub fn text<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<Option<String>, D::Error> {
    let v = String::deserialize(d)?;
    if v.is_empty() {
        return Ok(None);
    }
    if v.chars().count() > N {
        return Err(de::Error::custom(format!("must be at most {N} characters")));
    }
    Ok(Some(v))
}

/// A closed set of upper-case names, matched in any case.
pub trait Names: Sized + Copy + 'static {
    const ALL: &'static [(&'static str, Self)];

    fn name(self) -> &'static str
    where
        Self: PartialEq,
    {
        Self::ALL.iter().find(|(_, v)| *v == self).map_or("", |(n, _)| n)
    }

    /// The OpenAPI schema: one of the names in any case, or blank (a
    /// pattern, since an `enum` would refuse spellings the server accepts).
    fn schema() -> Schema {
        let names: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(crate::schema::query_words_pattern(&names)))
            .description(Some(format!("one of {} (any case)", names.join(", "))))
            .into()
    }
}

/// Deserializes one of `T::ALL`'s names, any case; blank is absent.
pub fn one_of<'de, D: Deserializer<'de>, T: Names>(d: D) -> Result<Option<T>, D::Error> {
    let v = String::deserialize(d)?;
    if v.is_empty() {
        return Ok(None);
    }
    T::ALL.iter().find(|(n, _)| n.eq_ignore_ascii_case(&v)).map(|(_, t)| Some(*t)).ok_or_else(|| {
        let names: Vec<&str> = T::ALL.iter().map(|(n, _)| *n).collect();
        de::Error::custom(format!("must be one of {}", names.join(", ")))
    })
}

/// Defines a [`Names`] enum.
#[macro_export]
macro_rules! names {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant),+ }
        impl $crate::params::Names for $name {
            const ALL: &'static [(&'static str, Self)] = &[$(($text, $name::$variant)),+];
        }
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                <$name as $crate::params::Names>::schema().into()
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}

names!(
    /// Time window of metrics and analytics.
    TimeRange { H1 = "1h", H24 = "24h", D7 = "7d", D30 = "30d" }
);

/// `?page=&limit=` of a list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1-based page (default 1).
    #[serde(default, deserialize_with = "positive")]
    #[param(minimum = 1, maximum = 2147483647, example = 1)]
    pub page: Option<u32>,
    /// Page size (default 20; values above 100 are capped at 100).
    #[serde(default, deserialize_with = "positive")]
    #[param(minimum = 1, maximum = 2147483647, example = 20)]
    pub limit: Option<u32>,
}

/// A session id that can exist: 1..=64 characters of `[A-Za-z0-9_-]`.
pub fn valid_session_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The (percent-decoded) path parameters of the matched route.
#[derive(Debug)]
pub struct PathIds(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        use axum::extract::RawPathParams;
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| Error(crate::envelope::route_not_found()))?;
        Ok(PathIds(raw.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()))
    }
}

impl PathIds {
    fn raw(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    /// `{sessionId}`: one that cannot exist is `404 SESSION_NOT_FOUND`.
    pub fn session(&self) -> Result<String, ApiError> {
        let id = self.raw("sessionId");
        if valid_session_id(id) { Ok(id.to_owned()) } else { Err(session_not_found()) }
    }

    /// `{groupId}` (`…@g.us`, or its digits): malformed → 404 "group not found"
    /// (the control plane normalises it).
    pub fn group(&self) -> Result<String, ApiError> {
        let id = self.raw("groupId");
        let digits = id.strip_suffix("@g.us").unwrap_or(id);
        let ok = (5..=64).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(id.to_owned())
        } else {
            Err(ApiError::new(wagate_proto::error::ErrorCode::NotFound, "group not found"))
        }
    }

    /// Another id (`{userId}`, `{workerId}`, `{messageId}`): malformed → 404 "<what> not found".
    pub fn id(&self, name: &str, what: &str) -> Result<String, ApiError> {
        Some(self.raw(name)).filter(|d| valid_id(d)).map(str::to_owned).ok_or_else(|| {
            ApiError::new(wagate_proto::error::ErrorCode::NotFound, format!("{what} not found"))
        })
    }
}

impl fmt::Display for TimeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `timeRange` (default 24h).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimeRangeParams {
    /// 1h, 24h (default), 7d or 30d.
    #[serde(default, rename = "timeRange", deserialize_with = "one_of")]
    #[param(rename = "timeRange", schema_with = TimeRange::schema, example = "24h")]
    pub time_range: Option<TimeRange>,
}

impl TimeRangeParams {
    pub fn value(&self) -> String {
        self.time_range.unwrap_or(TimeRange::H24).name().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(decode("john%20doe+x").as_deref(), Some("john doe x"));
        assert!(decode("%zz").is_none());
        let e = pairs(Some("a=1&bad=%zz")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("bad"));
        let e = pairs(Some("q=abc%00def")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("q"));
        assert!(e.message.contains("NUL"), "{}", e.message);
        assert_eq!(pairs(Some("a%00=1")).unwrap_err().field.as_deref(), Some("query"));
        let kept = pairs(Some("a=1&a=2&b=&c=+")).unwrap();
        assert_eq!(kept, [("a", "2"), ("b", ""), ("c", "")].map(|(k, v)| (k.to_owned(), v.to_owned())));
    }

    #[test]
    fn page_params() {
        let p = Query::<PageParams>::parse(Some("page=2&limit=50&x=y")).unwrap();
        assert_eq!((p.page, p.limit), (Some(2), Some(50)));
        let p = Query::<PageParams>::parse(Some("page=+2+&x=")).unwrap();
        assert_eq!((p.page, p.limit), (Some(2), None));
        for (q, field) in [
            ("page=0", "page"),
            ("limit=-1", "limit"),
            ("page=abc", "page"),
            ("limit=1e3", "limit"),
            ("page=", "page"),
            ("limit=+", "limit"),
        ] {
            let e = Query::<PageParams>::parse(Some(q)).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{q}");
            assert!(e.message.starts_with(field), "{}", e.message);
        }
    }

    #[test]
    fn time_ranges_any_case() {
        let p = Query::<TimeRangeParams>::parse(Some("timeRange=7D")).unwrap();
        assert_eq!(p.value(), "7d");
        assert_eq!(Query::<TimeRangeParams>::parse(None).unwrap().value(), "24h");
        assert_eq!(Query::<TimeRangeParams>::parse(Some("timeRange=")).unwrap().value(), "24h");
        let e = Query::<TimeRangeParams>::parse(Some("timeRange=2w")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("timeRange"));
    }

    #[test]
    fn session_ids() {
        assert!(valid_session_id("user123-personal_1"));
        assert!(valid_session_id(&"a".repeat(64)));
        assert!(!valid_session_id(&"a".repeat(65)));
        assert!(!valid_session_id(""));
        assert!(!valid_session_id("a%20b"));
        assert!(!valid_session_id("a.b"));
    }
}

/// `{sessionId}`, checked while extracting (so a bad id is a 404 before the body is parsed).
#[derive(Debug)]
pub struct SessionId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for SessionId {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        Ok(SessionId(PathIds::from_request_parts(parts, state).await?.session()?))
    }
}
