//! The media store behind `object_store`: a local folder (the default,
//! `data/media`: the all-in-one needs no configuration) or an S3-compatible
//! bucket (`s3://bucket/prefix`).
//!
//! [`MediaStore::ingest`] streams a file in: the first bytes decide its type
//! ([`super::kinds::decide`]), the kind's limit is enforced on every chunk
//! (a declared size above it is refused before a byte is stored), the
//! SHA-256 is computed on the way, and the bytes go to a temporary object
//! through a multipart upload (never whole in memory: one part buffered at
//! a time). The finished object is renamed to `<user>/<sha256>`, or dropped
//! when the account already has those bytes (content addressing: one object
//! per account and content, whatever the number of rows naming it).

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};

use super::kinds::{self, Kind, Limits};
use super::{MediaError, MediaSettings};

/// One part buffered at a time per upload: S3's minimum part size, and a
/// smaller one for local files.
const S3_PART_BYTES: usize = 5 * 1024 * 1024;
const LOCAL_PART_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct MediaStore {
    store: Arc<dyn ObjectStore>,
    part_bytes: usize,
    /// `local` or `s3` (logs, metrics).
    kind: &'static str,
}

/// A file stored by [`MediaStore::ingest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub object_key: String,
    pub sha256: String,
    pub size: u64,
    pub mime_type: String,
    /// False when the account already had these bytes.
    pub new_object: bool,
}

/// What is known of a file before its bytes.
#[derive(Debug, Clone)]
pub struct Incoming<'a> {
    pub user_id: &'a str,
    pub kind: Kind,
    pub declared_mime: &'a str,
    pub size_hint: Option<u64>,
}

impl MediaStore {
    /// Opens the configured store (a local folder is created if missing).
    pub fn open(settings: &MediaSettings) -> Result<Self, MediaError> {
        let url = settings.url.trim();
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(MediaError::Config("WAGATE_MEDIA_URL s3:// names no bucket".into()));
            }
            // TLS to the store on ring (reqwest without a provider of its own).
            let _ = rustls::crypto::ring::default_provider().install_default();
            let o = &settings.s3;
            let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(v) = &o.endpoint {
                b = b.with_endpoint(v);
            }
            if let Some(v) = &o.access_key_id {
                b = b.with_access_key_id(v);
            }
            if let Some(v) = &o.secret_access_key {
                b = b.with_secret_access_key(v);
            }
            if let Some(v) = &o.region {
                b = b.with_region(v);
            }
            if o.allow_http {
                b = b.with_allow_http(true);
            }
            let s3 = b.build().map_err(|e| MediaError::Config(e.to_string()))?;
            let store: Arc<dyn ObjectStore> = match prefix.trim_matches('/') {
                "" => Arc::new(s3),
                p => Arc::new(object_store::prefix::PrefixStore::new(s3, p)),
            };
            return Ok(Self { store, part_bytes: S3_PART_BYTES, kind: "s3" });
        }
        let dir = url.strip_prefix("file://").unwrap_or(url);
        std::fs::create_dir_all(dir).map_err(|e| MediaError::Config(format!("{dir}: {e}")))?;
        let local = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| MediaError::Config(e.to_string()))?
            .with_automatic_cleanup(true);
        Ok(Self { store: Arc::new(local), part_bytes: LOCAL_PART_BYTES, kind: "local" })
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Streams a file into the store (see the module comment). On any error
    /// the temporary object is aborted: nothing half-written remains.
    pub async fn ingest<S>(
        &self,
        file: Incoming<'_>,
        limits: &Limits,
        mut bytes: S,
    ) -> Result<Stored, MediaError>
    where
        S: Stream<Item = Result<Bytes, MediaError>> + Unpin,
    {
        let limit = file.kind.limit(limits);
        if file.size_hint.is_some_and(|n| n > limit) {
            return Err(kinds::too_large(file.kind, limits));
        }
        // The first bytes, for the type.
        let mut head: Vec<u8> = Vec::new();
        let mut pending: Option<Bytes> = None;
        while head.len() < kinds::SNIFF_BYTES {
            match bytes.next().await.transpose()? {
                Some(chunk) => {
                    let take = (kinds::SNIFF_BYTES - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..take]);
                    if take < chunk.len() {
                        pending = Some(chunk.slice(take..));
                    }
                }
                None => break,
            }
        }
        if head.is_empty() {
            return Err(MediaError::Invalid("the file is empty".into()));
        }
        if head.len() as u64 > limit {
            return Err(kinds::too_large(file.kind, limits));
        }
        let mime_type = kinds::decide(file.kind, &head, file.declared_mime)?;

        let tmp = Path::from(format!("tmp/{}", uuid::Uuid::new_v4().simple()));
        let upload = self.store.put_multipart(&tmp).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_bytes);
        let mut hasher = Sha256::new();
        let mut size = head.len() as u64;
        hasher.update(&head);
        writer.write(&head);
        drop(head);
        let copied: Result<(), MediaError> = async {
            let mut next = pending.take();
            loop {
                let chunk = match next.take() {
                    Some(c) => c,
                    None => match bytes.next().await.transpose()? {
                        Some(c) => c,
                        None => break,
                    },
                };
                size += chunk.len() as u64;
                if size > limit {
                    return Err(kinds::too_large(file.kind, limits));
                }
                hasher.update(&chunk);
                writer.wait_for_capacity(1).await?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        if let Err(e) = copied {
            if let Err(abort) = writer.abort().await {
                tracing::debug!(error = %abort, "aborting a media upload failed");
            }
            return Err(e);
        }
        writer.finish().await?;
        let sha256 = hex::encode(hasher.finalize());
        let object_key = format!("{}/{}", file.user_id, sha256);
        let target = Path::from(object_key.as_str());
        let new_object = match self.store.head(&target).await {
            Ok(_) => {
                self.delete_path(&tmp).await;
                false
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.store.rename(&tmp, &target).await?;
                true
            }
            Err(e) => {
                self.delete_path(&tmp).await;
                return Err(e.into());
            }
        };
        Ok(Stored { object_key, sha256, size, mime_type, new_object })
    }

    /// The bytes `[start, end]` (inclusive) of an object, as a stream.
    pub async fn read(
        &self,
        object_key: &str,
        start: u64,
        end: u64,
    ) -> Result<impl Stream<Item = Result<Bytes, object_store::Error>> + use<>, MediaError> {
        let options = GetOptions { range: Some(GetRange::Bounded(start..end + 1)), ..Default::default() };
        match self.store.get_opts(&Path::from(object_key), options).await {
            Ok(r) => Ok(r.into_stream()),
            Err(object_store::Error::NotFound { .. }) => Err(MediaError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an object (already gone: fine).
    pub async fn delete(&self, object_key: &str) -> Result<(), MediaError> {
        match self.store.delete(&Path::from(object_key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_path(&self, path: &Path) {
        if let Err(e) = self.store.delete(path).await {
            tracing::debug!(error = %e, "deleting a temporary media object failed");
        }
    }
}
