//! Fleet orchestration: moving sessions between workers without re-pairing.
//!
//! ```text
//! mover      — the one primitive: place a session on another worker with a new
//!              generation and its last auth-state snapshot (fenced, atomic)
//! failover   — a lost worker's sessions move; PENDING sends are re-dispatched
//! drain      — MAINTENANCE + move every session (start new, then stop old)
//! rebalance  — bounded moves from the busiest to the idlest workers
//! capacity   — slots, utilisation, waiting sessions, recommended workers
//! qr_timeout — unpaired sessions give their slot back after the QR timeout
//! sweeper    — periodic: place waiting sessions, retention, rebalance (lease)
//! ```

pub mod capacity;
pub mod drain;
pub mod failover;
pub mod mover;
pub(crate) mod placement;
pub mod qr_timeout;
pub mod rebalance;
pub mod sweeper;

pub use capacity::FleetStatus;
pub use mover::{MoveMode, MoveOutcome, move_session};
