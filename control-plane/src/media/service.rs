//! `MediaService`: Upload (client streaming, into the store) and Download
//! (server streaming, with ranges), for the session's API key, its owner's
//! token, or (Download) a signed link.

use std::pin::Pin;

use bytes::Bytes;
use chrono::Utc;
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use wagate_proto::time::to_proto;
use wagate_proto::v1::{self, media_service_server::MediaService};

use super::MediaError;
use super::kinds::Kind;
use super::store::Incoming;
use crate::error::{CpError, CpResult, api, invalid};
use crate::persistence::media::{self as media_rows, MediaRow};
use crate::state::SharedState;
use crate::validation;
use wagate_proto::error::ErrorCode;

/// Usage metric: bytes of new media stored.
pub const MEDIA_BYTES: &str = "media.bytes_stored";
/// Bytes per Download message.
const DOWNLOAD_CHUNK: usize = 64 * 1024;

pub struct MediaApi {
    state: SharedState,
}

impl MediaApi {
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }
}

/// Direction of a stored file.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    Outbound,
    Inbound,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "OUTBOUND",
            Direction::Inbound => "INBOUND",
        }
    }
}

/// Stores a file of `session` (owner `user_id`) from its byte stream and
/// records its row; the usage meter counts the bytes of a new object.
pub async fn store_file<S>(
    state: &SharedState,
    user_id: &str,
    session_id: &str,
    meta: &v1::UploadMeta,
    direction: Direction,
    bytes: S,
) -> CpResult<MediaRow>
where
    S: Stream<Item = Result<Bytes, MediaError>> + Unpin,
{
    let kind = v1::MessageType::try_from(meta.kind)
        .ok()
        .and_then(Kind::of)
        .ok_or_else(|| invalid("type", "type must be one of image, document, audio, video, sticker"))?;
    let filename = meta.filename.trim();
    if filename.chars().count() > 255 || filename.contains(['/', '\\', '\r', '\n']) {
        return Err(invalid("filename", "filename must be at most 255 characters, without path separators"));
    }
    let settings = &state.config.media;
    let incoming = Incoming { user_id, kind, declared_mime: &meta.declared_mime, size_hint: meta.size_hint };
    let stored = state.media.ingest(incoming, &settings.limits, bytes).await?;
    let now = Utc::now();
    let row = MediaRow {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: user_id.to_owned(),
        session_id: session_id.to_owned(),
        sha256: stored.sha256,
        object_key: stored.object_key,
        mime_type: stored.mime_type,
        size_bytes: i64::try_from(stored.size).unwrap_or(i64::MAX),
        filename: (!filename.is_empty()).then(|| filename.to_owned()),
        direction: direction.as_str().to_owned(),
        created_at: now,
        expires_at: now + chrono::Duration::from_std(settings.retention).unwrap_or_default(),
    };
    media_rows::insert(&state.db, row.clone()).await?;
    if stored.new_object {
        state.usage.media_bytes(user_id, session_id, stored.size);
    }
    metrics::counter!("wagate_media_stored_bytes_total", "direction" => direction.as_str())
        .increment(stored.size);
    tracing::debug!(media_id = row.id, session_id, size = stored.size, mime = row.mime_type, "media stored");
    Ok(row)
}

/// What a message row keeps of its media (its `metadata` column): `{"media": {id, mimeType, size, sha256, filename}}`.
pub fn metadata(row: &MediaRow) -> serde_json::Value {
    serde_json::json!({ "media": {
        "id": row.id,
        "mimeType": row.mime_type,
        "size": row.size_bytes,
        "sha256": row.sha256,
        "filename": row.filename,
    }})
}

/// The row as the API shows it, with a fresh signed link.
pub fn info(state: &SharedState, row: &MediaRow) -> v1::MediaInfo {
    let ttl = state.config.media.link_ttl.as_secs();
    let link_expires =
        (Utc::now().timestamp().max(0) as u64 + ttl).min(row.expires_at.timestamp().max(0) as u64);
    v1::MediaInfo {
        id: row.id.clone(),
        session_id: row.session_id.clone(),
        mime_type: row.mime_type.clone(),
        size: u64::try_from(row.size_bytes).unwrap_or_default(),
        sha256: row.sha256.clone(),
        filename: row.filename.clone().unwrap_or_default(),
        created_at: Some(to_proto(row.created_at)),
        expires_at: Some(to_proto(row.expires_at)),
        link_expires,
        link_signature: state.media_links.sign(&row.id, link_expires),
    }
}

