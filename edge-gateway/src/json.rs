//! JSON request bodies: the [`Json`] extractor (Content-Type check, then
//! typed parsing whose errors name the field, via `serde_path_to_error`),
//! and [`Validate`] for checks beyond JSON types.
//!
//! No string of a body may hold a NUL character (PostgreSQL refuses it,
//! nothing legitimate needs it): [`parse`] refuses it for every field of
//! every body, naming the field, before the body's own checks. A NUL can only
//! come as the escape `\u0000` (a raw control byte is invalid JSON), so the
//! check is one scan of the bytes for that escape; only a body that has one
//! is walked to name the field.
//!
//! The body itself was already read, within the size limit, by
//! [`crate::middleware::read_body`].

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use wagate_proto::error::{ApiError, ErrorCode};

use crate::envelope::Error;

/// Checks a body beyond its JSON types (required strings not blank, ranges).
pub trait Validate {
    fn validate(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

/// `"<name> is required"` unless `value` has non-blank content.
pub fn require(name: &'static str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() { Err(ApiError::invalid(name, format!("{name} is required"))) } else { Ok(()) }
}

/// `"<name> is required"` when `value` is empty.
pub fn require_present(name: &'static str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() { Err(ApiError::invalid(name, format!("{name} is required"))) } else { Ok(()) }
}

/// Fails with 415 unless the Content-Type is `application/json` (parameters
/// such as `charset` allowed).
pub fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let ok = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .is_some_and(|mime| mime.eq_ignore_ascii_case("application/json"));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::UnsupportedMediaType, "Content-Type must be application/json"))
    }
}

/// A JSON object body of type `T`, checked by [`Validate`].
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned + Validate,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        check_content_type(req.headers())?;
        let bytes = body_bytes(req, state).await?;
        Ok(Json(parse(&bytes)?))
    }
}

/// A JSON object body that may also be absent (no body, only whitespace, or `null`).
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Validate,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let headers = req.headers().clone();
        let bytes = body_bytes(req, state).await?;
        let trimmed = bytes.trim_ascii();
        if trimmed.is_empty() || trimmed == b"null" {
            return Ok(OptionalJson(None));
        }
        check_content_type(&headers)?;
        Ok(OptionalJson(Some(parse(&bytes)?)))
    }
}

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    // The body is already in memory (read by the body middleware): this does not wait.
    Bytes::from_request(req, state)
        .await
        .map_err(|_| ApiError::new(ErrorCode::ValidationError, "could not read the request body"))
}

/// Parses and validates a body: malformed JSON → `INVALID_JSON`; a missing,
/// null or mistyped field → `VALIDATION_ERROR` naming the field.
pub fn parse<T: DeserializeOwned + Validate>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(ApiError::new(
                ErrorCode::InvalidJson,
                "request body is empty; expected a JSON object",
            ));
        }
        Some(b'{') => {}
        Some(_) => {
            return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Ok(_) => ApiError::new(ErrorCode::ValidationError, "request body must be a JSON object"),
                Err(e) => invalid_json(&e),
            });
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = match serde_path_to_error::deserialize(&mut de) {
        Ok(v) => v,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            return Err(match inner.classify() {
                serde_json::error::Category::Data => explain(&path, &inner),
                _ => invalid_json(&inner),
            });
        }
    };
    // Trailing characters after the object.
    if let Err(e) = de.end() {
        return Err(invalid_json(&e));
    }
    if let Some(field) = nul_field(bytes) {
        return Err(wagate_proto::text::nul_error(&field));
    }
    value.validate()?;
    Ok(value)
}

/// The escape of a NUL in a JSON string.
const NUL_ESCAPE: &[u8] = b"\\u0000";

/// The path (`message`, `items[2].name`) of the first string (or object
/// key) of a well-formed JSON body that holds a NUL, if any.
pub fn nul_field(bytes: &[u8]) -> Option<String> {
    // Fast path: no `\u0000` anywhere (an escaped backslash before `u0000` is
    // text, not a NUL: the walk below tells them apart).
    memchr::memmem::find(bytes, NUL_ESCAPE)?;
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    find_nul(&value, String::new())
}

fn find_nul(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match value {
        Value::String(s) if wagate_proto::text::has_nul(s) => {
            Some(if path.is_empty() { "body".into() } else { path })
        }
        Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, v)| find_nul(v, format!("{path}[{i}]")))
        }
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if wagate_proto::text::has_nul(k) {
                Some(join(&k.replace('\0', "")))
            } else {
                find_nul(v, join(k))
            }
        }),
        _ => None,
    }
}

fn invalid_json(e: &serde_json::Error) -> ApiError {
    ApiError::new(ErrorCode::InvalidJson, format!("invalid JSON: {e}"))
}

