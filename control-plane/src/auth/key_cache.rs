//! A small in-memory cache of API-key lookups (key hash → the session the
//! key unlocks), so a send does not read the database to authenticate.
//!
//! Entries live for a short TTL. Anything that changes what a key unlocks
//! (session deleted or its status / worker / generation changed, key
//! rotated or revoked, user deactivated) must call [`KeyCache::invalidate_session`]
//! or [`KeyCache::invalidate_all`]; the TTL only bounds staleness for
//! writers on other replicas until cross-replica invalidation exists.
//!
//! Lookups racing an invalidation cannot re-insert stale data: a lookup
//! takes a [`Ticket`] (the invalidation epoch) *before* reading the database
//! and its result is only cached if no invalidation happened since.
//!
//! Invalidating a session is O(that session's cached keys) — usually one —
//! through a session → key-hashes index, not a scan of the cache: it runs on
//! every QR and status event, under the write lock every send's lookup waits on.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use crate::persistence::api_keys::KeyEntry;

/// Proof of the epoch before a database read; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

#[derive(Debug)]
pub struct KeyCache {
    ttl: Duration,
    capacity: usize,
    epoch: AtomicU64,
    map: RwLock<Entries>,
}

/// The cached entries, and which key hashes each session's entries are
/// under (so a session is forgotten in O(its keys), not O(the cache)).
#[derive(Debug, Default)]
struct Entries {
    by_key: HashMap<String, (KeyEntry, Instant)>,
    /// session id → key hashes cached for it (a session has one key; a
    /// rotation while an old entry lives makes two for a moment).
    by_session: HashMap<String, Vec<String>>,
}

impl Entries {
    fn insert(&mut self, key_hash: String, entry: KeyEntry) {
        let session_id = entry.session_id.clone();
        if let Some((old, _)) = self.by_key.insert(key_hash.clone(), (entry, Instant::now())) {
            if old.session_id == session_id {
                return;
            }
            self.unindex(&old.session_id, &key_hash);
        }
        self.by_session.entry(session_id).or_default().push(key_hash);
    }

    fn unindex(&mut self, session_id: &str, key_hash: &str) {
        if let Some(hashes) = self.by_session.get_mut(session_id) {
            hashes.retain(|h| h != key_hash);
            if hashes.is_empty() {
                self.by_session.remove(session_id);
            }
        }
    }

    fn remove_session(&mut self, session_id: &str) {
        for hash in self.by_session.remove(session_id).unwrap_or_default() {
            self.by_key.remove(&hash);
        }
    }

    /// Drops expired entries (O(n): only when the cache is full).
    fn sweep(&mut self, ttl: Duration) {
        self.by_key.retain(|_, (_, at)| at.elapsed() < ttl);
        let by_key = &self.by_key;
        self.by_session.retain(|_, hashes| {
            hashes.retain(|h| by_key.contains_key(h));
            !hashes.is_empty()
        });
    }

    fn clear(&mut self) {
        self.by_key.clear();
        self.by_session.clear();
    }
}

