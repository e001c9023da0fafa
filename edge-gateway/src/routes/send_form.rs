//! The two ways a send carries its file besides `mediaUrl`:
//!
//! - `multipart/form-data`: a part named `file` plus the JSON body's other
//!   fields as form fields (`to`, `type`, `caption`, …). The file is streamed
//!   to `MediaService.Upload` as it arrives (never whole in memory), within
//!   `WAGATE_EDGE_MEDIA_BODY_LIMIT_BYTES`; the control plane applies the
//!   per-type limits while it reads. Without `type` (before the file part)
//!   the part's Content-Type chooses it (image/audio/video, else document).
//! - `mediaBase64` in the JSON body (decoded here; the JSON body is capped at
//!   `WAGATE_EDGE_BASE64_BODY_LIMIT_BYTES`).

use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use serde_json::{Map, Value};
use wagate_proto::error::{ApiError, ErrorCode};
use wagate_proto::v1::{self, MessageType};

use super::messages::SendBody;
use super::{AppState, CallContext};
use crate::json::Validate;

/// Largest text field of a form.
const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Bytes per upload chunk of a decoded base64 file.
const CHUNK: usize = 256 * 1024;

pub fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
}

fn multipart_error(e: multer::Error, limit: u64) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            ApiError::new(ErrorCode::PayloadTooLarge, format!("request body is larger than {limit} bytes"))
        }
        other => ApiError::invalid("body", format!("malformed multipart body: {other}")),
    }
}

/// The message type of a file part without `type`: from its declared type.
fn kind_of_part(content_type: Option<&str>) -> &'static str {
    match content_type.map(|c| c.to_ascii_lowercase()) {
        Some(c) if c.starts_with("image/webp") => "sticker",
        Some(c) if c.starts_with("image/") => "image",
        Some(c) if c.starts_with("audio/") => "audio",
        Some(c) if c.starts_with("video/") => "video",
        _ => "document",
    }
}

/// The upload metadata of a send body's file.
fn meta(
    session_id: &str,
    body: &SendBody,
    declared: &str,
    filename: Option<&str>,
) -> Result<v1::UploadMeta, ApiError> {
    let kind = body.message_type()?;
    if !matches!(
        kind,
        MessageType::Image
            | MessageType::Audio
            | MessageType::Video
            | MessageType::Document
            | MessageType::Sticker
    ) {
        return Err(ApiError::invalid(
            "type",
            "a file goes with type image, document, audio, video or sticker",
        ));
    }
    Ok(v1::UploadMeta {
        session_id: session_id.to_owned(),
        kind: kind as i32,
        filename: body.filename.as_deref().or(filename).unwrap_or_default().to_owned(),
        declared_mime: declared.to_owned(),
        size_hint: None,
        generation: 0,
    })
}

/// Reads a multipart send: its fields, and its `file` streamed to the control plane.
pub async fn read(
    state: &AppState,
    call: &CallContext,
    session_id: &str,
    req: axum::extract::Request,
) -> Result<(SendBody, Option<v1::MediaInfo>), ApiError> {
    let limit = state.config.media_body_limit_bytes;
    let boundary = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
        .ok_or_else(|| ApiError::invalid("body", "multipart/form-data needs a boundary"))?;
    let constraints = multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit));
    let mut form =
        multer::Multipart::with_constraints(req.into_body().into_data_stream(), boundary, constraints);
    let mut fields = Map::new();
    let mut media: Option<v1::MediaInfo> = None;
    while let Some(mut field) = form.next_field().await.map_err(|e| multipart_error(e, limit))? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            if media.is_some() {
                return Err(ApiError::invalid("file", "one file per send"));
            }
            call.require_api_key()?;
            let declared = field.content_type().map(|m| m.essence_str().to_owned()).unwrap_or_default();
            if !fields.contains_key("type") {
                fields.insert("type".into(), Value::String(kind_of_part(Some(&declared)).into()));
            }
            let body = body_of(fields.clone())?;
            let meta = meta(session_id, &body, &declared, field.file_name())?;
            let data = field.map(|chunk| chunk.map_err(|e| multipart_error(e, limit)));
            media = Some(super::media::upload(state, call, meta, Box::pin(data)).await?);
            continue;
        }
        let mut text = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
            if text.len() + chunk.len() > MAX_FIELD_BYTES {
                return Err(ApiError::invalid(
                    name,
                    format!("form fields are at most {MAX_FIELD_BYTES} bytes"),
                ));
            }
            text.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(text)
            .map_err(|_| ApiError::invalid(name.clone(), format!("{name} must be UTF-8 text")))?;
        if text.contains('\0') {
            return Err(wagate_proto::text::nul_error(&name));
        }
        let value = match name.as_str() {
            "latitude" | "longitude" => Value::from(
                text.trim()
                    .parse::<f64>()
                    .map_err(|_| ApiError::invalid(name.clone(), format!("{name} must be a number")))?,
            ),
            _ => Value::String(text),
        };
        fields.insert(name, value);
    }
    let mut body = body_of(fields)?;
    call.require_api_key()?;
    body.media_id = media.as_ref().map(|m| m.id.clone());
    body.validate()?;
    Ok((body, media))
}

fn body_of(fields: Map<String, Value>) -> Result<SendBody, ApiError> {
    serde_path_to_error::deserialize(Value::Object(fields)).map_err(|e| {
        let field = e.path().to_string();
        ApiError::invalid(field.clone(), format!("{field}: {}", e.into_inner()))
    })
}

/// Decodes `mediaBase64` and uploads it.
pub async fn upload_base64(
    state: &AppState,
    call: &CallContext,
    session_id: &str,
    body: &SendBody,
    b64: &str,
) -> Result<v1::MediaInfo, ApiError> {
    let raw = match b64.trim().strip_prefix("data:") {
        Some(rest) => rest.split_once(',').map_or(rest, |(_, data)| data),
        None => b64.trim(),
    };
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw.as_bytes()).map_err(|_| {
        ApiError::invalid("mediaBase64", "mediaBase64 must be base64 (standard alphabet, padded)")
    })?;
    let bytes = Bytes::from(bytes);
    let meta = meta(session_id, body, body.mime_type.as_deref().unwrap_or_default(), None)?;
    let chunks: Vec<Result<Bytes, ApiError>> =
        (0..bytes.len()).step_by(CHUNK).map(|i| Ok(bytes.slice(i..(i + CHUNK).min(bytes.len())))).collect();
    super::media::upload(state, call, meta, futures::stream::iter(chunks)).await
}
