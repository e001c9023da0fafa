//! The counting rules shared by the Redis script and the in-process
//! limiter, so both backends answer the same.
//!
//! A rule allows `limit` units per `window`, counted one of two ways
//! ([`Shape`]):
//!
//! - **fixed**: windows aligned on the epoch (an hourly quota resets on the
//!   hour, UTC); one counter per window. Cheap at any limit, but a client
//!   can spend `limit` just before a boundary and `limit` again just after
//!   it: up to 2 × `limit` in one window's length.
//! - **sliding**: at most `limit` units in *any* `window` ending now (a log
//!   of the time of each unit counted in the last `window`; a unit leaves it
//!   `window` after it was counted). Exact, and memory O(`limit`) per
//!   subject: for the small limits of password guessing and other abuse
//!   limits, where a 2× burst matters.
//!
//! A check adds `cost` units unless that would pass the limit; a refused
//! check changes nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// How a rule counts (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shape {
    #[default]
    Fixed,
    Sliding,
}

/// Where `now_ms` falls: the window's start and its end (both epoch ms).
pub fn bounds(now_ms: i64, window_ms: i64) -> (i64, i64) {
    let w = window_ms.max(1);
    let start = now_ms.div_euclid(w) * w;
    (start, start + w)
}

/// One counter check: add `cost` to `key` unless that passes `limit`.
/// Fixed: in the window `[start, end)`. Sliding: in `(start, end]`, that is
/// `(now - window, now]`; new units are stamped `end`.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    pub key: &'a str,
    pub shape: Shape,
    pub start: i64,
    pub end: i64,
    pub limit: u64,
    pub cost: u64,
}

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Units in the window (after counting, or as they stay when refused).
    pub count: u64,
    /// Sliding: ms until units leave the window — as many as a refused
    /// check needed, or the oldest one for an allowed check (`None` when
    /// the log is empty or no wait can make room). Fixed: `None` (the
    /// window's end says it).
    pub frees_in: Option<i64>,
}

/// The in-process counters (the embedded default, and every replica's
/// fallback while Redis is unreachable).
#[derive(Default)]
pub struct MemoryWindows {
    state: Mutex<State>,
    calls: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Fixed: key → (window end, count in that window).
    counts: HashMap<String, (i64, u64)>,
    /// Sliding: key → (window length, time of each unit, oldest first).
    logs: HashMap<String, (i64, VecDeque<i64>)>,
}

/// Entries are swept of past windows every this many checks.
const SWEEP_EVERY: u64 = 4096;

impl State {
    fn sweep(&mut self, now: i64) {
        // A fixed window that ended before now is past, whatever its length.
        self.counts.retain(|_, (end, _)| *end > now);
        self.logs.retain(|_, (window, log)| log.back().is_some_and(|t| *t > now - *window));
    }

    fn hit(&mut self, h: &Hit<'_>) -> Result<Tally, Tally> {
        match h.shape {
            Shape::Fixed => {
                let entry = self.counts.entry(h.key.to_owned()).or_insert((h.end, 0));
                if entry.0 != h.end {
                    *entry = (h.end, 0);
                }
                match entry.1.checked_add(h.cost) {
                    Some(next) if next <= h.limit => {
                        entry.1 = next;
                        Ok(Tally { count: next, frees_in: None })
                    }
                    _ => Err(Tally { count: entry.1, frees_in: None }),
                }
            }
            Shape::Sliding => {
                let (window, log) =
                    self.logs.entry(h.key.to_owned()).or_insert_with(|| (h.end - h.start, VecDeque::new()));
                *window = h.end - h.start;
                while log.front().is_some_and(|t| *t <= h.start) {
                    log.pop_front();
                }
                let count = u64::try_from(log.len()).unwrap_or(u64::MAX);
                match count.checked_add(h.cost) {
                    Some(next) if next <= h.limit => {
                        for _ in 0..h.cost {
                            log.push_back(h.end);
                        }
                        Ok(Tally { count: next, frees_in: log.front().map(|t| t - h.start) })
                    }
                    _ => {
                        // The oldest `need` units must leave before this fits.
                        let need = count.saturating_add(h.cost).saturating_sub(h.limit);
                        let frees_in = usize::try_from(need)
                            .ok()
                            .and_then(|n| n.checked_sub(1))
                            .and_then(|i| log.get(i))
                            .map(|t| t - h.start);
                        Err(Tally { count, frees_in })
                    }
                }
            }
        }
    }

