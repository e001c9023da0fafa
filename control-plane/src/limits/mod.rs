//! Rate limits and quotas: per rule and subject, a fixed-window counter
//! (quotas, the general per-IP limit) or an exact sliding window (login,
//! sign-up, webhook tests: no 2× burst at a window boundary), atomic in
//! Redis (one Lua script per request, over all its counters) so every
//! replica shares one count, in-process on the embedded default with the
//! same rules ([`window`]). While Redis is unreachable each replica falls back to its
//! own in-process counters (limited per replica, never "allow everything",
//! never a 5xx), says so once in the log and in
//! `wagate_ratelimit_fallback`, and goes back to Redis when it answers.
//!
//! Why not a crate: `governor` is in-process GCRA only; the shared Redis
//! check must be a script of our own, and the in-process one must count the
//! same way (and the same fallback must hold both), so both are this
//! module's lines. GCRA was not taken for the sliding rules either: with a
//! burst of `limit` it lets 2 × `limit` − 1 through in one window's length.
//!
//! The rules: the tier message quota ([`quota`]), per-client-IP and
//! session-operation limits ([`layer`]), login (per account and client IP,
//! and per client IP) and register limits (`services::auth`), webhook tests
//! per session (`webhooks::service`).

pub mod layer;
pub mod quota;
mod redis;
pub mod window;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use wagate_proto::error::{ApiError, ErrorCode};
use wagate_proto::ratelimit::RateLimitInfo;

use crate::cache::Cache;
pub use window::Shape;
use window::{Hit, MemoryWindows, Tally};

/// One check of [`Limiter::check_all`]: `cost` units of `rule` for `subject` at `rate`.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    pub rule: &'static str,
    pub subject: &'a str,
    pub rate: Rate,
    pub cost: u64,
}

/// `limit` units per `window`, counted in fixed windows unless [`Rate::sliding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: u64,
    pub window: Duration,
    pub shape: Shape,
}

impl Rate {
    pub const fn new(limit: u64, window: Duration) -> Self {
        Self { limit, window, shape: Shape::Fixed }
    }

    /// The same rate over a sliding window: at most `limit` in any `window`.
    pub const fn sliding(self) -> Self {
        Self { shape: Shape::Sliding, ..self }
    }

    /// Parses `"<count>/<duration>"` (`1000/15m`, `60/1m`, `10/1h`, `5/30s`);
    /// `off` or `0` disables the rule (`None`).
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") || raw == "0" {
            return Ok(None);
        }
        let (count, per) = raw.split_once('/').ok_or_else(|| format!("`{raw}` is not <count>/<duration>"))?;
        let limit: u64 = count.trim().parse().map_err(|_| format!("`{count}` is not a count"))?;
        let per = per.trim();
        let split = per.find(|c: char| !c.is_ascii_digit()).unwrap_or(per.len());
        let (n, unit) = per.split_at(split);
        let n: u64 =
            if n.is_empty() { 1 } else { n.parse().map_err(|_| format!("`{per}` is not a duration"))? };
        let secs = match unit {
            "s" | "" => n,
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86_400,
            _ => return Err(format!("`{per}`: use s, m, h or d")),
        };
        if limit == 0 {
            return Ok(None);
        }
        if secs == 0 {
            return Err(format!("`{per}` is not a positive duration"));
        }
        Ok(Some(Self::new(limit, Duration::from_secs(secs))))
    }

    pub fn window_ms(&self) -> i64 {
        i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX).max(1)
    }

    /// "hour", "minute", "15 minutes"… for messages.
    pub fn per(&self) -> String {
        match self.window.as_secs() {
            3600 => "hour".to_owned(),
            60 => "minute".to_owned(),
            86_400 => "day".to_owned(),
            s if s % 3600 == 0 => format!("{} hours", s / 3600),
            s if s % 60 == 0 => format!("{} minutes", s / 60),
            s => format!("{s} seconds"),
        }
    }

    /// "100 per hour".
    pub fn describe(&self) -> String {
        format!("{} per {}", self.limit, self.per())
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    /// Units left in the window after this check.
    pub remaining: u64,
    /// Until the window resets.
    pub reset: Duration,
}

impl Decision {
    /// What an empty check answers (never returned in practice).
    fn unlimited(rate: Rate) -> Self {
        Self { allowed: true, limit: rate.limit, remaining: rate.limit, reset: Duration::ZERO }
    }

