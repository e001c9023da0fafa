//! In-process stand-in for Redis (the embedded default; also shared by the
//! replicas of an in-process test cluster, which then see one "Redis").

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

#[derive(Clone)]
pub struct MemoryCache {
    inner: Arc<Inner>,
}

struct Inner {
    replicas: RwLock<HashMap<String, (String, Instant)>>,
    leases: RwLock<HashMap<String, (String, Instant)>>,
    /// Revoked token ids → when their token expires anyway.
    denied: RwLock<HashMap<String, Instant>>,
    /// The in-process bus of cross-replica invalidations.
    bus: broadcast::Sender<String>,
}

impl Default for MemoryCache {
    fn default() -> Self {
        let (bus, _) = broadcast::channel(4096);
        Self {
            inner: Arc::new(Inner {
                replicas: RwLock::default(),
                leases: RwLock::default(),
                denied: RwLock::default(),
                bus,
            }),
        }
    }
}

impl MemoryCache {
    /// Sets the record; returns the replica it named before (if live).
    pub fn set_worker_replica(&self, worker_id: &str, replica: &str, ttl: Duration) -> Option<String> {
        let mut m = self.inner.replicas.write().ok()?;
        let now = Instant::now();
        let old = m.insert(worker_id.to_owned(), (replica.to_owned(), now + ttl));
        old.filter(|(_, exp)| *exp > now).map(|(r, _)| r)
    }

    /// Renews the record if absent or ours; false when another replica holds it.
    pub fn refresh_worker_replica(&self, worker_id: &str, replica: &str, ttl: Duration) -> bool {
        let Ok(mut m) = self.inner.replicas.write() else { return true };
        let now = Instant::now();
        match m.get(worker_id) {
            Some((r, exp)) if r != replica && *exp > now => false,
            _ => {
                m.insert(worker_id.to_owned(), (replica.to_owned(), now + ttl));
                true
            }
        }
    }

    pub fn get_worker_replica(&self, worker_id: &str) -> Option<String> {
        let m = self.inner.replicas.read().ok()?;
        m.get(worker_id).filter(|(_, exp)| *exp > Instant::now()).map(|(r, _)| r.clone())
    }

    pub fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> bool {
        let Ok(mut m) = self.inner.leases.write() else { return false };
        let now = Instant::now();
        match m.get(name) {
            Some((h, exp)) if h != holder && *exp > now => false,
            _ => {
                m.insert(name.to_owned(), (holder.to_owned(), now + ttl));
                true
            }
        }
    }

    pub fn clear_worker_replica(&self, worker_id: &str, replica: &str) {
        if let Ok(mut m) = self.inner.replicas.write()
            && m.get(worker_id).is_some_and(|(r, _)| r == replica)
        {
            m.remove(worker_id);
        }
    }

    pub fn deny_token(&self, jti: &str, ttl: Duration) {
        if let Ok(mut m) = self.inner.denied.write() {
            let now = Instant::now();
            // Entries outlive their token by nothing: drop the expired ones.
            m.retain(|_, exp| *exp > now);
            m.insert(jti.to_owned(), now + ttl);
        }
    }

    pub fn is_token_denied(&self, jti: &str) -> bool {
        self.inner.denied.read().is_ok_and(|m| m.get(jti).is_some_and(|exp| *exp > Instant::now()))
    }

    pub fn publish(&self, message: &str) {
        let _ = self.inner.bus.send(message.to_owned());
    }

    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.inner.bus.subscribe()
    }
}