    /// Takes back what an allowed check counted.
    fn undo(&mut self, h: &Hit<'_>) {
        match h.shape {
            Shape::Fixed => {
                if let Some(e) = self.counts.get_mut(h.key) {
                    e.1 = e.1.saturating_sub(h.cost);
                }
            }
            Shape::Sliding => {
                if let Some((_, log)) = self.logs.get_mut(h.key) {
                    for _ in 0..h.cost {
                        log.pop_back();
                    }
                }
            }
        }
    }
}

impl MemoryWindows {
    /// Several checks at once, all or nothing: each counts unless one of
    /// them would pass its limit, then none does. Returns the index of the
    /// refused check (if any) and the tally of each check up to it.
    pub fn hit_all(&self, now: i64, checks: &[Hit<'_>]) -> (Option<usize>, Vec<Tally>) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.calls.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            state.sweep(now);
        }
        let mut tallies: Vec<Tally> = Vec::with_capacity(checks.len());
        for (i, h) in checks.iter().enumerate() {
            match state.hit(h) {
                Ok(t) => tallies.push(t),
                Err(t) => {
                    tallies.push(t);
                    // Give back what the checks before this one counted.
                    for done in &checks[..i] {
                        state.undo(done);
                    }
                    return (Some(i), tallies);
                }
            }
        }
        (None, tallies)
    }

    /// Gives `cost` back to `key` (a counted call that did not happen after
    /// all): fixed, in the window ending at `end`; sliding, the latest units.
    pub fn refund(&self, key: &str, shape: Shape, end: i64, cost: u64) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match shape {
            Shape::Fixed => {
                if let Some(entry) = state.counts.get_mut(key)
                    && entry.0 == end
                {
                    entry.1 = entry.1.saturating_sub(cost);
                }
            }
            Shape::Sliding => {
                let hit = Hit { key, shape, start: 0, end: 0, limit: 0, cost };
                state.undo(&hit);
            }
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
        let h = Hit { key, shape: Shape::Fixed, start, end: start + 1000, limit, cost };
        let (refused, tallies) = m.hit_all(start, &[h]);
        (refused.is_none(), tallies[0].count)
    }

    fn counts(r: (Option<usize>, Vec<Tally>)) -> (Option<usize>, Vec<u64>) {
        (r.0, r.1.iter().map(|t| t.count).collect())
    }

    #[test]
    fn counts_up_to_the_limit_then_refuses_without_counting() {
        let m = MemoryWindows::default();
        for i in 1..=3 {
            assert_eq!(hit(&m, "k", 0, 3, 1), (true, i));
        }
        assert_eq!(hit(&m, "k", 0, 3, 1), (false, 3));
        m.refund("k", Shape::Fixed, 1000, 1);
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
        let ip = Hit { key: "ip", shape: Shape::Fixed, start: 0, end: 900, limit: 5, cost: 1 };
        let quota = Hit { key: "quota", shape: Shape::Fixed, start: 0, end: 3600, limit: 1, cost: 1 };
        assert_eq!(counts(m.hit_all(0, &[ip, quota])), (None, vec![1, 1]));
        // the quota is spent: the IP check counted first is given back
        assert_eq!(counts(m.hit_all(0, &[ip, quota])), (Some(1), vec![2, 1]));
        assert_eq!(counts(m.hit_all(0, &[Hit { cost: 0, ..ip }])), (None, vec![1]));
        // a sliding check refused after a fixed one: the fixed one is given back
        let login = Hit { key: "login", shape: Shape::Sliding, start: -1000, end: 0, limit: 1, cost: 1 };
        assert_eq!(counts(m.hit_all(0, &[login])), (None, vec![1]));
        assert_eq!(counts(m.hit_all(0, &[ip, login])), (Some(1), vec![2, 1]));
        assert_eq!(counts(m.hit_all(0, &[Hit { cost: 0, ..ip }])), (None, vec![1]));
        // and a sliding one refused after a sliding one
        let other = Hit { key: "other", ..login };
        assert_eq!(counts(m.hit_all(0, &[other, login])), (Some(1), vec![1, 1]));
        assert_eq!(counts(m.hit_all(0, &[other])), (None, vec![1]));
    }

