//! Usage metering for billing: every authenticated API call per user,
//! session and API key, and every accepted message per type, per billing
//! month (UTC). Counting is a map increment in memory; a background task
//! upserts the counts into `usage_records` every `WAGATE_USAGE_FLUSH_SECS`
//! and once more at shutdown, so no request waits on a SQL write, and a
//! crash loses at most one interval of this replica's counts. Replicas add
//! to the same rows (the upsert adds), so any number of them count right.

pub mod service;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::persistence::DbErr;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use wagate_proto::v1;

use crate::persistence::Db;
use crate::state::SharedState;

pub const API_CALLS: &str = "api_calls";

pub use crate::persistence::usage::UsageKey;

/// Rows per upsert statement (9 bind values each).
const CHUNK: usize = 200;

#[derive(Default)]
pub struct UsageMeter {
    pending: Mutex<HashMap<UsageKey, u64>>,
}

/// The first instant of `t`'s month (the billing date).
pub fn month_of(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0).single().unwrap_or(t)
}

/// Parses `YYYY-MM` (empty: the current month).
pub fn parse_month(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Some(month_of(Utc::now()));
    }
    let (y, m) = raw.split_once('-')?;
    if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    if !(2000..=9999).contains(&y) {
        return None;
    }
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single()
}

pub fn format_month(t: DateTime<Utc>) -> String {
    t.format("%Y-%m").to_string()
}

/// `messages.<type>` for a message type.
pub fn message_metric(kind: v1::MessageType) -> &'static str {
    match kind {
        v1::MessageType::Image => "messages.image",
        v1::MessageType::Document => "messages.document",
        v1::MessageType::Audio => "messages.audio",
        v1::MessageType::Video => "messages.video",
        v1::MessageType::Location => "messages.location",
        v1::MessageType::Contact => "messages.contact",
        _ => "messages.text",
    }
}

impl UsageMeter {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&self, user_id: &str, session_id: &str, api_key_id: &str, metric: &'static str, n: u64) {
        let key = UsageKey {
            month: month_of(Utc::now()),
            user_id: user_id.to_owned(),
            session_id: session_id.to_owned(),
            api_key_id: api_key_id.to_owned(),
            metric,
        };
        *self.lock().entry(key).or_insert(0) += n;
    }

    /// An API call made with a session's API key.
    pub fn api_call(&self, user_id: &str, session_id: &str, api_key_id: &str) {
        self.add(user_id, session_id, api_key_id, API_CALLS, 1);
    }

    /// An API call made with a user token.
    pub fn user_call(&self, user_id: &str) {
        self.add(user_id, "", "", API_CALLS, 1);
    }

    /// A message accepted for sending.
    pub fn message(&self, user_id: &str, session_id: &str, api_key_id: &str, kind: v1::MessageType) {
        self.add(user_id, session_id, api_key_id, message_metric(kind), 1);
    }

    /// Bytes of a new media object stored for a session.
    pub fn media_bytes(&self, user_id: &str, session_id: &str, bytes: u64) {
        self.add(user_id, session_id, "", crate::media::service::MEDIA_BYTES, bytes);
    }

    /// Counters waiting for the next flush.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UsageKey, u64>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds what was counted to `usage_records`. On failure the unwritten
    /// counts are put back for the next flush (nothing is lost or doubled:
    /// a chunk is one statement). Counts of users deleted meanwhile are
    /// dropped.
    pub async fn flush(&self, db: &Db) -> Result<usize, DbErr> {
        let batch: Vec<(UsageKey, u64)> = std::mem::take(&mut *self.lock()).into_iter().collect();
        let mut written = 0;
        for (i, chunk) in batch.chunks(CHUNK).enumerate() {
            if let Err(err) = crate::persistence::usage::add_counts(db, chunk).await {
                let mut pending = self.lock();
                for (k, n) in &batch[i * CHUNK..] {
                    *pending.entry(k.clone()).or_insert(0) += n;
                }
                return Err(err);
            }
            written += chunk.len();
        }
        Ok(written)
    }
}

/// Starts the flusher on `state.tasks`: every `interval`, and once more
/// when the replica shuts down.
pub fn spawn_flusher(state: &SharedState, interval: Duration) {
    crate::state::spawn_periodic(state, interval, tracing::debug_span!("usage_flusher"), |st| async move {
        match st.usage.flush(&st.db).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(counters = n, "usage flushed"),
            Err(err) => {
                ::metrics::counter!("wagate_usage_flush_failures_total").increment(1);
                tracing::warn!(error = %err, pending = st.usage.pending(), "usage flush failed, kept for the next one");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_format() {
        let m = parse_month("2026-02").unwrap();
        assert_eq!(format_month(m), "2026-02");
        assert_eq!(month_of(Utc.with_ymd_and_hms(2026, 2, 28, 23, 59, 59).unwrap()), m);
        for bad in ["2026-13", "2026-2", "26-02", "2026/02", "abcd-ef", "1999-12", "2026-+1", "+999-01"] {
            assert!(parse_month(bad).is_none(), "{bad}");
        }
        assert_eq!(parse_month("").unwrap(), month_of(Utc::now()));
    }

    #[test]
    fn counts_aggregate_per_key() {
        let m = UsageMeter::new();
        m.api_call("u", "s", "k");
        m.api_call("u", "s", "k");
        m.user_call("u");
        m.message("u", "s", "k", v1::MessageType::Image);
        assert_eq!(m.pending(), 3);
        let p = m.lock();
        let calls = p.iter().find(|(k, _)| k.metric == API_CALLS && k.session_id == "s").unwrap();
        assert_eq!(*calls.1, 2);
    }
}
