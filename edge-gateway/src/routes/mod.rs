//! Handlers: each reads and checks its input, makes one gRPC call with the
//! forwarded metadata, and maps the reply to the REST shape.

pub(crate) mod account;
pub(crate) mod admin;
pub(crate) mod auth;
pub(crate) mod docs;
pub(crate) mod fleet;
pub(crate) mod health;
pub(crate) mod history;
pub(crate) mod keys;
pub(crate) mod messages;
pub(crate) mod sessions;
pub(crate) mod webhooks;

use wagate_proto::error::{ApiError, ErrorCode};

/// A reply that lacks a required message (a control plane bug).
pub(crate) fn incomplete_reply(method: &'static str) -> ApiError {
    tracing::error!(method, "control plane reply is missing a required field");
    ApiError::new(ErrorCode::Internal, "internal server error")
}
