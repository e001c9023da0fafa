//! wagate assembled from its crates, for tests and for running it on one
//! machine: the in-process cluster (control plane replicas, edge gateway and
//! SDK workers in one process, on SQLite or PostgreSQL + Redis) that the
//! integration tests in `tests/it/` start, and the TCP proxy they cut links with.
//! The binaries: `wagate` (the all-in-one) and `wagate-bench` (the benchmark,
//! which starts the release binaries as separate processes).
//!
//! The cluster needs the SDK's test hooks and is behind the `cluster` feature,
//! which this crate's own tests turn on; the binaries are built without it.

#[cfg(feature = "cluster")]
pub mod cluster;
#[cfg(feature = "cluster")]
pub mod smtp_sink;
#[cfg(feature = "cluster")]
pub mod tcp_proxy;
