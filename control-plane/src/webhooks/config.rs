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
use sea_orm::{ConnectionTrait, DbErr, QueryResult};

use super::EventType;
use crate::persistence::{Db, webhooks};

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
    pub async fn subscribed<C: ConnectionTrait>(
        &self,
        conn: &C,
        db: &Db,
        session_id: &str,
        kind: EventType,
    ) -> Result<Option<Arc<ActiveHook>>, DbErr> {
        let hook = self.lookup(conn, db, session_id).await?;
        Ok(hook.filter(|h| h.wants(kind)))
    }

    async fn lookup<C: ConnectionTrait>(
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

pub fn parse_events(json: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(json).unwrap_or_default()
}

/// A `webhooks` row.
#[derive(Debug, Clone)]
pub struct WebhookRow {
    pub id: String,
    pub session_id: String,
    pub url: String,
    pub events: Vec<String>,
    pub secret: Option<String>,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub is_active: bool,
    pub last_delivery: Option<DateTime<Utc>>,
    pub failure_count: i32,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns [`WebhookRow::from_row`] reads.
pub const COLUMNS: &str = "id, session_id, url, events, secret, previous_secret, previous_secret_expires_at, \
    is_active, last_delivery, failure_count, disabled_reason, created_at, updated_at";

impl WebhookRow {
    pub fn from_row(r: &QueryResult) -> Result<Self, DbErr> {
        let events: String = r.try_get("", "events")?;
        Ok(Self {
            id: r.try_get("", "id")?,
            session_id: r.try_get("", "session_id")?,
            url: r.try_get("", "url")?,
            events: parse_events(&events),
            secret: r.try_get("", "secret")?,
            previous_secret: r.try_get("", "previous_secret")?,
            previous_secret_expires_at: r.try_get("", "previous_secret_expires_at")?,
            is_active: r.try_get("", "is_active")?,
            last_delivery: r.try_get("", "last_delivery")?,
            failure_count: r.try_get("", "failure_count")?,
            disabled_reason: r.try_get("", "disabled_reason")?,
            created_at: r.try_get("", "created_at")?,
            updated_at: r.try_get("", "updated_at")?,
        })
    }

    /// The session's webhook.
    pub async fn by_session<C: ConnectionTrait>(
        conn: &C,
        db: &Db,
        session_id: &str,
    ) -> Result<Option<Self>, DbErr> {
        webhooks::by_session(conn, db, session_id).await
    }

    /// A webhook by id.
    pub async fn by_id<C: ConnectionTrait>(conn: &C, db: &Db, id: &str) -> Result<Option<Self>, DbErr> {
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
        assert_eq!(mask_of(&[]), 15);
        let m = mask_of(&["message.received".into(), "session.qr".into(), "nope".into()]);
        let h = ActiveHook { id: "w".into(), mask: m };
        assert!(h.wants(EventType::MessageReceived) && h.wants(EventType::SessionQr));
        assert!(!h.wants(EventType::MessageStatus));
    }
}
