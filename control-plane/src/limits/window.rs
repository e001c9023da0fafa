//! Fixed windows: the counting rule shared by the Redis script and the
//! in-process limiter, so both backends answer the same.
//!
//! A rule allows `limit` units per `window`; windows are aligned on the
//! epoch (an hourly quota resets on the hour, UTC). A check adds `cost` to
//! the current window's count unless that would pass the limit; a refused
//! check changes nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where `now_ms` falls: the window's start and its end (both epoch ms).
pub fn bounds(now_ms: i64, window_ms: i64) -> (i64, i64) {
    let w = window_ms.max(1);
    let start = now_ms.div_euclid(w) * w;
    (start, start + w)
}

/// The in-process counters (the embedded default, and every replica's
/// fallback while Redis is unreachable).
#[derive(Default)]
pub struct MemoryWindows {
    counts: Mutex<HashMap<String, (i64, u64)>>,
    calls: AtomicU64,
}

/// Entries are swept of past windows every this many checks.
const SWEEP_EVERY: u64 = 4096;

impl MemoryWindows {
    /// Adds `cost` to `key`'s count in the window starting at `start` unless
    /// that passes `limit`. Returns (allowed, count after the check).
    pub fn hit(&self, key: &str, start: i64, limit: u64, cost: u64) -> (bool, u64) {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.calls.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            counts.retain(|_, (s, _)| *s >= start);
        }
        let entry = counts.entry(key.to_owned()).or_insert((start, 0));
        if entry.0 != start {
            *entry = (start, 0);
        }
        match entry.1.checked_add(cost) {
            Some(next) if next <= limit => {
                entry.1 = next;
                (true, next)
            }
            _ => (false, entry.1),
        }
    }

    /// Gives `cost` back (a counted call that did not happen after all).
    pub fn refund(&self, key: &str, start: i64, cost: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = counts.get_mut(key)
            && entry.0 == start
        {
            entry.1 = entry.1.saturating_sub(cost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_on_the_epoch() {
        assert_eq!(bounds(3_599_999, 3_600_000), (0, 3_600_000));
        assert_eq!(bounds(3_600_000, 3_600_000), (3_600_000, 7_200_000));
        assert_eq!(bounds(-1, 1000), (-1000, 0));
    }

    #[test]
    fn counts_up_to_the_limit_then_refuses_without_counting() {
        let m = MemoryWindows::default();
        for i in 1..=3 {
            assert_eq!(m.hit("k", 0, 3, 1), (true, i));
        }
        assert_eq!(m.hit("k", 0, 3, 1), (false, 3));
        m.refund("k", 0, 1);
        assert_eq!(m.hit("k", 0, 3, 1), (true, 3));
        // the next window starts from zero
        assert_eq!(m.hit("k", 1000, 3, 2), (true, 2));
        // a peek (cost 0) never counts
        assert_eq!(m.hit("k", 1000, 3, 0), (true, 2));
        assert_eq!(m.hit("k", 1000, 3, 2), (false, 2));
    }
}
