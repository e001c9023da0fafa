//! One error code type for all of wagate.
//!
//! The control plane turns its module errors into an [`ErrorCode`] plus a
//! message and sends it as a gRPC status with the code in the
//! `x-wagate-code` metadata entry; the edge gateway reads it back with
//! [`ApiError::from_status`] and answers with the HTTP status and the JSON
//! envelope `{"success":false,"error":"…","code":"…"}`.

use std::fmt;
use std::str::FromStr;

use crate::metadata;

macro_rules! error_codes {
    ($( $variant:ident => $name:literal, $grpc:ident, $http:literal; )*) => {
        /// Machine-readable error codes of the API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $variant, )*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$( ErrorCode::$variant, )*];

            /// The code as it appears in the envelope's `code` field.
            pub const fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $name, )* }
            }

            /// The gRPC status code for this error.
            pub const fn grpc_code(self) -> tonic::Code {
                match self { $( ErrorCode::$variant => tonic::Code::$grpc, )* }
            }

            /// The HTTP status for this error on the REST face.
            pub const fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $http, )* }
            }
        }

        impl FromStr for ErrorCode {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $( $name => Ok(ErrorCode::$variant), )* _ => Err(()) }
            }
        }
    };
}

error_codes! {
    ValidationError => "VALIDATION_ERROR", InvalidArgument, 400;
    InvalidJson => "INVALID_JSON", InvalidArgument, 400;
    Unauthenticated => "UNAUTHENTICATED", Unauthenticated, 401;
    InvalidCredentials => "INVALID_CREDENTIALS", Unauthenticated, 401;
    InvalidToken => "INVALID_TOKEN", Unauthenticated, 401;
    InvalidApiKey => "INVALID_API_KEY", Unauthenticated, 401;
    Forbidden => "FORBIDDEN", PermissionDenied, 403;
    TierLimitExceeded => "TIER_LIMIT_EXCEEDED", PermissionDenied, 403;
    EmailNotVerified => "EMAIL_NOT_VERIFIED", PermissionDenied, 403;
    NotFound => "NOT_FOUND", NotFound, 404;
    SessionNotFound => "SESSION_NOT_FOUND", NotFound, 404;
    MethodNotAllowed => "METHOD_NOT_ALLOWED", Unimplemented, 405;
    AlreadyExists => "ALREADY_EXISTS", AlreadyExists, 409;
    SessionNotConnected => "SESSION_NOT_CONNECTED", FailedPrecondition, 409;
    WorkerHasSessions => "WORKER_HAS_SESSIONS", FailedPrecondition, 409;
    MessageNotSent => "MESSAGE_NOT_SENT", FailedPrecondition, 409;
    MessageNotEditable => "MESSAGE_NOT_EDITABLE", FailedPrecondition, 409;
    WebhookNotConfigured => "WEBHOOK_NOT_CONFIGURED", FailedPrecondition, 409;
    PayloadTooLarge => "PAYLOAD_TOO_LARGE", InvalidArgument, 413;
    UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE", InvalidArgument, 415;
    RangeNotSatisfiable => "RANGE_NOT_SATISFIABLE", OutOfRange, 416;
    RateLimited => "RATE_LIMITED", ResourceExhausted, 429;
    Internal => "INTERNAL_ERROR", Internal, 500;
    WorkerError => "WORKER_ERROR", Aborted, 502;
    NotSupportedByWorker => "NOT_SUPPORTED_BY_WORKER", Unimplemented, 501;
    NoAvailableWorkers => "NO_AVAILABLE_WORKERS", Unavailable, 503;
    WorkerBusy => "WORKER_BUSY", Unavailable, 503;
    WorkerUnavailable => "WORKER_UNAVAILABLE", Unavailable, 503;
    ShuttingDown => "SHUTTING_DOWN", Unavailable, 503;
    Unavailable => "UNAVAILABLE", Unavailable, 503;
    DeadlineExceeded => "DEADLINE_EXCEEDED", DeadlineExceeded, 504;
}