/// A media row the caller may read (`None`-free: NOT_FOUND otherwise):
/// with a signed link anyone holding it; with a session API key the
/// session's own media; with a user token the account's media.
async fn readable(
    state: &SharedState,
    md: &tonic::metadata::MetadataMap,
    req: &v1::DownloadRequest,
) -> CpResult<MediaRow> {
    let not_found = || CpError::from(MediaError::NotFound);
    let id = validation::lookup_id(&req.media_id).ok_or_else(not_found)?;
    if let (Some(expires), Some(sig)) = (req.expires, req.signature.as_deref()) {
        let now = Utc::now().timestamp().max(0) as u64;
        state.media_links.verify(id, expires, sig, now)?;
        return media_rows::by_id(&state.db, id).await?.filter(live).ok_or_else(not_found);
    }
    if req.expires.is_some() || req.signature.is_some() {
        return Err(MediaError::BadLink.into());
    }
    if md.contains_key(wagate_proto::metadata::WORKER_ID) {
        // A worker fetching a file to send: only of a session it runs.
        let worker_id = authenticate_worker(state, md).await?;
        let row = media_rows::by_id(&state.db, id).await?.filter(live).ok_or_else(not_found)?;
        let session = crate::persistence::sessions::by_id(&state.db.conn, &row.session_id).await?;
        return match session {
            Some(s) if s.worker_id.as_deref() == Some(worker_id.as_str()) => Ok(row),
            _ => Err(not_found()),
        };
    }
    let row = match crate::services::session_key(state, md).await? {
        Some(key) => {
            media_rows::of_user(&state.db, id, &key.user_id).await?.filter(|r| r.session_id == key.session_id)
        }
        None => {
            let user = state.auth.user(md).await?;
            media_rows::of_user(&state.db, id, &user.id).await?
        }
    };
    row.filter(live).ok_or_else(not_found)
}