/// A well-formed body that does not fit the type: name the field and say
/// what it must be.
fn explain(path: &str, e: &serde_json::Error) -> ApiError {
    let text = e.to_string();
    let text = text.split(" at line ").next().unwrap_or(&text).to_owned();
    // serde names a missing or duplicated field in backticks; the path is then the parent.
    let quoted = text.split('`').nth(1).filter(|f| !f.is_empty() && !f.contains(char::is_whitespace));
    if text.starts_with("missing field")
        && let Some(field) = quoted
    {
        return ApiError::invalid(field.to_owned(), format!("{field} is required"));
    }
    if path == "." || path.is_empty() {
        return match quoted {
            Some(field) if text.starts_with("duplicate field") => {
                ApiError::invalid(field.to_owned(), text.clone())
            }
            _ => ApiError::new(ErrorCode::ValidationError, text),
        };
    }
    let field = path.to_owned();
    if text.starts_with("invalid type: null") {
        return ApiError::invalid(field.clone(), format!("{field} is required"));
    }
    let expected = text.rsplit("expected ").next().unwrap_or("");
    let must = match expected {
        "a string" => "a string",
        "a boolean" => "true or false",
        e if e.starts_with('f') || e.starts_with('u') || e.starts_with('i') => "a number",
        _ => return ApiError::invalid(field, text),
    };
    ApiError::invalid(field.clone(), format!("{field} must be {must}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Demo {
        email: String,
        latitude: Option<f64>,
        active: Option<bool>,
    }

    impl Validate for Demo {
        fn validate(&self) -> Result<(), ApiError> {
            require("email", &self.email)
        }
    }

    fn err(body: &str) -> ApiError {
        parse::<Demo>(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn good_body_parses() {
        let d = parse::<Demo>(br#" {"email":"a@b.c","latitude":1,"extra":[1,2]} "#).unwrap();
        assert_eq!(d.latitude, Some(1.0));
    }

    #[test]
    fn malformed_json_names_position() {
        let e = err(r#"{"email": "#);
        assert_eq!(e.code, ErrorCode::InvalidJson);
        assert!(e.message.contains("line 1"), "{}", e.message);
        assert_eq!(err(r#"{"email":"x"} trailing"#).code, ErrorCode::InvalidJson);
        assert_eq!(err("nope").code, ErrorCode::InvalidJson);
        assert_eq!(err("").code, ErrorCode::InvalidJson);
        assert_eq!(err("   ").code, ErrorCode::InvalidJson);
    }

    #[test]
    fn missing_null_blank_and_mistyped_fields_are_named() {
        for (body, field, msg) in [
            ("{}", "email", "email is required"),
            (r#"{"email":null}"#, "email", "email is required"),
            (r#"{"email":"  "}"#, "email", "email is required"),
            (r#"{"email":5}"#, "email", "email must be a string"),
            (r#"{"email":"a","latitude":"1.5"}"#, "latitude", "latitude must be a number"),
            (r#"{"email":"a","active":"yes"}"#, "active", "active must be true or false"),
        ] {
            let e = err(body);
            assert_eq!(e.code, ErrorCode::ValidationError, "{body}");
            assert_eq!(e.field.as_deref(), Some(field), "{body}");
            assert_eq!(e.message, msg, "{body}");
        }
        let e = err(r#"{"email":"a","email":"b"}"#);
        assert_eq!(e.field.as_deref(), Some("email"));
    }

    #[test]
    fn nul_in_any_string_is_refused_naming_the_field() {
        for (body, field) in [
            (r#"{"email":"a\u0000@b.c"}"#, "email"),
            (r#"{"email":"a@b.c","extra":{"deep":["x","y\u0000"]}}"#, "extra.deep[1]"),
            (r#"{"email":"a@b.c","k\u0000":1}"#, "k"),
        ] {
            let e = err(body);
            assert_eq!(e.code, ErrorCode::ValidationError, "{body}");
            assert_eq!(e.field.as_deref(), Some(field), "{body}");
            assert!(e.message.contains("NUL"), "{}", e.message);
        }
        // an escaped backslash followed by u0000 is text, not a NUL
        assert!(parse::<Demo>(br#"{"email":"a\\u0000@b.c"}"#).is_ok());
        // a raw NUL byte is not JSON at all
        assert_eq!(parse::<Demo>(b"{\"email\":\"a\x00\"}").unwrap_err().code, ErrorCode::InvalidJson);
    }

    /// What the check costs a send: the scan of a typical send body, of a
    /// 4096-character text, and of a 1 MiB body (the default limit).
    /// `cargo test -p wagate-edge-gateway --release --lib -- nul_scan_cost --nocapture`
    #[test]
    fn nul_scan_cost() {
        let small =
            br#"{"to":"+62 812-3456-7890","type":"text","message":"hello from the benchmark"}"#.to_vec();
        let text =
            format!(r#"{{"to":"6281234567890","message":"{}"}}"#, "lorem ipsum ".repeat(341)).into_bytes();
        let big = vec![b'a'; 1024 * 1024];
        for (name, body, rounds) in
            [("send body", &small, 200_000u32), ("4 KiB text", &text, 20_000), ("1 MiB", &big, 50)]
        {
            let started = std::time::Instant::now();
            for _ in 0..rounds {
                assert!(nul_field(std::hint::black_box(body)).is_none());
            }
            let per = started.elapsed() / rounds;
            println!("nul scan of a {name} ({} bytes): {per:?} per request", body.len());
        }
    }

    #[test]
    fn non_object_bodies_are_rejected() {
        for body in ["[\"a@b.c\"]", "\"x\"", "12", "null"] {
            let e = err(body);
            assert_eq!(e.code, ErrorCode::ValidationError, "{body}");
            assert_eq!(e.message, "request body must be a JSON object");
        }
    }

    #[test]
    fn content_type_rules() {
        let mut h = HeaderMap::new();
        assert_eq!(check_content_type(&h).unwrap_err().code, ErrorCode::UnsupportedMediaType);
        h.insert(CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(check_content_type(&h).is_err());
        h.insert(CONTENT_TYPE, "Application/JSON; charset=utf-8".parse().unwrap());
        assert!(check_content_type(&h).is_ok());
    }
}
