//! The REST API, one module per resource: each holds its handlers, each
//! handler declared once with its OpenAPI entry (`#[utoipa::path]`) right
//! above it, and the request/response bodies of that resource.
//!
//! A handler reads its input through extractors ([`crate::params::Query`],
//! [`crate::params::PathIds`], [`crate::json::Json`]), checks the caller
//! sent a credential, makes one gRPC call with [`CallContext::unary`] and
//! maps the reply to its REST shape. [`crate::app`] mounts every module's
//! [`OpenApiRouter`] under `/api/v1` (and the `/api` alias).

pub(crate) mod account;
pub(crate) mod analytics;
pub(crate) mod auth;
pub(crate) mod docs;
pub(crate) mod emails;
pub(crate) mod events;
pub(crate) mod fleet;
pub(crate) mod groups;
pub(crate) mod health;
pub(crate) mod history;
pub(crate) mod keys;
pub(crate) mod logs;
pub(crate) mod media;
pub(crate) mod messages;
pub(crate) mod send_form;
pub(crate) mod sessions;
pub(crate) mod usage;
pub(crate) mod users;
pub(crate) mod webhooks;
pub(crate) mod workers;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;
use wagate_proto::error::{ApiError, ErrorCode};

pub(crate) use crate::envelope::{Answer, Reply};
pub(crate) use crate::grpc::CallContext;
pub(crate) use crate::state::AppState;

/// A reply that lacks a required message (a control plane bug).
pub(crate) fn incomplete_reply(method: &'static str) -> ApiError {
    tracing::error!(method, "control plane reply is missing a required field");
    ApiError::new(ErrorCode::Internal, "internal server error")
}

/// The routes under `/api/v1` (also served under `/api`); the health routes
/// live at the root ([`health::router`]).
pub(crate) fn api() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(account::router())
        .merge(sessions::router())
        .merge(events::router())
        .merge(groups::router())
        .merge(messages::router())
        .merge(keys::router())
        .merge(webhooks::router())
        .merge(history::router())
        .merge(users::router())
        .merge(workers::router())
        .merge(fleet::router())
        .merge(analytics::router())
        .merge(logs::router())
        .merge(emails::router())
        .merge(usage::router())
        .merge(media::router())
}