/// The worker a call comes from (`x-wagate-worker-id`), proven like on its
/// stream: its `wkt_…` token, or the shared token where allowed.
async fn authenticate_worker(state: &SharedState, md: &tonic::metadata::MetadataMap) -> CpResult<String> {
    use crate::auth::identity;
    use crate::services::admin_workers;
    let unauthenticated = || api(ErrorCode::Unauthenticated, "invalid worker token");
    let worker_id = md
        .get(wagate_proto::metadata::WORKER_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .ok_or_else(unauthenticated)?;
    let token = identity::bearer(md).ok_or_else(unauthenticated)?;
    let shared = state.config.allow_shared_worker_token
        && identity::secret_matches(token, &state.config.worker_auth_token);
    let own_token = !shared
        && token.starts_with(admin_workers::WORKER_TOKEN_PREFIX)
        && admin_workers::token_matches(state, worker_id, token).await?;
    if !(shared || own_token) {
        return Err(unauthenticated());
    }
    Ok(worker_id.to_owned())
}

/// The session a worker stores a received file for: the worker proves
/// itself like on its stream (its `wkt_…` token, or the shared token where
/// allowed), and the session must be placed on it with that generation (the
/// fence of its events): a worker never writes into a session it no longer runs.
async fn worker_session(
    state: &SharedState,
    md: &tonic::metadata::MetadataMap,
    meta: &v1::UploadMeta,
) -> CpResult<crate::persistence::sessions::Session> {
    let worker_id = authenticate_worker(state, md).await?;
    let id = validation::lookup_id(&meta.session_id)
        .ok_or_else(|| api(ErrorCode::SessionNotFound, "session not found"))?;
    let session = crate::persistence::sessions::by_id(&state.db.conn, id)
        .await?
        .ok_or_else(|| api(ErrorCode::SessionNotFound, "session not found"))?;
    if session.worker_id.as_deref() != Some(worker_id.as_str())
        || u64::try_from(session.generation).ok() != Some(meta.generation)
    {
        return Err(api(
            ErrorCode::Forbidden,
            "the session is not placed on this worker with this generation",
        ));
    }
    Ok(session)
}

fn live(row: &MediaRow) -> bool {
    row.expires_at > Utc::now()
}

/// `[start, end]` inclusive of a file of `size` bytes, and whether a range was asked.
fn range(req: &v1::DownloadRequest, size: u64) -> Result<(u64, u64, bool), MediaError> {
    if size == 0 {
        return Err(MediaError::Range(size));
    }
    let last = size - 1;
    match (req.range_start, req.range_end, req.suffix_length) {
        (None, None, None) => Ok((0, last, false)),
        (None, None, Some(n)) if n > 0 => Ok((size.saturating_sub(n), last, true)),
        (Some(s), e, None) if s <= last && e.is_none_or(|e| e >= s) => {
            Ok((s, e.unwrap_or(last).min(last), true))
        }
        _ => Err(MediaError::Range(size)),
    }
}

type DownloadStream = Pin<Box<dyn Stream<Item = Result<v1::DownloadChunk, Status>> + Send>>;

#[tonic::async_trait]
impl MediaService for MediaApi {
    async fn upload(
        &self,
        request: Request<Streaming<v1::UploadChunk>>,
    ) -> Result<Response<v1::MediaInfo>, Status> {
        self.state.ensure_running()?;
        let (md, _, mut chunks) = request.into_parts();
        let first = chunks.message().await.map_err(|s| {
            Status::from(CpError::from(MediaError::Invalid(format!("upload stream broke: {}", s.message()))))
        })?;
        let Some(v1::UploadChunk { part: Some(v1::upload_chunk::Part::Meta(meta)) }) = first else {
            return Err(invalid("file", "the first upload message must carry the metadata").into());
        };
        let from_worker = md.contains_key(wagate_proto::metadata::WORKER_ID);
        let session = if from_worker {
            worker_session(&self.state, &md, &meta).await?
        } else {
            crate::services::readable_session(&self.state, &md, &meta.session_id).await?
        };
        let direction = if from_worker { Direction::Inbound } else { Direction::Outbound };
        let bytes = chunks.map(|c| match c {
            Ok(v1::UploadChunk { part: Some(v1::upload_chunk::Part::Data(b)) }) => Ok(b),
            Ok(_) => Err(MediaError::Invalid("metadata may only come first".into())),
            Err(s) => Err(MediaError::Invalid(format!("upload stream broke: {}", s.message()))),
        });
        let row = store_file(&self.state, &session.user_id, &session.id, &meta, direction, bytes).await?;
        Ok(Response::new(info(&self.state, &row)))
    }

    type DownloadStream = DownloadStream;

    async fn download(
        &self,
        request: Request<v1::DownloadRequest>,
    ) -> Result<Response<DownloadStream>, Status> {
        self.state.ensure_running()?;
        let (md, _, req) = request.into_parts();
        let row = readable(&self.state, &md, &req).await?;
        let size = u64::try_from(row.size_bytes).unwrap_or_default();
        let (start, end, partial) = range(&req, size).map_err(CpError::from)?;
        let body = self.state.media.read(&row.object_key, start, end).await.map_err(CpError::from)?;
        let head = v1::DownloadChunk {
            part: Some(v1::download_chunk::Part::Head(v1::DownloadHead {
                media: Some(info(&self.state, &row)),
                start,
                end,
                partial,
            })),
        };
        let data = body.flat_map(|r| {
            let items: Vec<Result<v1::DownloadChunk, Status>> = match r {
                Ok(b) => (0..b.len())
                    .step_by(DOWNLOAD_CHUNK)
                    .map(|i| {
                        Ok(v1::DownloadChunk {
                            part: Some(v1::download_chunk::Part::Data(
                                b.slice(i..(i + DOWNLOAD_CHUNK).min(b.len())),
                            )),
                        })
                    })
                    .collect(),
                Err(e) => vec![Err(Status::from(CpError::from(MediaError::Store(e))))],
            };
            futures::stream::iter(items)
        });
        let stream = futures::stream::once(async move { Ok(head) }).chain(data);
        Ok(Response::new(Box::pin(stream)))
    }
}
