//! Query strings: percent-decoded `key=value` pairs, and typed getters whose
//! errors name the parameter.

use chrono::{DateTime, Utc};
use wagate_proto::error::ApiError;

/// The decoded parameters of one query string (the last value of a
/// repeated key wins).
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space).
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

impl Query {
    pub fn parse(query: Option<&str>) -> Result<Query, ApiError> {
        let mut pairs = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key =
                decode(k).ok_or_else(|| ApiError::invalid("query", "query string is not valid UTF-8"))?;
            let value = decode(v).ok_or_else(|| {
                ApiError::invalid(key.clone(), format!("{key} is not valid percent-encoded UTF-8"))
            })?;
            pairs.push((key, value));
        }
        Ok(Query { pairs })
    }

    /// The non-blank value of `key`, trimmed.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }

    /// A string of at most `max` characters.
    pub fn text(&self, key: &'static str, max: usize) -> Result<Option<String>, ApiError> {
        match self.get(key) {
            Some(v) if v.chars().count() > max => {
                Err(ApiError::invalid(key, format!("{key} must be at most {max} characters")))
            }
            other => Ok(other.map(str::to_owned)),
        }
    }

    /// A positive integer (absent → 0, meaning "default").
    pub fn positive(&self, key: &'static str) -> Result<u32, ApiError> {
        match self.get(key) {
            None => Ok(0),
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| ApiError::invalid(key, format!("{key} must be a positive integer"))),
        }
    }

    pub fn boolean(&self, key: &'static str) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
            Some(_) => Err(ApiError::invalid(key, format!("{key} must be true or false"))),
        }
    }

    /// An RFC 3339 time (`2026-01-15T10:30:00Z`).
    pub fn time(&self, key: &'static str) -> Result<Option<prost_types::Timestamp>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => DateTime::parse_from_rfc3339(v)
                .map(|t| Some(wagate_proto::time::to_proto(t.with_timezone(&Utc))))
                .map_err(|_| {
                    ApiError::invalid(
                        key,
                        format!("{key} must be an RFC 3339 time, e.g. 2026-01-15T10:30:00Z"),
                    )
                }),
        }
    }

    /// One of `allowed` (any case) → its index.
    pub fn one_of(&self, key: &'static str, allowed: &[&str]) -> Result<Option<usize>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => allowed.iter().position(|a| a.eq_ignore_ascii_case(v)).map(Some).ok_or_else(|| {
                ApiError::invalid(key, format!("{key} must be one of {}", allowed.join(", ")))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_and_getters() {
        let q = Query::parse(Some(
            "search=john%20doe&x=a+b&limit=5&force=true&from=2026-01-15T10:30:00Z&bad=%zz",
        ))
        .unwrap_err();
        assert_eq!(q.field.as_deref(), Some("bad"));
        let q =
            Query::parse(Some("search=john%20doe&x=a+b&limit=5&force=true&from=2026-01-15T10:30:00Z&page="))
                .unwrap();
        assert_eq!(q.get("search"), Some("john doe"));
        assert_eq!(q.get("x"), Some("a b"));
        assert_eq!(q.positive("limit").unwrap(), 5);
        assert_eq!(q.positive("page").unwrap(), 0);
        assert!(q.boolean("force").unwrap());
        assert!(q.time("from").unwrap().is_some());
        assert_eq!(q.one_of("x", &["a b", "c"]).unwrap(), Some(0));
        let q = Query::parse(Some("limit=0&from=yesterday&force=yes")).unwrap();
        assert_eq!(q.positive("limit").unwrap_err().field.as_deref(), Some("limit"));
        assert_eq!(q.time("from").unwrap_err().field.as_deref(), Some("from"));
        assert_eq!(q.boolean("force").unwrap_err().field.as_deref(), Some("force"));
    }
}
