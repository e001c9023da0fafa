//! The crate a wagate worker links.
//!
//! A worker process runs WhatsApp sessions; the control plane decides which
//! worker runs which session. This crate keeps the one bidirectional gRPC
//! stream between the two (`WorkerService.Connect`):
//!
//! - [`Worker::spawn`] connects, sends `Hello` (with the sessions the worker
//!   still holds), waits for `Welcome`, sends heartbeats with real process
//!   metrics ([`heartbeat`]) and reconnects with exponential backoff and full
//!   jitter ([`backoff`]) when the stream is lost ([`connection`]);
//! - every `Command` from the control plane runs concurrently (bounded) on the
//!   worker's [`SessionDriver`] and is answered by exactly one `CommandResult`;
//! - a repeated `SendMessage` (the control plane delivers at least once) is
//!   answered from a bounded window of sent message ids without calling the
//!   driver ([`dedup`]), so a message goes out once;
//! - the driver reports what happens to its sessions through an [`EventSink`]:
//!   a bounded queue that survives reconnects ([`events`]);
//! - [`simulated::SimulatedDriver`] is a cheap in-memory driver for
//!   development, tests and benchmarks, used by the reference worker binary
//!   `wagate-worker`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use wagate_worker_sdk::{Worker, WorkerConfig, simulated::{SimulatedConfig, SimulatedDriver}};
//!
//! # async fn run() {
//! let config = WorkerConfig::new("http://127.0.0.1:50051", "dev-worker-token", "worker-1");
//! let driver = SimulatedDriver::new(SimulatedConfig::default());
//! let handle = Worker::spawn(config, driver);
//! handle.wait_connected(std::time::Duration::from_secs(5)).await;
//! // ...
//! handle.shutdown().await;
//! # }
//! ```

pub mod backoff;
pub mod config;
pub mod connection;
pub mod dedup;
pub mod driver;
pub mod events;
pub mod heartbeat;
pub mod media;
pub mod simulated;

pub use config::WorkerConfig;
pub use connection::{ConnectionState, Worker, WorkerHandle};
pub use driver::{DriverError, SessionDriver};
pub use events::{EmitError, EventSink};
pub use wagate_proto::v1;
