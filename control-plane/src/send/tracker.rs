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
//!
//! An entry is only ever begun as an [`InFlight`] guard: however the
//! dispatch ends (answer, error, a panic, or the future being dropped), the
//! guard's `Drop` releases the entry unless the dispatch recorded an ack,
//! so no entry can outlive its dispatch and hide a message from the sweep.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

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

/// The status writer lets written messages go from the tracker.
impl crate::persistence::status_writer::Written for SendTracker {
    fn written(&self, ids: &mut dyn Iterator<Item = &str>) {
        self.settled(ids);
    }
}

impl SendTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `id` in flight; `None` if it already is (or was acked): the
    /// caller must not dispatch it. Dropping the guard ends the entry.
    pub fn begin(self: &Arc<Self>, id: &str) -> Option<InFlight> {
        let mut map = self.lock();
        if map.contains_key(id) {
            return None;
        }
        map.insert(id.to_owned(), Tracked::InFlight);
        Some(InFlight { tracker: self.clone(), id: id.to_owned(), acked: false })
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

/// One dispatch of a message, begun by [`SendTracker::begin`]. Dropped
/// without [`InFlight::acked`], it releases the entry (the dispatch ended
/// without an ack: refused, timed out, stream lost, or abandoned).
#[derive(Debug)]
#[must_use = "dropping the guard ends the dispatch's entry at once"]
pub struct InFlight {
    tracker: Arc<SendTracker>,
    id: String,
    acked: bool,
}

impl InFlight {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The worker acknowledged the send: the entry stays (as acked) until
    /// the status writer commits its SENT.
    pub fn acked(mut self) {
        self.acked = true;
        self.tracker.lock().insert(std::mem::take(&mut self.id), Tracked::Acked);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.acked {
            self.tracker.lock().remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(t: &SendTracker, id: &str) -> Option<Tracked> {
        t.lock().get(id).copied()
    }

    #[test]
    fn acked_stays_until_settled_and_in_flight_blocks_a_second_dispatch() {
        let t = Arc::new(SendTracker::new());
        let a = t.begin("a").expect("first dispatch");
        assert!(t.begin("a").is_none(), "a second dispatch of an in-flight message is refused");
        t.settled(["a"]);
        assert_eq!(
            get(&t, "a"),
            Some(Tracked::InFlight),
            "an event committed before the ack keeps it in flight"
        );
        a.acked();
        assert_eq!(get(&t, "a"), Some(Tracked::Acked), "an ack outlives its guard");
        assert!(t.begin("a").is_none());
        t.settled(["a"]);
        assert!(t.is_empty());
        let b = t.begin("b").expect("b");
        drop(b);
        assert!(!t.contains("b"), "a dispatch that ends without an ack releases its entry");
    }

    #[tokio::test]
    async fn an_abandoned_dispatch_releases_its_entry() {
        let t = Arc::new(SendTracker::new());
        let guard = t.begin("c").expect("c");
        // The future owning the guard is dropped at an await (a client that
        // went away): the entry must not stay behind.
        let fut = async move {
            let _g = guard;
            std::future::pending::<()>().await;
        };
        let _ = tokio::time::timeout(std::time::Duration::from_millis(5), fut).await;
        assert!(t.is_empty());
    }
}