    #[test]
    fn the_sweep_keeps_longer_windows_that_still_run() {
        let m = MemoryWindows::default();
        let hour = Hit { key: "quota", shape: Shape::Fixed, start: 0, end: 3_600_000, limit: 10, cost: 1 };
        assert_eq!(counts(m.hit_all(0, &[hour])), (None, vec![1]));
        // Many checks of a short window late in the hour sweep past windows...
        for i in 0..SWEEP_EVERY {
            let start = 3_000_000 + i64::try_from(i).unwrap_or(0);
            m.hit_all(
                start,
                &[Hit { key: "ip", shape: Shape::Fixed, start, end: start + 1, limit: 10, cost: 1 }],
            );
        }
        // ...but not the hour, which has not ended.
        assert_eq!(counts(m.hit_all(3_000_000, &[hour])), (None, vec![2]));
    }

    fn slide(m: &MemoryWindows, now: i64, limit: u64) -> Result<Tally, Tally> {
        let h = Hit { key: "k", shape: Shape::Sliding, start: now - 1000, end: now, limit, cost: 1 };
        match m.hit_all(now, &[h]) {
            (None, t) => Ok(t[0]),
            (Some(_), t) => Err(t[0]),
        }
    }

    fn count(r: Result<Tally, Tally>) -> Result<u64, u64> {
        r.map(|t| t.count).map_err(|t| t.count)
    }

    #[test]
    fn a_sliding_window_never_allows_more_than_its_limit_in_any_window() {
        let m = MemoryWindows::default();
        // 3 per second: spent at 0.2, 0.9, 0.95 (until the oldest leaves: 1.0 s, 0.3 s, 0.25 s)
        for (now, frees_in) in [(200, 1000), (900, 300), (950, 250)] {
            assert_eq!(slide(&m, now, 3).map(|t| t.frees_in), Ok(Some(frees_in)), "at {now}");
        }
        // past the epoch-aligned boundary at 1.0: still refused, until 0.2 leaves at 1.2
        assert_eq!(slide(&m, 1001, 3), Err(Tally { count: 3, frees_in: Some(199) }));
        assert_eq!(slide(&m, 1199, 3), Err(Tally { count: 3, frees_in: Some(1) }));
        assert_eq!(count(slide(&m, 1200, 3)), Ok(3));
        assert_eq!(count(slide(&m, 1200, 3)), Err(3));
        // a refund takes the latest unit back
        m.refund("k", Shape::Sliding, 0, 1);
        assert_eq!(count(slide(&m, 1200, 3)), Ok(3));
        // units at 0.9, 0.95, 1.2: the next one fits when 0.9 leaves
        assert_eq!(slide(&m, 1899, 3), Err(Tally { count: 3, frees_in: Some(1) }));
        assert_eq!(count(slide(&m, 1900, 3)), Ok(3));
        // a cost no wait can make room for: refused, no time to wait for
        let h = Hit { key: "k", shape: Shape::Sliding, start: 1000, end: 2000, limit: 3, cost: 4 };
        assert_eq!(m.hit_all(2000, &[h]).1[0].frees_in, None);
    }

    #[test]
    fn the_sweep_drops_idle_logs_and_keeps_live_ones() {
        let m = MemoryWindows::default();
        slide(&m, 0, 5).ok();
        let live = Hit { key: "live", shape: Shape::Sliding, start: -3_600_000, end: 0, limit: 5, cost: 1 };
        assert!(m.hit_all(0, &[live]).0.is_none());
        let x = Hit { key: "x", shape: Shape::Fixed, start: 5000, end: 6000, limit: u64::MAX, cost: 1 };
        for _ in 0..SWEEP_EVERY {
            m.hit_all(5000, &[x]);
        }
        let state = m.state.lock().unwrap();
        assert!(!state.logs.contains_key("k"), "a log whose last unit left its window is dropped");
        assert!(state.logs.contains_key("live"), "an hour-long log is kept");
    }
}