    pub fn info(&self) -> RateLimitInfo {
        RateLimitInfo { limit: self.limit, remaining: self.remaining, reset_secs: self.retry_after_secs() }
    }

    /// Whole seconds until the window resets (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        self.reset.as_millis().div_ceil(1000).max(1).try_into().unwrap_or(u64::MAX)
    }

    /// The 429 for a refused check: `RATE_LIMITED`, `Retry-After` and the
    /// `ratelimit-*` details.
    pub fn refusal(&self, message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::RateLimited, message)
            .with_retry_after(self.retry_after_secs())
            .with_rate_limit(self.info())
    }
}

/// The time the windows are computed from: the system clock, or a manual
/// one tests move forward (the window roll-over without sleeping).
#[derive(Clone, Debug)]
pub enum Clock {
    System,
    Manual(Arc<AtomicI64>),
}

impl Clock {
    pub fn manual(start_ms: i64) -> Self {
        Clock::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => chrono::Utc::now().timestamp_millis(),
            Clock::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock (no-op on the system clock).
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(t) = self {
            t.fetch_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX), Ordering::SeqCst);
        }
    }

    pub fn set(&self, ms: i64) {
        if let Clock::Manual(t) = self {
            t.store(ms, Ordering::SeqCst);
        }
    }
}

/// How long a Redis check may take before the in-process fallback answers.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// After a Redis failure, how long checks stay in-process before Redis is tried again.
const REDIS_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The limiter of one replica.
pub struct Limiter {
    shared: Option<redis::RedisWindows>,
    local: MemoryWindows,
    clock: Clock,
    /// `tokio::time::Instant` as ms since `epoch` when Redis may be tried again.
    retry_redis_at: AtomicI64,
    epoch: tokio::time::Instant,
    on_fallback: AtomicBool,
}

