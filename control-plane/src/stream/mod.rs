//! The worker stream: one bidirectional `WorkerService.Connect` per worker.
//!
//! ```text
//! connect (token, Hello, Welcome, one reader) ─┬─ registry (live streams, request-id ⇄ oneshot)
//!                                              └─ applier (in order, off the reader)
//!                                                  ├─ heartbeat
//!                                                  └─ events ── custody (auth states, AES-GCM)
//! ```
//! `input` checks what workers report like client input.

pub(crate) mod applier;
pub(crate) mod connect;
pub mod custody;
pub(crate) mod events;
pub(crate) mod heartbeat;
pub(crate) mod input;
pub(crate) mod registry;
