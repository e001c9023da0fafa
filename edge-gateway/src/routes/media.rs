//! `GET /media/{mediaId}`: a stored file (uploaded to be sent, or received),
//! streamed from the control plane with `Content-Type`, `Content-Length` and
//! `Range` support; with the session's API key, its owner's token, or a
//! signed link (`?expires=&sig=`, see `MediaRefDto::signed_url`). Also the
//! upload helper the send route uses: a byte stream → `MediaService.Upload`
//! chunks (never the whole file in memory).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::error::{ApiError, ErrorCode};
use wagate_proto::v1::{self, DownloadRequest, MessageContent};

use super::{AppState, CallContext, incomplete_reply};
use crate::envelope::Error;
use crate::params::{PathIds, Query, text};

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(download))
}

/// The path of a media file under the API.
pub fn media_path(id: &str) -> String {
    format!("/api/v1/media/{id}")
}

/// A stored file as messages and webhooks show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaRefDto {
    pub id: String,
    pub mime_type: String,
    pub size: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// `GET` it with the session's API key (`/api/v1/media/{id}`).
    pub url: String,
}

impl MediaRefDto {
    /// The media a message content names, if any.
    pub fn of(c: &MessageContent) -> Option<Self> {
        let id = c.media_id.clone()?;
        Some(MediaRefDto {
            url: media_path(&id),
            id,
            mime_type: c.mime_type.clone().unwrap_or_default(),
            size: c.media_size.unwrap_or_default(),
            sha256: c.media_sha256.clone().unwrap_or_default(),
        })
    }
}

/// An uploaded file (the send answer's `media`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaDto {
    pub id: String,
    pub mime_type: String,
    pub size: u64,
    pub sha256: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filename: String,
    pub url: String,
    /// The same without a credential, until `signedUrlExpiresAt` (Unix seconds).
    pub signed_url: String,
    pub signed_url_expires_at: u64,
}

impl From<&v1::MediaInfo> for MediaDto {
    fn from(m: &v1::MediaInfo) -> Self {
        let url = media_path(&m.id);
        MediaDto {
            signed_url: format!("{url}?expires={}&sig={}", m.link_expires, m.link_signature),
            signed_url_expires_at: m.link_expires,
            url,
            id: m.id.clone(),
            mime_type: m.mime_type.clone(),
            size: m.size,
            sha256: m.sha256.clone(),
            filename: m.filename.clone(),
        }
    }
}

/// Streams `bytes` to `MediaService.Upload` after `meta`; the first error
/// of either side ends both (a dropped call tells the control plane to
/// abort what it stored).
pub async fn upload<S>(
    state: &AppState,
    call: &CallContext,
    meta: v1::UploadMeta,
    mut bytes: S,
) -> Result<v1::MediaInfo, ApiError>
where
    S: Stream<Item = Result<Bytes, ApiError>> + Unpin,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<v1::UploadChunk>(4);
    let first = v1::UploadChunk { part: Some(v1::upload_chunk::Part::Meta(meta)) };
    if tx.send(first).await.is_err() {
        return Err(ApiError::new(ErrorCode::Internal, "internal server error"));
    }
    let request = call.request(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut client = state.control_plane.media();
    let reply = call.unary("MediaService.Upload", client.upload(request));
    tokio::pin!(reply);
    let pump = async move {
        while let Some(chunk) = bytes.next().await {
            let data = v1::UploadChunk { part: Some(v1::upload_chunk::Part::Data(chunk?)) };
            if tx.send(data).await.is_err() {
                break; // the call ended: its answer says why
            }
        }
        Ok::<(), ApiError>(())
    };
    tokio::select! {
        answer = &mut reply => return answer,
        pumped = pump => pumped?,
    }
    reply.await
}

/// Signed-link parameters of a download.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkParams {
    /// Expiry of a signed link (Unix seconds).
    #[serde(default, deserialize_with = "text::<_, 20>")]
    #[param(pattern = "^[0-9]{1,20}$")]
    pub expires: Option<String>,
    /// Signature of a signed link.
    #[serde(default, deserialize_with = "text::<_, 128>")]
    #[param(max_length = 128)]
    pub sig: Option<String>,
}