impl Limiter {
    /// Shared through Redis when `cache` is Redis, in-process otherwise.
    pub fn new(cache: &Cache, clock: Clock) -> Self {
        let shared = match cache {
            Cache::Redis(r) => Some(redis::RedisWindows::new(r)),
            Cache::Memory(_) => None,
        };
        ::metrics::gauge!("wagate_ratelimit_fallback").set(0.0);
        Self {
            shared,
            local: MemoryWindows::default(),
            clock,
            retry_redis_at: AtomicI64::new(0),
            epoch: tokio::time::Instant::now(),
            on_fallback: AtomicBool::new(false),
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// True while checks are answered in-process because Redis is unreachable.
    pub fn on_fallback(&self) -> bool {
        self.on_fallback.load(Ordering::Relaxed)
    }

    /// Counts `cost` units of `rule` for `subject` unless that passes
    /// `rate`; a refused check counts nothing. `cost` 0 only reads.
    pub async fn check(&self, rule: &'static str, subject: &str, rate: Rate, cost: u64) -> Decision {
        match self.check_all(&[Check { rule, subject, rate, cost }]).await {
            Ok(mut d) => d.pop().unwrap_or_else(|| Decision::unlimited(rate)),
            Err((_, d)) => d,
        }
    }

    /// Several checks of one request in one step (one Redis round trip),
    /// all or nothing: `Ok` with each check's decision when all pass, else
    /// the index and decision of the refused one (and nothing counted).
    pub async fn check_all(&self, checks: &[Check<'_>]) -> Result<Vec<Decision>, (usize, Decision)> {
        let now = self.clock.now_ms();
        let keys: Vec<(String, i64, i64)> =
            checks.iter().map(|c| key_of(c.rule, c.subject, c.rate, now)).collect();
        let hits: Vec<Hit<'_>> = checks
            .iter()
            .zip(&keys)
            .map(|(c, (key, start, end))| Hit {
                key,
                shape: c.rate.shape,
                start: *start,
                end: *end,
                limit: c.rate.limit,
                cost: c.cost,
            })
            .collect();
        let (refused, tallies) = match self.shared_hit(&hits, now).await {
            Some(r) => r,
            None => self.local.hit_all(now, &hits),
        };
        let decision = |i: usize| {
            let (c, h) = (&checks[i], &hits[i]);
            let allowed = refused != Some(i);
            ::metrics::counter!("wagate_ratelimit_checks_total", "rule" => c.rule, "allowed" => if allowed { "true" } else { "false" })
                .increment(1);
            let tally = tallies.get(i).copied().unwrap_or(Tally { count: 0, frees_in: None });
            let reset_ms = match c.rate.shape {
                Shape::Fixed => h.end - now,
                // Until units leave the window; a window's length when no wait helps.
                Shape::Sliding => tally.frees_in.unwrap_or_else(|| c.rate.window_ms()),
            };
            Decision {
                allowed,
                limit: c.rate.limit,
                remaining: c.rate.limit.saturating_sub(tally.count),
                reset: Duration::from_millis(u64::try_from(reset_ms).unwrap_or(0)),
            }
        };
        match refused {
            Some(i) => Err((i, decision(i))),
            None => Ok((0..checks.len()).map(decision).collect()),
        }
    }

    /// Gives back `cost` units counted by [`Limiter::check`] for a call that
    /// did not happen after all (best effort; on a sliding window, the
    /// subject's latest units).
    pub async fn refund(&self, rule: &str, subject: &str, rate: Rate, cost: u64) {
        let (key, _, end) = key_of(rule, subject, rate, self.clock.now_ms());
        if let Some(shared) = &self.shared
            && !self.on_fallback()
            && tokio::time::timeout(REDIS_TIMEOUT, shared.refund(&key, rate.shape, cost))
                .await
                .is_ok_and(|r| r.is_ok())
        {
            return;
        }
        self.local.refund(&key, rate.shape, end, cost);
    }

    /// The Redis answer, or `None` when there is no Redis or it failed (then
    /// the caller counts in-process).
    async fn shared_hit(&self, hits: &[Hit<'_>], now: i64) -> Option<(Option<usize>, Vec<Tally>)> {
        let shared = self.shared.as_ref()?;
        let elapsed = self.elapsed_ms();
        if elapsed < self.retry_redis_at.load(Ordering::Relaxed) {
            return None;
        }
        let checks: Vec<redis::Shared<'_>> = hits
            .iter()
            .map(|h| redis::Shared {
                key: h.key,
                shape: h.shape,
                limit: h.limit,
                cost: h.cost,
                ms: match h.shape {
                    Shape::Fixed => h.end - now + 1000,
                    Shape::Sliding => h.end - h.start,
                },
            })
            .collect();
        let result = tokio::time::timeout(REDIS_TIMEOUT, shared.hit_all(now, &checks)).await;
        match result {
            Ok(Ok(r)) => {
                if self.on_fallback.swap(false, Ordering::Relaxed) {
                    tracing::info!("redis answers again: rate limits are shared across replicas again");
                    ::metrics::gauge!("wagate_ratelimit_fallback").set(0.0);
                }
                Some(r)
            }
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                let retry = i64::try_from(REDIS_RETRY_AFTER.as_millis()).unwrap_or(1000);
                self.retry_redis_at.store(elapsed + retry, Ordering::Relaxed);
                ::metrics::counter!("wagate_ratelimit_fallback_total").increment(1);
                if !self.on_fallback.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error,
                        "redis unreachable: rate limits fall back to this replica's own counters"
                    );
                    ::metrics::gauge!("wagate_ratelimit_fallback").set(1.0);
                }
                None
            }
        }
    }

    fn elapsed_ms(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }
}

/// The key of `rule` for `subject` at `now`, with the bounds of its
/// window: fixed, `rule:subject:<window start>` and `[start, end)`;
/// sliding, `s:rule:subject` and `(now - window, now]`.
fn key_of(rule: &str, subject: &str, rate: Rate, now: i64) -> (String, i64, i64) {
    match rate.shape {
        Shape::Fixed => {
            let (start, end) = window::bounds(now, rate.window_ms());
            (format!("{rule}:{subject}:{start}"), start, end)
        }
        Shape::Sliding => (format!("s:{rule}:{subject}"), now - rate.window_ms(), now),
    }
}

/// Limit settings (environment variables `WAGATE_LIMIT_*` and `WAGATE_QUOTA_*`).
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// Messages per hour for BASIC users (`0`: unlimited).
    #[arg(long, env = "WAGATE_QUOTA_BASIC", default_value_t = 100)]
    pub quota_basic: u64,
    #[arg(long, env = "WAGATE_QUOTA_PRO", default_value_t = 1000)]
    pub quota_pro: u64,
    #[arg(long, env = "WAGATE_QUOTA_MAX", default_value_t = 10_000)]
    pub quota_max: u64,
    /// The quota window in seconds (aligned on the epoch: hourly quotas reset on the hour).
    #[arg(long, env = "WAGATE_QUOTA_WINDOW_SECS", default_value_t = 3600)]
    pub quota_window_secs: u64,
    /// Requests per client IP (`<count>/<duration>`, `off`).
    #[arg(long, env = "WAGATE_LIMIT_IP", default_value = "1000/15m")]
    pub limit_ip: String,
    /// Session operations (create, delete, QR, restart) per client IP.
    #[arg(long, env = "WAGATE_LIMIT_SESSION_OPS", default_value = "60/1m")]
    pub limit_session_ops: String,
    /// Login attempts per account from one client IP, over a sliding window
    /// (every attempt counts; a success gives its unit back).
    #[arg(long, env = "WAGATE_LIMIT_LOGIN_ACCOUNT", default_value = "10/15m")]
    pub limit_login_account: String,
    /// Login attempts per client IP, whatever the account (sliding).
    #[arg(long, env = "WAGATE_LIMIT_LOGIN_IP", default_value = "50/15m")]
    pub limit_login_ip: String,
    /// Sign-ups per client IP (sliding).
    #[arg(long, env = "WAGATE_LIMIT_REGISTER_IP", default_value = "10/1h")]
    pub limit_register_ip: String,
    /// Webhook test deliveries per session (sliding).
    #[arg(long, env = "WAGATE_LIMIT_WEBHOOK_TEST", default_value = "5/1m")]
    pub limit_webhook_test: String,
}

