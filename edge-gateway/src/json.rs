//! Reading a JSON request body: Content-Type check, size limit (declared
//! and while streaming), and typed parsing whose errors name the field.

use std::pin::pin;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::HeaderMap;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, EXPECT};
use http_body::Body;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use wagate_proto::error::{ApiError, ErrorCode};

/// The JSON type a request field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Number,
    Bool,
}

impl Kind {
    fn matches(self, v: &Value) -> bool {
        match self {
            Kind::String => v.is_string(),
            Kind::Number => v.is_number(),
            Kind::Bool => v.is_boolean(),
        }
    }

    fn article(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Number => "a number",
            Kind::Bool => "true or false",
        }
    }
}

/// One field of a request body, for error messages.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

impl Field {
    pub const fn required(name: &'static str, kind: Kind) -> Field {
        Field { name, kind, required: true }
    }

    pub const fn optional(name: &'static str, kind: Kind) -> Field {
        Field { name, kind, required: false }
    }
}

/// A typed request body.
pub trait JsonBody: DeserializeOwned {
    /// The fields of the body (JSON names), used to explain a type error.
    const FIELDS: &'static [Field];

    /// Checks beyond JSON types (required strings not blank, ranges).
    fn validate(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

/// `"<name> is required"` unless `value` has non-blank content.
pub fn require(name: &'static str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() { Err(ApiError::invalid(name, format!("{name} is required"))) } else { Ok(()) }
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

fn too_large(limit: usize) -> ApiError {
    ApiError::new(ErrorCode::PayloadTooLarge, format!("request body is larger than {limit} bytes"))
}

/// How much of a refused body is still read (and thrown away) so that the
/// answer reaches the client: closing a socket with unread input makes the
/// kernel send a reset, which can destroy the answer in flight.
const DISCARD_MAX_BYTES: usize = 256 * 1024;
const DISCARD_MAX_TIME: Duration = Duration::from_secs(1);

/// Reads and drops what is left of a body we will not use, within
/// [`DISCARD_MAX_BYTES`] and [`DISCARD_MAX_TIME`]. Nothing is read when the
/// client waits for `100 Continue` (it has not sent the body, and reading
/// would invite it to).
pub async fn discard<B: Body>(headers: &HeaderMap, body: B) {
    if body.is_end_stream() || headers.contains_key(EXPECT) {
        return;
    }
    let mut body = pin!(body);
    let _ = tokio::time::timeout(DISCARD_MAX_TIME, async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                seen += data.remaining();
                if seen > DISCARD_MAX_BYTES {
                    break;
                }
            }
        }
    })
    .await;
}

/// Reads the whole body, refusing (413) a declared or actual size above `limit`.
pub async fn read_body<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared =
        headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared
        && n > limit as u64
    {
        if n <= (limit + DISCARD_MAX_BYTES) as u64 {
            discard(headers, body).await;
        }
        return Err(too_large(limit));
    }
    let mut body = pin!(body);
    // The usual body is one frame: keep it without copying.
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut total = 0usize;
    loop {
        let Some(frame) = body.frame().await else { break };
        let frame = frame.map_err(|e| {
            let e: Box<dyn std::error::Error + Send + Sync> = e.into();
            tracing::debug!(error = %e, "reading request body failed");
            ApiError::new(ErrorCode::ValidationError, "could not read the request body")
        })?;
        let Ok(mut data) = frame.into_data() else { continue };
        let len = data.remaining();
        if len == 0 {
            continue;
        }
        total += len;
        if total > limit {
            discard(headers, body).await;
            return Err(too_large(limit));
        }
        match (&mut first, &mut rest) {
            (None, _) => first = Some(data.copy_to_bytes(len)),
            (Some(head), None) => {
                let mut buf = BytesMut::with_capacity(declared.map_or(2 * total, |n| n as usize).max(total));
                buf.extend_from_slice(head);
                buf.put(data);
                rest = Some(buf);
            }
            (Some(_), Some(buf)) => buf.put(data),
        }
    }
    Ok(match (first, rest) {
        (_, Some(buf)) => buf.freeze(),
        (Some(head), None) => head,
        (None, None) => Bytes::new(),
    })
}

