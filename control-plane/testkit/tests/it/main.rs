//! The integration tests of the assembled system, in one test binary (like
//! quickwit's `quickwit-integration-tests`): the stack is compiled and linked
//! once, not once per area. One module per area; helpers in `common`.
//!
//! Every test runs in this one process, as many at a time as there are
//! cores by default, so nothing may rely on being alone in it: each cluster
//! gets its own SQLite file, PostgreSQL database and Redis prefix, and a
//! test that reads `/metrics` (one Prometheus recorder per process, shared
//! by all) compares a scrape taken before what it does with one after
//! (`common::scrape`, `common::sample_sum`), never absolute values.
//!
//! `cargo test -p wagate-testkit --test it` runs them all;
//! `cargo test -p wagate-testkit --test it -- webhooks::` one area.

mod common;

mod api;
mod backup;
mod bad_input;
mod capacity;
mod commands;
mod connections;
mod credentials;
mod e2e;
mod email;
mod failover;
mod hostile_input;
mod lifecycle;
mod limits;
mod live_events;
mod media;
mod messaging;
mod observability;
mod placement;
mod readiness;
mod replicas;
mod send_pipeline;
mod session_keys;
mod sessions;
mod tls;
mod usage;
mod webhooks;
mod whatsapp;
mod worker_removal;
mod worker_trust;
mod workers;
