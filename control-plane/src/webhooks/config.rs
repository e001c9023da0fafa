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

/// Where a session's events go: its webhook (with the types it subscribes
/// to) and its live event log (on while a live client connected recently).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveHook {
    /// The webhook recording events, and its subscribed [`EventType::bit`]s.
    pub webhook: Option<(String, u32)>,
    /// Until when the live event log is on.
    pub live_until: Option<DateTime<Utc>>,
}

impl ActiveHook {
    /// The webhook to write an event of `kind` for, if it subscribes.
    pub fn webhook_for(&self, kind: EventType) -> Option<&str> {
        self.webhook.as_ref().filter(|(_, mask)| mask & kind.bit() != 0).map(|(id, _)| id.as_str())
    }

    /// Whether the live log takes events (every type but `webhook.test`).
    pub fn live(&self, kind: EventType) -> bool {
        kind != EventType::WebhookTest && self.live_until.is_some_and(|t| t > Utc::now())
    }

    pub fn wants(&self, kind: EventType) -> bool {
        self.webhook_for(kind).is_some() || self.live(kind)
    }
}

/// Subscription mask of an `events` list (empty: every type but the opt-in ones).
pub fn mask_of(events: &[String]) -> u32 {
    EventType::mask_of(events)
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

    /// Where an event of `kind` goes for the session (none: nowhere). Reads
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
        let sinks = webhooks::recording_for_session(conn, db, session_id).await?;
        let hook = (sinks.webhook.is_some() || sinks.live_until.is_some()).then(|| {
            Arc::new(ActiveHook {
                webhook: sinks.webhook.map(|(id, events)| (id, mask_of(&parse_events(&events)))),
                live_until: sinks.live_until,
            })
        });
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
        assert_eq!(
            mask_of(&[]),
            0b011_1110_1111,
            "every type a webhook can subscribe to but presence, not webhook.test"
        );
        let m = mask_of(&["message.received".into(), "session.qr".into(), "nope".into()]);
        let mut h = ActiveHook { webhook: Some(("w".into(), m)), live_until: None };
        assert!(h.wants(EventType::MessageReceived) && h.wants(EventType::SessionQr));
        assert!(!h.wants(EventType::MessageStatus));
        // The live log takes every type but webhook.test, while it is on.
        h.live_until = Some(Utc::now() + chrono::Duration::minutes(1));
        assert!(h.wants(EventType::MessageStatus) && h.webhook_for(EventType::MessageStatus).is_none());
        assert!(h.live(EventType::Presence) && !h.live(EventType::WebhookTest));
        h.live_until = Some(Utc::now() - chrono::Duration::minutes(1));
        assert!(!h.wants(EventType::MessageStatus));
    }
}
