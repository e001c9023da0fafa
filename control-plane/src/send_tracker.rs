//! Which outbound messages this replica has in flight, or has seen
//! acknowledged but not yet written as SENT.
//!
//! The durable side is the `message_dispatch` ledger (a row per message no
//! worker has acknowledged in the database's view); this is the in-memory
//! side that covers the gap between a worker's ack and the status writer's
//! commit. A message tracked here is never dispatched again by this replica:
//! the sweep and the failover re-dispatch skip it. Entries leave when the
//! status writer committed the message's forward move (or the dispatch ended
//! without an ack: stream lost, timeout, refused), so the map is bounded by
//! the sends in flight plus the status writer's bounded queue.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracked {
    /// Dispatched (or about to be), no answer yet.
    InFlight,
    /// Acknowledged by a worker; the SENT write is queued.
    Acked,
}

#[derive(Debug, Default)]
pub struct SendTracker {
    inner: Mutex<HashMap<String, Tracked>>,
}

impl SendTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `id` in flight; `false` if it already is (or was acked): the
    /// caller must not dispatch it.
    pub fn begin(&self, id: &str) -> bool {
        let mut map = self.lock();
        if map.contains_key(id) {
            return false;
        }
        map.insert(id.to_owned(), Tracked::InFlight);
        true
    }

    /// The worker acknowledged `id`; kept until its write is committed.
    pub fn acked(&self, id: &str) {
        self.lock().insert(id.to_owned(), Tracked::Acked);
    }

    /// The dispatch of `id` ended without an ack (or failed for good).
    pub fn release(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The status writer committed forward moves of `ids`.
    pub fn settled<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut map = self.lock();
        for id in ids {
            if map.get(id) == Some(&Tracked::Acked) {
                map.remove(id);
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<Tracked> {
        self.lock().get(id).copied()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Tracked>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acked_stays_until_settled_and_in_flight_blocks_a_second_dispatch() {
        let t = SendTracker::new();
        assert!(t.begin("a"));
        assert!(!t.begin("a"), "a second dispatch of an in-flight message is refused");
        t.settled(["a"]);
        assert_eq!(
            t.get("a"),
            Some(Tracked::InFlight),
            "an event committed before the ack keeps it in flight"
        );
        t.acked("a");
        assert!(!t.begin("a"));
        t.settled(["a"]);
        assert!(t.is_empty());
        assert!(t.begin("b"));
        t.release("b");
        assert!(!t.contains("b"));
    }
}
