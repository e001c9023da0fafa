//! The tier message quota: messages per window (an hour by default) per
//! session owner, BASIC 100 / PRO 1,000 / MAX 10,000 unless an
//! administrator set the user's own quota (`users.message_quota`).

use std::time::Duration;

use super::layer::{self, DeferredIpCheck};
use super::{Check, Decision, Rate};
use crate::persistence::enums::UserTier;
use crate::state::SharedState;

pub const RULE: &str = "quota";

#[derive(Debug, Clone)]
pub struct TierQuotas {
    pub basic: Option<Rate>,
    pub pro: Option<Rate>,
    pub max: Option<Rate>,
    pub window: Duration,
}

impl TierQuotas {
    pub fn standard() -> Self {
        let hour = Duration::from_secs(3600);
        Self {
            basic: Some(Rate::new(100, hour)),
            pro: Some(Rate::new(1000, hour)),
            max: Some(Rate::new(10_000, hour)),
            window: hour,
        }
    }

    /// The quota of a user of `tier` with the administrator's `custom`
    /// quota, if any (`None`: unlimited).
    pub fn rate(&self, tier: UserTier, custom: Option<i64>) -> Option<Rate> {
        if let Some(n) = custom {
            return Some(Rate::new(u64::try_from(n).unwrap_or(0), self.window));
        }
        match tier {
            UserTier::Basic => self.basic,
            UserTier::Pro => self.pro,
            UserTier::Max => self.max,
        }
    }
}

/// The owner of a session, as the send path knows it.
#[derive(Debug, Clone)]
pub struct Owner {
    pub user_id: String,
    pub tier: UserTier,
    pub custom_quota: Option<i64>,
}

/// Counts `count` messages against the owner's quota, together with the
/// client-IP check the layer left to this call (`ip`, taken: one round
/// trip for both, all or nothing). `Ok(None)`: no limit applies; `Ok(Some)`:
/// the decision whose `ratelimit-*` details the answer carries (the quota's
/// when there is one); `Err`: the 429 to answer.
pub async fn take(
    state: &SharedState,
    owner: &Owner,
    count: u64,
    ip: &mut Option<DeferredIpCheck>,
) -> Result<Option<Decision>, wagate_proto::error::ApiError> {
    let rate = state.config.limits.quota.rate(owner.tier, owner.custom_quota);
    let ip = ip.take();
    let mut checks = Vec::with_capacity(2);
    if let Some(ip) = &ip {
        checks.push(Check { rule: layer::RULE_IP, subject: &ip.ip, rate: ip.rate, cost: 1 });
    }
    if let Some(rate) = rate {
        checks.push(Check { rule: RULE, subject: &owner.user_id, rate, cost: count });
    }
    if checks.is_empty() {
        return Ok(None);
    }
    match state.limiter.check_all(&checks).await {
        Ok(mut decisions) => {
            let d = decisions.pop();
            if let (Some(rate), Some(d)) = (rate, &d) {
                notify_threshold(state, owner, rate, d);
            }
            Ok(d)
        }
        Err((i, d)) if checks[i].rule == layer::RULE_IP => Err(layer::ip_refusal(&d, checks[i].rate)),
        Err((i, d)) => {
            notify_threshold(state, owner, checks[i].rate, &d);
            let plan = match owner.custom_quota {
                Some(_) => "your account".to_owned(),
                None => format!("{} tier", owner.tier.as_str()),
            };
            let rate = checks[i].rate;
            Err(d.refusal(format!(
                "Message limit exceeded. {plan} allows {} messages per {}",
                rate.limit,
                rate.per()
            )))
        }
    }
}

/// Tells the owner (once per window and threshold) when the quota reached
/// 80 % or 100 %: only computing here, the lookup and mail go off the send path.
fn notify_threshold(state: &SharedState, owner: &Owner, rate: Rate, d: &Decision) {
    let limit = d.limit.max(1);
    let used = limit.saturating_sub(d.remaining);
    let percent = if !d.allowed || used >= limit {
        100
    } else if used.saturating_mul(5) >= limit.saturating_mul(4) {
        80
    } else {
        return;
    };
    // The window, numbered by its end (stable for every call inside it).
    let window_ms = rate.window_ms().max(1);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let end_ms = now_ms.saturating_add(i64::try_from(d.reset.as_millis()).unwrap_or(i64::MAX / 2));
    let window = end_ms.saturating_add(window_ms / 2) / window_ms;
    crate::email::notify::quota(state, &owner.user_id, percent, rate.limit, rate.per(), window);
}

/// Gives back what [`take`] counted for a send that was not accepted after all.
pub async fn give_back(state: &SharedState, owner: &Owner, count: u64) {
    if let Some(rate) = state.config.limits.quota.rate(owner.tier, owner.custom_quota) {
        state.limiter.refund(RULE, &owner.user_id, rate, count).await;
    }
}
