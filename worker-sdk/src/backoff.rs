//! Exponential backoff with full jitter for reconnects.
//!
//! The n-th consecutive failure waits a uniformly random time in
//! `[0, min(max, base * 2^n)]` ("full jitter"), so a fleet of workers that lost
//! the same control-plane replica does not reconnect in lock-step.

use std::time::Duration;

/// Reconnect delays; [`Backoff::reset`] after a successful `Welcome`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// `base` is the first ceiling, `max` the cap of every delay.
    pub fn new(base: Duration, max: Duration) -> Self {
        let base = base.max(Duration::from_millis(1));
        Self { base, max: max.max(base), attempt: 0 }
    }

    /// Failures since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The upper bound of the delay after `attempt` consecutive failures:
    /// `min(max, base * 2^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.checked_mul(factor).map_or(self.max, |d| d.min(self.max))
    }

    /// The next delay (random in `[0, ceiling(attempt)]`), and counts a failure.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let ceiling_us = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::random_range(0..=ceiling_us))
    }

    /// Starts over from `base` (after a connection was established).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(10);

    #[test]
    fn ceiling_grows_exponentially_and_is_capped() {
        let b = Backoff::new(BASE, MAX);
        assert_eq!(b.ceiling(0), Duration::from_millis(200));
        assert_eq!(b.ceiling(1), Duration::from_millis(400));
        assert_eq!(b.ceiling(2), Duration::from_millis(800));
        assert_eq!(b.ceiling(5), Duration::from_millis(6400));
        assert_eq!(b.ceiling(6), MAX);
        assert_eq!(b.ceiling(40), MAX);
        assert_eq!(b.ceiling(u32::MAX), MAX);
    }

    #[test]
    fn delays_stay_within_full_jitter_bounds() {
        let mut b = Backoff::new(BASE, MAX);
        for attempt in 0..50u32 {
            let ceiling = b.ceiling(attempt);
            let delay = b.next_delay();
            assert!(delay <= ceiling, "attempt {attempt}: {delay:?} > {ceiling:?}");
            assert!(delay <= MAX);
        }
        assert_eq!(b.attempt(), 50);
    }

    #[test]
    fn delays_are_jittered_and_grow_on_average() {
        let mut early = Vec::new();
        let mut late = Vec::new();
        for _ in 0..200 {
            let mut b = Backoff::new(BASE, MAX);
            early.push(b.next_delay());
            for _ in 0..5 {
                b.next_delay();
            }
            late.push(b.next_delay());
        }
        let mean = |v: &[Duration]| v.iter().sum::<Duration>() / u32::try_from(v.len()).unwrap();
        // Full jitter: not all the same, mean about ceiling / 2.
        assert!(early.iter().any(|d| *d != early[0]));
        assert!(mean(&early) < Duration::from_millis(200));
        assert!(mean(&late) > Duration::from_millis(2000), "{:?}", mean(&late));
        assert!(late.iter().all(|d| *d <= MAX));
    }

    #[test]
    fn reset_starts_over_from_base() {
        let mut b = Backoff::new(BASE, MAX);
        for _ in 0..10 {
            b.next_delay();
        }
        assert_eq!(b.attempt(), 10);
        b.reset();
        assert_eq!(b.attempt(), 0);
        for _ in 0..100 {
            let mut b2 = b.clone();
            assert!(b2.next_delay() <= BASE);
        }
    }

    #[test]
    fn degenerate_settings_are_sane() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert!(b.next_delay() <= Duration::from_millis(1));
        let b = Backoff::new(Duration::from_secs(20), Duration::from_secs(10));
        assert_eq!(b.ceiling(0), Duration::from_secs(20));
    }
}
