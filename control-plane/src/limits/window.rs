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

/// One counter check: add `cost` to `key` in the window `[start, end)`
/// unless that passes `limit`.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    pub key: &'a str,
    pub start: i64,
    pub end: i64,
    pub limit: u64,
    pub cost: u64,
}

/// The in-process counters (the embedded default, and every replica's
/// fallback while Redis is unreachable).
#[derive(Default)]
pub struct MemoryWindows {
    /// key → (window end, count in that window).
    counts: Mutex<HashMap<String, (i64, u64)>>,
    calls: AtomicU64,
}

/// Entries are swept of past windows every this many checks.
const SWEEP_EVERY: u64 = 4096;

impl MemoryWindows {
    /// Several checks at once, all or nothing: each counts unless one of
    /// them would pass its limit, then none does. Returns the index of the
    /// refused check (if any) and the count of each check up to it (after
    /// counting, or as it stays when refused).
    pub fn hit_all(&self, checks: &[Hit<'_>]) -> (Option<usize>, Vec<u64>) {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(first) = checks.first()
            && self.calls.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1
        {
            // A window that ended before this check's began is past, whatever its length.
            counts.retain(|_, (end, _)| *end > first.start);
        }
        let mut after: Vec<u64> = Vec::with_capacity(checks.len());
        for (i, h) in checks.iter().enumerate() {
            let entry = counts.entry(h.key.to_owned()).or_insert((h.end, 0));
            if entry.0 != h.end {
                *entry = (h.end, 0);
            }
            match entry.1.checked_add(h.cost) {
                Some(next) if next <= h.limit => {
                    entry.1 = next;
                    after.push(next);
                }
                _ => {
                    after.push(entry.1);
                    // Give back what the checks before this one counted.
                    for done in &checks[..i] {
                        if let Some(e) = counts.get_mut(done.key) {
                            e.1 = e.1.saturating_sub(done.cost);
                        }
                    }
                    return (Some(i), after);
                }
            }
        }
        (None, after)
    }

    /// Gives `cost` back to `key` in the window ending at `end` (a counted
    /// call that did not happen after all).
    pub fn refund(&self, key: &str, end: i64, cost: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = counts.get_mut(key)
            && entry.0 == end
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

    fn hit(m: &MemoryWindows, key: &str, start: i64, limit: u64, cost: u64) -> (bool, u64) {
        let (refused, counts) = m.hit_all(&[Hit { key, start, end: start + 1000, limit, cost }]);
        (refused.is_none(), counts[0])
    }

    #[test]
    fn counts_up_to_the_limit_then_refuses_without_counting() {
        let m = MemoryWindows::default();
        for i in 1..=3 {
            assert_eq!(hit(&m, "k", 0, 3, 1), (true, i));
        }
        assert_eq!(hit(&m, "k", 0, 3, 1), (false, 3));
        m.refund("k", 1000, 1);
        assert_eq!(hit(&m, "k", 0, 3, 1), (true, 3));
        // the next window starts from zero
        assert_eq!(hit(&m, "k", 1000, 3, 2), (true, 2));
        // a peek (cost 0) never counts
        assert_eq!(hit(&m, "k", 1000, 3, 0), (true, 2));
        assert_eq!(hit(&m, "k", 1000, 3, 2), (false, 2));
    }

    #[test]
    fn several_checks_count_all_or_nothing() {
        let m = MemoryWindows::default();
        let ip = Hit { key: "ip", start: 0, end: 900, limit: 5, cost: 1 };
        let quota = Hit { key: "quota", start: 0, end: 3600, limit: 1, cost: 1 };
        assert_eq!(m.hit_all(&[ip, quota]), (None, vec![1, 1]));
        // the quota is spent: the IP check counted first is given back
        assert_eq!(m.hit_all(&[ip, quota]), (Some(1), vec![2, 1]));
        assert_eq!(m.hit_all(&[Hit { cost: 0, ..ip }]), (None, vec![1]));
    }

    #[test]
    fn the_sweep_keeps_longer_windows_that_still_run() {
        let m = MemoryWindows::default();
        let hour = Hit { key: "quota", start: 0, end: 3_600_000, limit: 10, cost: 1 };
        assert_eq!(m.hit_all(&[hour]), (None, vec![1]));
        // Many checks of a short window late in the hour sweep past windows...
        for i in 0..SWEEP_EVERY {
            let start = 3_000_000 + i64::try_from(i).unwrap_or(0);
            m.hit_all(&[Hit { key: "ip", start, end: start + 1, limit: 10, cost: 1 }]);
        }
        // ...but not the hour, which has not ended.
        assert_eq!(m.hit_all(&[hour]), (None, vec![2]));
    }
}
