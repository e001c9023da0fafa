//! The retry schedule: the delay before each attempt (the first is
//! normally 0). Default: the Standard Webhooks schedule, immediately, 5 s,
//! 5 min, 30 min, 2 h, 5 h, then 10 h six times (about 2.8 days in all),
//! each delay with ±10 % jitter. Injectable, so tests run it in milliseconds.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    /// Fraction of each delay added or removed at random (0.1 = ±10 %).
    jitter: f64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid retry schedule entry {0:?}: expected seconds, or milliseconds with an `ms` suffix")]
pub struct ScheduleError(String);

impl RetrySchedule {
    pub fn standard() -> Self {
        let mut delays = vec![
            Duration::ZERO,
            Duration::from_secs(5),
            Duration::from_secs(5 * 60),
            Duration::from_secs(30 * 60),
            Duration::from_secs(2 * 3600),
            Duration::from_secs(5 * 3600),
        ];
        delays.extend(std::iter::repeat_n(Duration::from_secs(10 * 3600), 6));
        Self { delays, jitter: 0.1 }
    }

    /// A schedule of exactly these delays, without jitter (tests).
    pub fn fixed(delays: Vec<Duration>) -> Self {
        let delays = if delays.is_empty() { vec![Duration::ZERO] } else { delays };
        Self { delays, jitter: 0.0 }
    }

    /// `"0,5,300"` (seconds) or `"0,50ms,100ms"`; empty → `None`.
    pub fn parse(s: &str) -> Result<Option<Self>, ScheduleError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let mut delays = Vec::new();
        for part in s.split(',').map(str::trim) {
            let d = if let Some(ms) = part.strip_suffix("ms") {
                ms.trim().parse::<u64>().map(Duration::from_millis)
            } else {
                part.trim_end_matches('s').parse::<u64>().map(Duration::from_secs)
            }
            .map_err(|_| ScheduleError(part.to_owned()))?;
            delays.push(d);
        }
        if delays.len() > 100 {
            return Err(ScheduleError(format!("{} entries (at most 100)", delays.len())));
        }
        Ok(Some(Self { delays, jitter: 0.1 }))
    }

    /// The delay before attempt number `attempts_done + 1`, or `None` when
    /// `attempts_done` attempts are all there are.
    pub fn next_delay(&self, attempts_done: u32) -> Option<Duration> {
        let base = *self.delays.get(usize::try_from(attempts_done).ok()?)?;
        if self.jitter <= 0.0 || base.is_zero() {
            return Some(base);
        }
        let factor = 1.0 + self.jitter * (rand::random::<f64>() * 2.0 - 1.0);
        Some(base.mul_f64(factor.max(0.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_schedule_lasts_about_three_days() {
        let s = RetrySchedule::standard();
        assert_eq!(s.delays.len(), 12);
        assert_eq!(s.next_delay(0), Some(Duration::ZERO));
        let total: f64 = (0..12).map(|i| s.delays[i].as_secs_f64()).sum();
        assert!((2.5 * 86_400.0..3.0 * 86_400.0).contains(&total), "{total}");
        let d = s.next_delay(1).unwrap();
        assert!(d >= Duration::from_millis(4500) && d <= Duration::from_millis(5500), "{d:?}");
        assert_eq!(s.next_delay(12), None);
    }

    #[test]
    fn parse_seconds_and_millis() {
        let s = RetrySchedule::parse("0, 50ms,2").unwrap().unwrap();
        assert_eq!(s.delays, vec![Duration::ZERO, Duration::from_millis(50), Duration::from_secs(2)]);
        assert_eq!(RetrySchedule::parse(" ").unwrap(), None);
        assert!(RetrySchedule::parse("1,x").is_err());
    }
}
