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

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::persistence::enums::SessionStatus;

/// What a key lookup found (before the active / expiry checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub key_id: String,
    pub key_active: bool,
    pub user_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub session_id: String,
    pub status: SessionStatus,
    pub worker_id: Option<String>,
    pub generation: i64,
    /// The session owner (the message quota is theirs).
    pub user_id: String,
    pub tier: crate::persistence::enums::UserTier,
    pub message_quota: Option<i64>,
}

/// Proof of the epoch before a database read; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

#[derive(Debug)]
pub struct KeyCache {
    ttl: Duration,
    capacity: usize,
    epoch: AtomicU64,
    map: RwLock<HashMap<String, (KeyEntry, Instant)>>,
}

impl KeyCache {
    /// A cache keeping entries for `ttl` (zero disables it) and at most
    /// `capacity` of them.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity: capacity.max(1), epoch: AtomicU64::new(0), map: RwLock::new(HashMap::new()) }
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
        map.get(key_hash).filter(|(_, at)| at.elapsed() < self.ttl).map(|(e, _)| e.clone())
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
        if map.len() >= self.capacity {
            let ttl = self.ttl;
            map.retain(|_, (_, at)| at.elapsed() < ttl);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(key_hash, (entry, Instant::now()));
    }

    /// Forgets every key of `session_id` (deleted, status or placement
    /// changed, key rotated or revoked).
    pub fn invalidate_session(&self, session_id: &str) {
        let mut map = self.map.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        map.retain(|_, (e, _)| e.session_id != session_id);
    }

    /// Forgets everything (e.g. a user deactivated: all their sessions).
    pub fn invalidate_all(&self) {
        let mut map = self.map.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