/// A `Range: bytes=…` header: `(start, end)` or a suffix length. Anything
/// else (several ranges, other units) is ignored: the whole file is sent.
fn parse_range(headers: &HeaderMap) -> (Option<u64>, Option<u64>, Option<u64>) {
    let none = (None, None, None);
    let Some(raw) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else { return none };
    let Some(spec) = raw.trim().strip_prefix("bytes=") else { return none };
    if spec.contains(',') {
        return none;
    }
    let Some((a, b)) = spec.split_once('-') else { return none };
    let (a, b) = (a.trim(), b.trim());
    match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(s), Some(e)) => (Some(s), Some(e), None),
        (Some(s), None) if b.is_empty() => (Some(s), None, None),
        (None, Some(n)) if a.is_empty() => (None, None, Some(n)),
        _ => none,
    }
}

/// A file name safe in a `Content-Disposition` header.
fn disposition(filename: &str) -> Option<HeaderValue> {
    let clean: String = filename
        .chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | ';') || *c == ' ')
        .collect();
    let name = if clean.trim().is_empty() { "file".to_owned() } else { clean };
    HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")).ok()
}

#[utoipa::path(get, path = "/media/{mediaId}", tag = "media",
    summary = "Download a stored file (Range supported)",
    description = "With the session's API key (or the owner's token), or without a credential through a signed link (`?expires=&sig=`, as given in `signedUrl`). Another account's media is 404; an expired or altered link 403.",
    security((), ("apiKey" = []), ("bearer" = [])),
    params(("mediaId" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$", max_length = 64), LinkParams,
        ("Range" = Option<String>, Header, description = "one byte range, e.g. `bytes=0-1023`")),
    responses((status = 200, description = "the file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "the range asked", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 403, description = "the link is expired or altered", body = crate::openapi::ErrorEnvelope),
        (status = 416, description = "the range is outside the file", body = crate::openapi::ErrorEnvelope)))]
pub(crate) async fn download(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    ids: PathIds,
    Query(link): Query<LinkParams>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let media_id = ids.id("mediaId", "media")?;
    let expires = match link.expires.as_deref() {
        Some(e) => Some(e.parse::<u64>().map_err(|_| {
            ApiError::new(ErrorCode::Forbidden, "the link is expired or its signature is wrong")
        })?),
        None => None,
    };
    if expires.is_none() || link.sig.is_none() {
        call.require_api_key()?;
    }
    let (range_start, range_end, suffix_length) = parse_range(&headers);
    let request =
        DownloadRequest { media_id, expires, signature: link.sig, range_start, range_end, suffix_length };
    let mut stream = call
        .unary("MediaService.Download", state.control_plane.media().download(call.request(request)))
        .await?;
    let first = stream.message().await.map_err(|s| crate::grpc::call_failed("MediaService.Download", &s))?;
    let Some(v1::DownloadChunk { part: Some(v1::download_chunk::Part::Head(head)) }) = first else {
        return Err(incomplete_reply("MediaService.Download").into());
    };
    let media = head.media.ok_or_else(|| incomplete_reply("MediaService.Download"))?;
    let length = head.end.saturating_sub(head.start) + 1;
    let body = stream.filter_map(|m| async move {
        match m {
            Ok(v1::DownloadChunk { part: Some(v1::download_chunk::Part::Data(b)) }) => Some(Ok(b)),
            Ok(_) => None,
            Err(s) => {
                tracing::warn!(code = ?s.code(), "media download broke off");
                Some(Err(std::io::Error::other(s.message().to_owned())))
            }
        }
    });
    let mut response = Body::from_stream(body).into_response();
    *response.status_mut() = if head.partial { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    let h = response.headers_mut();
    let mime = HeaderValue::from_str(&media.mime_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, mime);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=300"));
    if head.partial
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{}", head.start, head.end, media.size))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    if let Some(v) = disposition(&media.filename) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", media.sha256)) {
        h.insert(header::ETAG, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
            parse_range(&m)
        };
        assert_eq!(h("bytes=0-9"), (Some(0), Some(9), None));
        assert_eq!(h("bytes=10-"), (Some(10), None, None));
        assert_eq!(h("bytes=-5"), (None, None, Some(5)));
        assert_eq!(h("bytes=0-1,4-5"), (None, None, None));
        assert_eq!(h("items=0-1"), (None, None, None));
        assert_eq!(disposition("a\"b;c.png").unwrap(), "attachment; filename=\"abc.png\"");
    }
}
