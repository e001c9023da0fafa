//! Media (issue 24): files uploaded to be sent and files customers sent,
//! streamed into one store and served back.
//!
//! `kinds` the per-kind limits and type sniffing; `store` the object store
//! (local folder or S3-compatible bucket) and the streaming ingest
//! (sha256 while writing, content-addressed per account); `links` the
//! signed, expiring download links; `service` the gRPC `MediaService`;
//! `retention` the sweep of expired media.

pub mod kinds;
pub mod links;
pub mod retention;
pub mod service;
pub mod store;

use std::time::Duration;

use wagate_proto::error::{ApiError, ErrorCode};

use crate::error::CpError;

/// Media settings (`WAGATE_MEDIA_*`).
#[derive(clap::Args, Debug, Clone)]
pub struct MediaArgs {
    /// Where media is stored: a folder (default `data/media`, also
    /// `file:///abs/path`) or `s3://bucket/prefix` (credentials, region and
    /// endpoint from the usual `AWS_*` variables: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`).
    #[arg(long, env = "WAGATE_MEDIA_URL", default_value = "data/media")]
    pub media_url: String,
    /// Days a stored file is kept (then deleted by the retention sweep).
    #[arg(long, env = "WAGATE_MEDIA_RETENTION_DAYS", default_value_t = 30)]
    pub media_retention_days: u32,
    /// Lifetime of the signed download links handed out, in seconds.
    #[arg(long, env = "WAGATE_MEDIA_LINK_TTL_SECS", default_value_t = 3600)]
    pub media_link_ttl_secs: u64,
    /// Secret of the signed links (HMAC-SHA256); derived from `JWT_SECRET` when unset.
    #[arg(long, env = "WAGATE_MEDIA_LINK_SECRET", hide_env_values = true)]
    pub media_link_secret: Option<String>,
    /// Size limit of an image (JPEG, PNG), bytes.
    #[arg(long, env = "WAGATE_MEDIA_MAX_IMAGE_BYTES", default_value_t = 5 * 1024 * 1024)]
    pub media_max_image_bytes: u64,
    /// Size limit of an audio file, bytes.
    #[arg(long, env = "WAGATE_MEDIA_MAX_AUDIO_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub media_max_audio_bytes: u64,
    /// Size limit of a video, bytes.
    #[arg(long, env = "WAGATE_MEDIA_MAX_VIDEO_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub media_max_video_bytes: u64,
    /// Size limit of a document, bytes.
    #[arg(long, env = "WAGATE_MEDIA_MAX_DOCUMENT_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub media_max_document_bytes: u64,
    /// Size limit of a sticker (WebP), bytes.
    #[arg(long, env = "WAGATE_MEDIA_MAX_STICKER_BYTES", default_value_t = 500 * 1024)]
    pub media_max_sticker_bytes: u64,
}

/// Explicit S3 settings, over the `AWS_*` environment (the tests use them:
/// they cannot set environment variables).
#[derive(Debug, Clone, Default)]
pub struct S3Overrides {
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub region: Option<String>,
    pub allow_http: bool,
}

/// Resolved media settings.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    pub url: String,
    pub s3: S3Overrides,
    pub retention: Duration,
    pub link_ttl: Duration,
    /// `None`: derived from the JWT secret at start.
    pub link_secret: Option<String>,
    pub limits: kinds::Limits,
}

impl MediaArgs {
    pub fn into_settings(self) -> MediaSettings {
        MediaSettings {
            url: self.media_url,
            s3: S3Overrides::default(),
            retention: Duration::from_secs(u64::from(self.media_retention_days.max(1)) * 86_400),
            link_ttl: Duration::from_secs(self.media_link_ttl_secs.clamp(1, 7 * 86_400)),
            link_secret: self.media_link_secret.filter(|s| !s.is_empty()),
            limits: kinds::Limits {
                image: self.media_max_image_bytes,
                audio: self.media_max_audio_bytes,
                video: self.media_max_video_bytes,
                document: self.media_max_document_bytes,
                sticker: self.media_max_sticker_bytes,
            },
        }
    }
}

impl MediaSettings {
    /// A local folder with the default limits (tests, the all-in-one).
    pub fn local(dir: impl Into<String>) -> Self {
        let defaults = MediaArgs {
            media_url: dir.into(),
            media_retention_days: 30,
            media_link_ttl_secs: 3600,
            media_link_secret: None,
            media_max_image_bytes: 5 * 1024 * 1024,
            media_max_audio_bytes: 16 * 1024 * 1024,
            media_max_video_bytes: 16 * 1024 * 1024,
            media_max_document_bytes: 100 * 1024 * 1024,
            media_max_sticker_bytes: 500 * 1024,
        };
        defaults.into_settings()
    }
}

/// What can go wrong with media.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
    #[error("media not found")]
    NotFound,
    #[error("the link is expired or its signature is wrong")]
    BadLink,
    #[error("range not satisfiable: the media has {0} bytes")]
    Range(u64),
    /// The store did not answer or failed: a dependency failure.
    #[error("media store: {0}")]
    Store(#[from] object_store::Error),
    #[error("media store configuration: {0}")]
    Config(String),
}

impl From<MediaError> for CpError {
    fn from(e: MediaError) -> Self {
        let api = match e {
            MediaError::TooLarge(m) => ApiError::new(ErrorCode::PayloadTooLarge, m),
            MediaError::Unsupported(m) => ApiError::new(ErrorCode::UnsupportedMediaType, m),
            MediaError::Invalid(m) => ApiError::invalid("file", m),
            MediaError::NotFound => ApiError::new(ErrorCode::NotFound, "media not found"),
            MediaError::BadLink => {
                ApiError::new(ErrorCode::Forbidden, "the link is expired or its signature is wrong")
            }
            MediaError::Range(size) => ApiError::new(
                ErrorCode::RangeNotSatisfiable,
                format!("range not satisfiable: the media has {size} bytes"),
            ),
            MediaError::Store(err) => {
                tracing::warn!(error = %err, "media store failed");
                metrics::counter!("wagate_media_store_errors_total").increment(1);
                ApiError::new(ErrorCode::Unavailable, "media store unavailable, retry shortly")
                    .with_retry_after(2)
            }
            MediaError::Config(m) => {
                tracing::error!(error = m, "media store misconfigured");
                ApiError::new(ErrorCode::Unavailable, "media store unavailable").with_retry_after(5)
            }
        };
        CpError::Api(api)
    }
}
