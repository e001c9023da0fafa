//! Files between the worker and the control plane. Received files: a driver that downloaded and
//! decrypted an inbound file streams it with [`MediaUploader::upload`]
//! (`MediaService.Upload`, client streaming in chunks: never inside an event,
//! never whole in memory when the driver streams it), then emits the inbound
//! message with the returned media id (`MessageContent.media_id`).
//! Files to send: [`MediaUploader::download`] streams the bytes of the
//! `media_id` a send names. Authenticated like the worker's stream (its token as bearer, its id in
//! `x-wagate-worker-id`) and fenced on the session's generation.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use wagate_proto::v1::{self, media_service_client::MediaServiceClient};

use crate::WorkerConfig;

/// Why a file could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum MediaUploadError {
    #[error("this event sink has no media uploader (not made by a running worker)")]
    NoUploader,
    #[error("invalid worker token or id for metadata")]
    Metadata,
    #[error("media upload refused: {0}")]
    Refused(#[from] tonic::Status),
    #[error("media upload channel: {0}")]
    Channel(String),
}

/// What a file is, before its bytes.
#[derive(Debug, Clone)]
pub struct InboundFile {
    pub session_id: String,
    pub generation: u64,
    /// IMAGE, VIDEO, AUDIO, DOCUMENT or STICKER.
    pub kind: v1::MessageType,
    pub filename: String,
    /// What the sender declared (the bytes decide).
    pub mime_type: String,
}

/// Uploads files on the worker's behalf (one lazily connected channel).
#[derive(Debug, Clone)]
pub struct MediaUploader {
    channel: Channel,
    token: String,
    worker_id: String,
}

/// Bytes per upload message.
const CHUNK: usize = 64 * 1024;

impl MediaUploader {
    pub fn new(config: &WorkerConfig) -> Result<Self, MediaUploadError> {
        let endpoint = wagate_proto::endpoint_with_tls(
            config.control_plane_url.clone(),
            &wagate_proto::ConnectOptions::default(),
            config.tls.as_ref(),
        )
        .map_err(|e| MediaUploadError::Channel(e.to_string()))?;
        Ok(Self {
            channel: endpoint.connect_lazy(),
            token: config.token.clone(),
            worker_id: config.worker_id.clone(),
        })
    }

    /// Streams `bytes` as the file `file`; returns what was stored.
    pub async fn upload<S>(&self, file: InboundFile, bytes: S) -> Result<v1::MediaInfo, MediaUploadError>
    where
        S: Stream<Item = Bytes> + Send + 'static,
    {
        let meta = v1::UploadChunk {
            part: Some(v1::upload_chunk::Part::Meta(v1::UploadMeta {
                session_id: file.session_id,
                kind: file.kind as i32,
                filename: file.filename,
                declared_mime: file.mime_type,
                size_hint: None,
                generation: file.generation,
            })),
        };
        let data = bytes.flat_map(|b| {
            let parts: Vec<v1::UploadChunk> = (0..b.len())
                .step_by(CHUNK)
                .map(|i| v1::UploadChunk {
                    part: Some(v1::upload_chunk::Part::Data(b.slice(i..(i + CHUNK).min(b.len())))),
                })
                .collect();
            futures::stream::iter(parts)
        });
        let mut request = tonic::Request::new(futures::stream::once(async move { meta }).chain(data));
        let bearer = MetadataValue::try_from(format!("Bearer {}", self.token))
            .map_err(|_| MediaUploadError::Metadata)?;
        let worker =
            MetadataValue::try_from(self.worker_id.as_str()).map_err(|_| MediaUploadError::Metadata)?;
        request.metadata_mut().insert(wagate_proto::metadata::AUTHORIZATION, bearer);
        request.metadata_mut().insert(wagate_proto::metadata::WORKER_ID, worker);
        self.authorize(&mut request)?;
        let mut client = MediaServiceClient::new(self.channel.clone());
        Ok(client.upload(request).await?.into_inner())
    }

    fn authorize<T>(&self, request: &mut tonic::Request<T>) -> Result<(), MediaUploadError> {
        let bearer = MetadataValue::try_from(format!("Bearer {}", self.token))
            .map_err(|_| MediaUploadError::Metadata)?;
        let worker =
            MetadataValue::try_from(self.worker_id.as_str()).map_err(|_| MediaUploadError::Metadata)?;
        request.metadata_mut().insert(wagate_proto::metadata::AUTHORIZATION, bearer);
        request.metadata_mut().insert(wagate_proto::metadata::WORKER_ID, worker);
        Ok(())
    }

    /// The bytes of a stored file a send names (`MessageContent.media_id`),
    /// as a stream of chunks (of a session this worker runs).
    pub async fn download(
        &self,
        media_id: &str,
    ) -> Result<impl Stream<Item = Result<Bytes, MediaUploadError>> + use<>, MediaUploadError> {
        let mut request =
            tonic::Request::new(v1::DownloadRequest { media_id: media_id.to_owned(), ..Default::default() });
        self.authorize(&mut request)?;
        let mut client = MediaServiceClient::new(self.channel.clone());
        let stream = client.download(request).await?.into_inner();
        Ok(stream.filter_map(|m| async move {
            match m {
                Ok(v1::DownloadChunk { part: Some(v1::download_chunk::Part::Data(b)) }) => Some(Ok(b)),
                Ok(_) => None,
                Err(s) => Some(Err(MediaUploadError::Refused(s))),
            }
        }))
    }
}
