//! wagate's control plane: the tonic gRPC server that owns users, sessions,
//! keys, messages and the live streams of the worker fleet.
//!
//! ```text
//! server ─┬─ stream::{connect (Connect), registry, applier ── heartbeat / events / custody}
//!         ├─ send::{dispatch, tracker} ── dispatch (local stream or one hop to its replica)
//!         ├─ services::{auth, sessions, messages, …} ── fleet::placement
//!         └─ telemetry::{health, metrics} + reflection
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
pub(crate) mod dispatch;
pub mod email;
pub(crate) mod error;
pub mod fleet;
pub mod limits;
pub mod media;
pub mod persistence;
pub(crate) mod send;
pub mod server;
pub(crate) mod services;
pub mod state;
pub mod stream;
pub(crate) mod telemetry;
pub mod usage;
pub(crate) mod validation;
pub mod webhooks;

pub use config::{ControlPlaneArgs, ControlPlaneConfig};
pub use server::{ControlPlane, RunningControlPlane, StartError};