/// Resolved limits; `None` turns a rule off.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    pub quota: quota::TierQuotas,
    pub ip: Option<Rate>,
    pub session_ops: Option<Rate>,
    /// Per account and client IP. This rule and the three below count over
    /// a sliding window whatever the shape given here (they guard against
    /// abuse, where a 2× burst at a boundary matters).
    pub login_account: Option<Rate>,
    pub login_ip: Option<Rate>,
    pub register_ip: Option<Rate>,
    /// `POST /sessions/{id}/webhook/test` per session.
    pub webhook_test: Option<Rate>,
    /// The windows' clock (tests move a manual one).
    pub clock: Clock,
}

impl LimitArgs {
    pub fn into_settings(self) -> Result<LimitSettings, crate::config::ConfigError> {
        let rate = |name: &'static str, raw: &str| {
            Rate::parse(raw).map_err(|reason| crate::config::ConfigError::Invalid { name, reason })
        };
        let window = Duration::from_secs(self.quota_window_secs.max(1));
        let tier = |n: u64| (n > 0).then_some(Rate::new(n, window));
        Ok(LimitSettings {
            quota: quota::TierQuotas {
                basic: tier(self.quota_basic),
                pro: tier(self.quota_pro),
                max: tier(self.quota_max),
                window,
            },
            ip: rate("WAGATE_LIMIT_IP", &self.limit_ip)?,
            session_ops: rate("WAGATE_LIMIT_SESSION_OPS", &self.limit_session_ops)?,
            login_account: rate("WAGATE_LIMIT_LOGIN_ACCOUNT", &self.limit_login_account)?,
            login_ip: rate("WAGATE_LIMIT_LOGIN_IP", &self.limit_login_ip)?,
            register_ip: rate("WAGATE_LIMIT_REGISTER_IP", &self.limit_register_ip)?,
            webhook_test: rate("WAGATE_LIMIT_WEBHOOK_TEST", &self.limit_webhook_test)?,
            clock: Clock::System,
        })
    }
}

impl LimitSettings {
    /// The brief's limits (what the environment defaults give).
    pub fn standard() -> Self {
        let minute = Duration::from_secs(60);
        let hour = Duration::from_secs(3600);
        Self {
            quota: quota::TierQuotas::standard(),
            ip: Some(Rate::new(1000, 15 * minute)),
            session_ops: Some(Rate::new(60, minute)),
            login_account: Some(Rate::new(10, 15 * minute)),
            login_ip: Some(Rate::new(50, 15 * minute)),
            register_ip: Some(Rate::new(10, hour)),
            webhook_test: Some(Rate::new(5, minute)),
            clock: Clock::System,
        }
    }

