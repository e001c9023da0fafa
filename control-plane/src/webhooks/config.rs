//! A session's webhook: the row, and the per-session cache the hot paths
//! ask "does this session have an active webhook subscribed to this event
//! type?" (sessions without a webhook are answered from memory).
//!
//! Changes made on this replica invalidate the cache at once; changes made
//! on another replica are seen within the cache TTL. A webhook the
//! dispatcher disabled (410, too many failures) still records events (they
//! wait for it to be re-enabled); one the user set inactive does not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::EventType;
pub use crate::persistence::webhooks::{WebhookRow, parse_events};
use crate::persistence::{Conn, Db, DbErr, webhooks};

/// Entries kept at most; beyond that the cache starts over.
const CAPACITY: usize = 200_000;

/// What the hot paths need to know about an active webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveHook {
    pub id: String,
    /// Subscribed [`EventType::bit`]s.
    pub mask: u8,
}

impl ActiveHook {
    pub fn wants(&self, kind: EventType) -> bool {
        self.mask & kind.bit() != 0
    }
}

/// Subscription mask of an `events` list (empty: every type).
pub fn mask_of(events: &[String]) -> u8 {
    if events.is_empty() {
        return EventType::SUBSCRIBABLE.iter().fold(0, |m, t| m | t.bit());
    }
    events.iter().filter_map(|e| EventType::parse(e)).fold(0, |m, t| m | t.bit())
}

/// When a lookup was made, and what it found.
type Entry = (Instant, Option<Arc<ActiveHook>>);

pub struct HookCache {
    ttl: Duration,
    map: Mutex<HashMap<String, Entry>>,
}

impl HookCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, map: Mutex::new(HashMap::new()) }
    }

    /// The session's active webhook if it subscribes to `kind`. Reads
    /// through `conn` (pass the open transaction, if any) on a miss.
    pub async fn subscribed<C: Conn>(
        &self,
        conn: &C,
        db: &Db,
        session_id: &str,
        kind: EventType,
    ) -> Result<Option<Arc<ActiveHook>>, DbErr> {
        let hook = self.lookup(conn, db, session_id).await?;
        Ok(hook.filter(|h| h.wants(kind)))
    }

    async fn lookup<C: Conn>(
        &self,
        conn: &C,
        db: &Db,
        session_id: &str,
    ) -> Result<Option<Arc<ActiveHook>>, DbErr> {
        if !self.ttl.is_zero()
            && let Ok(map) = self.map.lock()
            && let Some((at, hook)) = map.get(session_id)
            && at.elapsed() < self.ttl
        {
            return Ok(hook.clone());
        }
        let hook = webhooks::recording_for_session(conn, db, session_id)
            .await?
            .map(|(id, events)| Arc::new(ActiveHook { id, mask: mask_of(&parse_events(&events)) }));
        if !self.ttl.is_zero()
            && let Ok(mut map) = self.map.lock()
        {
            if map.len() >= CAPACITY {
                map.clear();
            }
            map.insert(session_id.to_owned(), (Instant::now(), hook.clone()));
        }
        Ok(hook)
    }

    pub fn invalidate(&self, session_id: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(session_id);
        }
    }
}

impl WebhookRow {
    /// The session's webhook.
    pub async fn by_session<C: Conn>(conn: &C, db: &Db, session_id: &str) -> Result<Option<Self>, DbErr> {
        webhooks::by_session(conn, db, session_id).await
    }

    /// A webhook by id.
    pub async fn by_id<C: Conn>(conn: &C, db: &Db, id: &str) -> Result<Option<Self>, DbErr> {
        webhooks::by_id(conn, db, id).await
    }

    /// The signing keys now: the current secret, and the previous one while
    /// its overlap lasts.
    pub fn signing_keys(&self, now: DateTime<Utc>) -> Vec<Vec<u8>> {
        let mut keys = Vec::with_capacity(2);
        if let Some(k) = self.secret.as_deref().and_then(super::signing::parse_secret) {
            keys.push(k);
        }
        if let (Some(prev), Some(until)) = (&self.previous_secret, self.previous_secret_expires_at)
            && until > now
            && let Some(k) = super::signing::parse_secret(prev)
        {
            keys.push(k);
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask_of(&[]), EventType::SUBSCRIBABLE.iter().fold(0, |m, t| m | t.bit()));
        assert_eq!(mask_of(&[]), 0b10_1111, "every type a webhook can subscribe to, not webhook.test");
        let m = mask_of(&["message.received".into(), "session.qr".into(), "nope".into()]);
        let h = ActiveHook { id: "w".into(), mask: m };
        assert!(h.wants(EventType::MessageReceived) && h.wants(EventType::SessionQr));
        assert!(!h.wants(EventType::MessageStatus));
    }
}