impl ErrorCode {
    /// Fallback when a status carries no `x-wagate-code`.
    ///
    /// The control plane tags every error its handlers return, so an
    /// untagged status came from somewhere else: tonic or h2 (decode and
    /// size limits, load shedding, an unknown method during a rolling
    /// upgrade), a proxy on the way, or a bug. None of these says anything
    /// about the caller's request, so an untagged status never becomes a
    /// domain code (no 400, 401, 404 or 409 the caller would act on), only
    /// one of three server-side answers:
    ///
    /// | gRPC code | code | HTTP |
    /// | --- | --- | --- |
    /// | `UNAVAILABLE`, `RESOURCE_EXHAUSTED` (tonic's load shedding, h2's `ENHANCE_YOUR_CALM`), `CANCELLED` (the server or a proxy dropped the call) | `UNAVAILABLE` | 503 + `Retry-After` |
    /// | `DEADLINE_EXCEEDED` | `DEADLINE_EXCEEDED` | 504 |
    /// | everything else, `INVALID_ARGUMENT` included (a request the edge built was refused: the edge's fault, not the caller's), `UNIMPLEMENTED` (version skew), `OK` on an error | `INTERNAL_ERROR` | 500 |
    ///
    /// (The edge reads tonic's own client-side deadline, reported as
    /// `CANCELLED`, as a 504 before it gets here.)
    pub const fn from_grpc_code(code: tonic::Code) -> ErrorCode {
        use tonic::Code;
        match code {
            Code::Unavailable | Code::ResourceExhausted | Code::Cancelled => ErrorCode::Unavailable,
            Code::DeadlineExceeded => ErrorCode::DeadlineExceeded,
            Code::Ok
            | Code::Unknown
            | Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::Internal
            | Code::DataLoss
            | Code::Unauthenticated => ErrorCode::Internal,
        }
    }
}

