//! The public gRPC API (what the edge and internal services call).

pub mod auth;
pub mod fleet;
pub mod messages;
pub mod sessions;