/// Content-Type check, body reading and typed parsing in one go.
pub async fn read_json<T, B>(headers: &HeaderMap, body: B, limit: usize) -> Result<T, ApiError>
where
    T: JsonBody,
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Err(e) = check_content_type(headers) {
        discard(headers, body).await;
        return Err(e);
    }
    let bytes = read_body(headers, body, limit).await?;
    parse(&bytes)
}

/// Parses and validates a body: malformed JSON → `INVALID_JSON`; a missing,
/// null or mistyped field → `VALIDATION_ERROR` naming the field.
pub fn parse<T: JsonBody>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match first {
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
    match serde_json::from_slice::<T>(bytes) {
        Ok(value) => {
            value.validate()?;
            Ok(value)
        }
        Err(e) => Err(match e.classify() {
            serde_json::error::Category::Data => explain_data_error(bytes, T::FIELDS, &e),
            _ => invalid_json(&e),
        }),
    }
}

fn invalid_json(e: &serde_json::Error) -> ApiError {
    ApiError::new(ErrorCode::InvalidJson, format!("invalid JSON: {e}"))
}

/// The JSON is well formed but does not fit the type: find the field.
fn explain_data_error(bytes: &[u8], fields: &[Field], e: &serde_json::Error) -> ApiError {
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(bytes) {
        for f in fields {
            match map.get(f.name) {
                None | Some(Value::Null) if f.required => {
                    return ApiError::invalid(f.name, format!("{} is required", f.name));
                }
                Some(v) if !v.is_null() && !f.kind.matches(v) => {
                    return ApiError::invalid(f.name, format!("{} must be {}", f.name, f.kind.article()));
                }
                _ => {}
            }
        }
    }
    // Fall back to serde's own words ("duplicate field `x`", …), without the position.
    let text = e.to_string();
    let text = text.split(" at line ").next().unwrap_or(&text).to_owned();
    match text.split('`').nth(1) {
        Some(field) if !field.is_empty() && !field.contains(char::is_whitespace) => {
            ApiError::invalid(field.to_owned(), text.clone())
        }
        _ => ApiError::new(ErrorCode::ValidationError, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Demo {
        email: String,
        latitude: Option<f64>,
    }

    impl JsonBody for Demo {
        const FIELDS: &'static [Field] =
            &[Field::required("email", Kind::String), Field::optional("latitude", Kind::Number)];
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

    #[tokio::test]
    async fn body_limit_is_enforced_declared_and_streamed() {
        let h = HeaderMap::new();
        let e = read_body(&h, Full::new(Bytes::from(vec![b'x'; 11])), 10).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::PayloadTooLarge);
        let mut h = HeaderMap::new();
        h.insert(CONTENT_LENGTH, "1000".parse().unwrap());
        let e = read_body(&h, Full::new(Bytes::from_static(b"{}")), 10).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::PayloadTooLarge);
        let ok = read_body(&HeaderMap::new(), Full::new(Bytes::from_static(b"{}")), 10).await.unwrap();
        assert_eq!(&ok[..], b"{}");
        let ok = read_body(&HeaderMap::new(), Full::new(Bytes::new()), 10).await.unwrap();
        assert!(ok.is_empty());
    }

    #[tokio::test]
    async fn multi_frame_bodies_are_joined_and_limited() {
        use futures::stream;
        use http_body_util::StreamBody;
        let frames = |parts: &[&'static str]| {
            let frames: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> =
                parts.iter().map(|p| Ok(http_body::Frame::data(Bytes::from_static(p.as_bytes())))).collect();
            StreamBody::new(stream::iter(frames))
        };
        let ok = read_body(&HeaderMap::new(), frames(&["{\"a\"", ":", "1}"]), 10).await.unwrap();
        assert_eq!(&ok[..], b"{\"a\":1}");
        let e = read_body(&HeaderMap::new(), frames(&["12345", "67890", "x"]), 10).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::PayloadTooLarge);
    }
}
