//! wagate's control plane: the tonic gRPC server that owns users, sessions,
//! keys, messages and the live streams of the worker fleet.
//!
//! ```text
//! server ─┬─ worker_stream (Connect) ── registry ── heartbeat / events
//!         ├─ services::{auth, sessions, messages} ── placement
//!         └─ health + reflection
//! state: persistence (sea-orm: PostgreSQL | SQLite), cache (Redis | in-process)
//! ```

pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod convert;
pub mod custody;
pub mod dispatch;
pub mod error;
pub mod events;
pub mod fleet;
pub mod grpc_metrics;
pub mod health;
pub mod heartbeat;
pub mod invalidation;
pub mod key_usage;
pub mod limits;
pub mod metrics;
pub mod metrics_http;
pub mod persistence;
pub mod placement;
pub mod registry;
pub mod send_dispatch;
pub mod send_tracker;
pub mod server;
pub mod services;
pub mod state;
pub mod tcp_proxy;
pub mod usage;
pub mod validation;
pub mod webhooks;
pub mod worker_stream;

pub use config::{ControlPlaneArgs, ControlPlaneConfig};
pub use server::{ControlPlane, RunningControlPlane, StartError};
