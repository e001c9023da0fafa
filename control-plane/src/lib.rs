//! wagate's control plane: the tonic gRPC server that owns users, sessions,
//! keys, messages and the live streams of the worker fleet.
//!
//! ```text
//! server ─┬─ worker_stream (Connect) ── registry ── heartbeat / events
//!         ├─ services::{auth, sessions, messages} ── placement
//!         └─ health + reflection
//! state: persistence (sea-orm: PostgreSQL | SQLite), cache (Redis | in-process)
//! ```
//!
//! Depends on neither the edge gateway nor the worker SDK: the in-process
//! cluster, the all-in-one `wagate` binary, `wagate-bench` and the integration
//! tests are in `control-plane/testkit` (`wagate-testkit`). The `pub` modules
//! are the ones that crate and its tests use; the rest is `pub(crate)`.

pub(crate) mod audit;
pub(crate) mod auth;
pub mod bootstrap;
pub mod cache;
pub mod config;
pub(crate) mod convert;
pub mod custody;
pub(crate) mod dispatch;
pub(crate) mod error;
pub(crate) mod events;
pub mod fleet;
pub(crate) mod grpc_metrics;
pub(crate) mod health;
pub(crate) mod heartbeat;
pub(crate) mod invalidation;
pub(crate) mod key_usage;
pub mod limits;
pub mod listener;
pub(crate) mod metrics;
pub(crate) mod metrics_http;
pub mod persistence;
pub(crate) mod placement;
pub(crate) mod registry;
pub(crate) mod run_to_completion;
pub(crate) mod send_dispatch;
pub(crate) mod send_tracker;
pub mod server;
pub(crate) mod services;
pub mod state;
pub(crate) mod stream_applier;
pub mod usage;
pub(crate) mod validation;
pub mod webhooks;
pub(crate) mod worker_input;
pub(crate) mod worker_stream;

pub use config::{ControlPlaneArgs, ControlPlaneConfig};
pub use server::{ControlPlane, RunningControlPlane, StartError};
