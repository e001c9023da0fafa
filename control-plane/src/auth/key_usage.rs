//! `api_keys.last_used` without a database write per request: each
//! successful key authentication is recorded in memory, and a background
//! task flushes what was recorded since the last flush with one batched
//! `UPDATE` every interval (and once more at shutdown).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::persistence::{Db, DbErr};
use crate::state::SharedState;

/// Keys per `UPDATE` statement (2 bind values each, plus the id list).
const CHUNK: usize = 300;

#[derive(Default)]
pub struct KeyUsage {
    pending: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl KeyUsage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `key_id` was used now (cheap: one map insert).
    pub fn touch(&self, key_id: &str) {
        let now = Utc::now();
        let mut pending = self.lock();
        match pending.get_mut(key_id) {
            Some(t) => *t = now,
            None => {
                pending.insert(key_id.to_owned(), now);
            }
        }
    }

    /// Keys waiting for the next flush.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, DateTime<Utc>>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes what was recorded: one `UPDATE … SET last_used = CASE id …`
    /// per chunk of keys. On failure the entries are put back (unless a
    /// newer use was recorded meanwhile) for the next flush.
    pub async fn flush(&self, db: &Db) -> Result<usize, DbErr> {
        let batch: Vec<(String, DateTime<Utc>)> = std::mem::take(&mut *self.lock()).into_iter().collect();
        let mut written = 0;
        for (i, chunk) in batch.chunks(CHUNK).enumerate() {
            if let Err(err) = crate::persistence::api_keys::set_last_used(db, chunk).await {
                let mut pending = self.lock();
                for (id, t) in &batch[i * CHUNK..] {
                    pending.entry(id.clone()).or_insert(*t);
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
    crate::state::spawn_periodic(
        state,
        interval,
        tracing::debug_span!("key_usage_flusher"),
        |st| async move {
            match st.key_usage.flush(&st.db).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(keys = n, "api key last_used flushed"),
                Err(err) => tracing::warn!(error = %err, "api key last_used flush failed"),
            }
        },
    );
}