    /// Every rule on, with limits no test or benchmark reaches by accident
    /// (the counting path still runs on every call); tests of the limits
    /// set their own.
    pub fn generous() -> Self {
        let hour = Duration::from_secs(3600);
        let big = Some(Rate::new(100_000_000, hour));
        Self {
            quota: quota::TierQuotas { basic: big, pro: big, max: big, window: hour },
            ip: big,
            session_ops: big,
            login_account: big,
            login_ip: big,
            register_ip: big,
            webhook_test: big,
            clock: Clock::System,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(Rate::parse("1000/15m").unwrap(), Some(Rate::new(1000, Duration::from_secs(900))));
        assert_eq!(Rate::parse("60/1m").unwrap(), Some(Rate::new(60, Duration::from_secs(60))));
        assert_eq!(Rate::parse("10/h").unwrap(), Some(Rate::new(10, Duration::from_secs(3600))));
        assert_eq!(Rate::parse(" 5 / 30s ").unwrap(), Some(Rate::new(5, Duration::from_secs(30))));
        assert_eq!(Rate::parse("off").unwrap(), None);
        assert_eq!(Rate::parse("0").unwrap(), None);
        assert!(Rate::parse("10").is_err());
        assert!(Rate::parse("ten/1m").is_err());
        assert!(Rate::parse("10/1y").is_err());
        assert!(Rate::parse("10/0s").is_err());
        assert_eq!(Rate::new(100, Duration::from_secs(3600)).describe(), "100 per hour");
    }

    #[tokio::test]
    async fn a_sliding_rule_has_no_burst_at_the_boundary() {
        // 15:14:59 on the quarter-hour grid: a fixed window would end in a second
        let quarter = 900_000;
        let clock = Clock::manual(1_700_002_800_000 + quarter - 1_000);
        let limiter = Limiter::new(&Cache::Memory(Default::default()), clock.clone());
        let rate = Rate::new(3, Duration::from_secs(900)).sliding();
        for _ in 0..3 {
            assert!(limiter.check("login", "a", rate, 1).await.allowed);
        }
        let d = limiter.check("login", "a", rate, 1).await;
        assert!(!d.allowed);
        assert_eq!((d.remaining, d.retry_after_secs()), (0, 900), "the first unit leaves in 15 minutes");
        clock.advance(Duration::from_secs(2));
        let d = limiter.check("login", "a", rate, 1).await;
        assert!(!d.allowed, "a new fixed window, but not a new sliding one");
        assert_eq!(d.retry_after_secs(), 898);
        clock.advance(Duration::from_secs(898));
        for _ in 0..3 {
            assert!(limiter.check("login", "a", rate, 1).await.allowed, "the three left together");
        }
        assert!(!limiter.check("login", "a", rate, 1).await.allowed);
        // a refund gives back the latest unit; the fixed rule beside it is its own key
        limiter.refund("login", "a", rate, 1).await;
        assert!(limiter.check("login", "a", rate, 1).await.allowed);
        assert!(limiter.check("login", "a", Rate::new(3, Duration::from_secs(900)), 1).await.allowed);
    }

    #[tokio::test]
    async fn the_window_rolls_over_on_the_hour() {
        // 10:59:59.000 UTC on some day
        let clock = Clock::manual(1_700_002_800_000 + 3_599_000); // hh:59:59 (the base is on the hour)
        let limiter = Limiter::new(&Cache::Memory(Default::default()), clock.clone());
        let rate = Rate::new(3, Duration::from_secs(3600));
        for left in [2, 1, 0] {
            let d = limiter.check("quota", "u1", rate, 1).await;
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
        }
        let d = limiter.check("quota", "u1", rate, 1).await;
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs(), 1, "one second to the next hour");
        assert_eq!(d.refusal("x").retry_after_secs, Some(1));
        // another subject has its own count
        assert!(limiter.check("quota", "u2", rate, 1).await.allowed);
        clock.advance(Duration::from_millis(999));
        assert!(!limiter.check("quota", "u1", rate, 1).await.allowed, "still the old hour");
        clock.advance(Duration::from_millis(1));
        let d = limiter.check("quota", "u1", rate, 1).await;
        assert!(d.allowed, "a new hour");
        assert_eq!((d.remaining, d.retry_after_secs()), (2, 3600));
    }
}