impl KeyCache {
    /// A cache keeping entries for `ttl` (zero disables it) and at most
    /// `capacity` of them.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            epoch: AtomicU64::new(0),
            map: RwLock::new(Entries::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// A fresh entry for `key_hash`, if any.
    pub fn get(&self, key_hash: &str) -> Option<KeyEntry> {
        if !self.enabled() {
            return None;
        }
        let map = self.map.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.by_key.get(key_hash).filter(|(_, at)| at.elapsed() < self.ttl).map(|(e, _)| e.clone())
    }

    /// Take before reading the database; pass to [`KeyCache::insert`].
    pub fn ticket(&self) -> Ticket {
        Ticket(self.epoch.load(Ordering::Acquire))
    }

    /// Caches `entry` unless an invalidation happened since `ticket`.
    pub fn insert(&self, ticket: Ticket, key_hash: String, entry: KeyEntry) {
        if !self.enabled() {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Checked under the write lock: invalidations bump the epoch under it too.
        if self.epoch.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if map.by_key.len() >= self.capacity && !map.by_key.contains_key(&key_hash) {
            map.sweep(self.ttl);
            if map.by_key.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(key_hash, entry);
    }

    /// Forgets every key of `session_id` (deleted, status or placement
    /// changed, key rotated or revoked): O(that session's keys), whatever
    /// the size of the cache.
    pub fn invalidate_session(&self, session_id: &str) {
        let mut map = self.map.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        map.remove_session(session_id);
    }

    /// Forgets everything (e.g. a user deactivated: all their sessions).
    pub fn invalidate_all(&self) {
        let mut map = self.map.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(std::sync::PoisonError::into_inner).by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sessions with at least one cached key (tests: the index stays in step).
    #[cfg(test)]
    fn indexed_sessions(&self) -> usize {
        self.map.read().unwrap_or_else(std::sync::PoisonError::into_inner).by_session.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::enums::SessionStatus;

    fn entry(session: &str) -> KeyEntry {
        KeyEntry {
            key_id: "k".into(),
            key_active: true,
            user_active: true,
            expires_at: None,
            session_id: session.into(),
            status: SessionStatus::Connected,
            worker_id: Some("w1".into()),
            generation: 1,
            user_id: "u".into(),
            tier: crate::persistence::enums::UserTier::Basic,
            message_quota: None,
        }
    }

    #[test]
    fn hit_then_invalidate_session() {
        let c = KeyCache::new(Duration::from_secs(10), 100);
        c.insert(c.ticket(), "h1".into(), entry("s1"));
        c.insert(c.ticket(), "h2".into(), entry("s2"));
        assert_eq!(c.get("h1"), Some(entry("s1")));
        c.invalidate_session("s1");
        assert_eq!(c.get("h1"), None);
        assert!(c.get("h2").is_some());
        c.invalidate_all();
        assert!(c.is_empty());
    }

    #[test]
    fn the_session_index_follows_inserts_moves_and_sweeps() {
        let c = KeyCache::new(Duration::from_secs(10), 100);
        // two keys of one session (a rotation while the old entry lives)
        c.insert(c.ticket(), "old".into(), entry("s1"));
        c.insert(c.ticket(), "new".into(), entry("s1"));
        c.insert(c.ticket(), "other".into(), entry("s2"));
        // the same hash cached again, now for another session
        c.insert(c.ticket(), "moved".into(), entry("s2"));
        c.insert(c.ticket(), "moved".into(), entry("s3"));
        assert_eq!(c.indexed_sessions(), 3);
        c.invalidate_session("s1");
        assert_eq!((c.get("old"), c.get("new")), (None, None));
        assert_eq!(c.get("other"), Some(entry("s2")));
        // invalidating the session the hash left does not touch it
        c.invalidate_session("s2");
        assert_eq!(c.get("moved"), Some(entry("s3")));
        assert_eq!(c.get("other"), None);
        c.invalidate_session("s3");
        assert!(c.is_empty());
        assert_eq!(c.indexed_sessions(), 0, "no index entry outlives its keys");
        c.invalidate_session("never-cached");
    }

    #[test]
    fn a_full_cache_sweeps_the_index_too() {
        let c = KeyCache::new(Duration::from_millis(20), 2);
        c.insert(c.ticket(), "h1".into(), entry("s1"));
        c.insert(c.ticket(), "h2".into(), entry("s2"));
        std::thread::sleep(Duration::from_millis(30));
        c.insert(c.ticket(), "h3".into(), entry("s3"));
        assert_eq!((c.len(), c.indexed_sessions()), (1, 1));
        c.invalidate_session("s3");
        assert!(c.is_empty());
    }

    #[test]
    fn lookup_racing_an_invalidation_is_not_cached() {
        let c = KeyCache::new(Duration::from_secs(10), 100);
        let ticket = c.ticket();
        // ... database read happens here, session deleted meanwhile:
        c.invalidate_session("s1");
        c.insert(ticket, "h1".into(), entry("s1"));
        assert_eq!(c.get("h1"), None);
    }

    #[test]
    fn ttl_expiry_and_disabled_cache() {
        let c = KeyCache::new(Duration::from_millis(1), 100);
        c.insert(c.ticket(), "h1".into(), entry("s1"));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.get("h1"), None);
        let off = KeyCache::new(Duration::ZERO, 100);
        off.insert(off.ticket(), "h1".into(), entry("s1"));
        assert_eq!(off.get("h1"), None);
    }

    #[test]
    fn capacity_is_bounded() {
        let c = KeyCache::new(Duration::from_secs(10), 2);
        for i in 0..5 {
            c.insert(c.ticket(), format!("h{i}"), entry("s"));
        }
        assert!(c.len() <= 2);
    }

    /// Figures for the report (`cargo test -p wagate-control-plane --lib
    /// invalidation_time -- --ignored --nocapture`): the time of one
    /// invalidation with 100,000 cached keys (one per session).
    #[test]
    #[ignore]
    fn invalidation_time_with_100k_entries() {
        const N: usize = 100_000;
        const ROUNDS: usize = 1_000;
        let c = KeyCache::new(Duration::from_secs(600), N + 1);
        for i in 0..N {
            c.insert(c.ticket(), format!("hash-{i}"), entry(&format!("s{i}")));
        }
        assert_eq!(c.len(), N);
        let started = Instant::now();
        for i in 0..ROUNDS {
            // a QR or status event of a session whose key is cached
            c.invalidate_session(&format!("s{}", i * (N / ROUNDS)));
        }
        let per = started.elapsed() / u32::try_from(ROUNDS).unwrap_or(1);
        println!("invalidate_session with {N} entries: {per:?} per call ({ROUNDS} calls)");
        assert_eq!(c.len(), N - ROUNDS);
        assert_eq!(c.get("hash-1"), Some(entry("s1")));
        assert_eq!(c.get("hash-0"), None);
    }
}