/// `Retry-After` of an untagged UNAVAILABLE that names none (as the edge
/// answers when it cannot reach the control plane).
pub const UNTAGGED_RETRY_AFTER_SECS: u64 = 1;

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API error: a code, a human message, and optionally the field it is
/// about and a retry hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    pub retry_after_secs: Option<u64>,
    /// The limit that refused (or counted) the call, for `RateLimit-*`.
    pub rate_limit: Option<crate::ratelimit::RateLimitInfo>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), field: None, retry_after_secs: None, rate_limit: None }
    }

    /// A validation error about one request field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: Some(field.into()), ..Self::new(ErrorCode::ValidationError, message) }
    }

    /// Appends context to the message.
    pub fn with_message_suffix(mut self, suffix: &str) -> Self {
        self.message.push_str(suffix);
        self
    }

    pub fn with_rate_limit(mut self, info: crate::ratelimit::RateLimitInfo) -> Self {
        self.rate_limit = Some(info);
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The gRPC status carrying this error (code in metadata).
    pub fn to_status(&self) -> tonic::Status {
        let mut status = tonic::Status::new(self.code.grpc_code(), self.message.clone());
        let md = status.metadata_mut();
        md.insert(metadata::ERROR_CODE, tonic::metadata::MetadataValue::from_static(self.code.as_str()));
        if let Some(field) = &self.field
            && let Ok(v) = field.parse()
        {
            md.insert(metadata::ERROR_FIELD, v);
        }
        if let Some(secs) = self.retry_after_secs {
            md.insert(metadata::RETRY_AFTER, secs.into());
        }
        if let Some(info) = &self.rate_limit {
            info.write(md);
        }
        status
    }

    /// Reads an error back from a gRPC status. A status without our code
    /// tag maps by [`ErrorCode::from_grpc_code`] and gets that code's generic
    /// message (its own text may name hosts or internals); an untagged 503
    /// gets a `Retry-After` of [`UNTAGGED_RETRY_AFTER_SECS`] when it has none.
    pub fn from_status(status: &tonic::Status) -> Self {
        let md = status.metadata();
        let tagged: Option<ErrorCode> =
            md.get(metadata::ERROR_CODE).and_then(|v| v.to_str().ok()).and_then(|s| s.parse().ok());
        let code = tagged.unwrap_or_else(|| ErrorCode::from_grpc_code(status.code()));
        let field = md.get(metadata::ERROR_FIELD).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut retry_after_secs =
            md.get(metadata::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|s| s.parse().ok());
        if tagged.is_none() && code == ErrorCode::Unavailable {
            retry_after_secs = retry_after_secs.or(Some(UNTAGGED_RETRY_AFTER_SECS));
        }
        let message = if status.message().is_empty() || tagged.is_none() {
            code.as_str().to_lowercase().replace('_', " ")
        } else {
            status.message().to_owned()
        };
        let rate_limit = crate::ratelimit::RateLimitInfo::read(md);
        Self { code, message, field, retry_after_secs, rate_limit }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        e.to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trip_keeps_code_field_and_retry() {
        for &code in ErrorCode::ALL {
            let err = ApiError {
                field: Some("to".into()),
                retry_after_secs: Some(3),
                rate_limit: Some(crate::ratelimit::RateLimitInfo { limit: 100, remaining: 0, reset_secs: 9 }),
                ..ApiError::new(code, "boom")
            };
            let back = ApiError::from_status(&err.to_status());
            assert_eq!(back, err, "{code}");
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(code));
        }
    }

    /// Every gRPC code without our tag: only 500, 503 (with Retry-After) or
    /// 504, never a domain code, and never the status's own text.
    #[test]
    fn untagged_status_maps_only_to_server_side_codes() {
        use tonic::Code;
        let expected = |code: Code| match code {
            Code::Unavailable | Code::ResourceExhausted | Code::Cancelled => (ErrorCode::Unavailable, 503),
            Code::DeadlineExceeded => (ErrorCode::DeadlineExceeded, 504),
            _ => (ErrorCode::Internal, 500),
        };
        let all = [
            Code::Ok,
            Code::Cancelled,
            Code::Unknown,
            Code::InvalidArgument,
            Code::DeadlineExceeded,
            Code::NotFound,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::ResourceExhausted,
            Code::FailedPrecondition,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unimplemented,
            Code::Internal,
            Code::Unavailable,
            Code::DataLoss,
            Code::Unauthenticated,
        ];
        // every code, the ones tonic may add later included
        assert_eq!(all.len(), (0..=16).count());
        for (i, &code) in all.iter().enumerate() {
            assert_eq!(Code::from_i32(i as i32), code);
            let (want, http) = expected(code);
            let e = ApiError::from_status(&tonic::Status::new(code, "tcp connect error: 10.0.0.3:50051"));
            assert_eq!((e.code, e.code.http_status()), (want, http), "{code:?}");
            assert_eq!(ErrorCode::from_grpc_code(code), want, "{code:?}");
            assert!(!e.message.contains("10.0.0.3"), "{code:?}: {}", e.message);
            assert_eq!(e.retry_after_secs, (http == 503).then_some(UNTAGGED_RETRY_AFTER_SECS), "{code:?}");
            assert_eq!(e.field, None);
        }
        // A Retry-After the status names is kept.
        let mut s = tonic::Status::unavailable("busy");
        s.metadata_mut().insert(metadata::RETRY_AFTER, 7.into());
        assert_eq!(ApiError::from_status(&s).retry_after_secs, Some(7));
        // A tagged status keeps its code and message, whatever its gRPC code.
        let tagged = ApiError::new(ErrorCode::SessionNotConnected, "session is not connected").to_status();
        let back = ApiError::from_status(&tagged);
        assert_eq!((back.code.http_status(), back.message.as_str()), (409, "session is not connected"));
        // An unknown tag is no tag.
        let mut s = tonic::Status::failed_precondition("x");
        s.metadata_mut().insert(metadata::ERROR_CODE, "NOT_A_CODE".parse().expect("ascii"));
        assert_eq!(ApiError::from_status(&s).code, ErrorCode::Internal);
    }
}
