//! The shared fixed-window check: one Lua script, atomic in Redis, so any
//! number of replicas count against one number (see `window` for the rule).

use fred::clients::Pool;
use fred::interfaces::ClientLike;
use fred::types::scripts::Script;

use crate::cache::{CacheError, RedisCache};

/// Several checks, all or nothing. KEYS[i] the i-th window's counter;
/// ARGV limit, cost, ttl ms of each check in turn. Returns {refused index
/// (0: none), count of each check up to it (after counting, or as it stays
/// when refused)}. One script call for all of a request's limits: one
/// round trip (fred flushes every EVALSHA on its own).
const HIT: &str = r#"
local counts = {0}
for i = 1, #KEYS do
  local limit, cost = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1])
  local c = redis.call('INCRBY', KEYS[i], cost)
  if c == cost then redis.call('PEXPIRE', KEYS[i], ARGV[3 * i]) end
  if c > limit then
    for j = 1, i do redis.call('DECRBY', KEYS[j], tonumber(ARGV[3 * j - 1])) end
    counts[1] = i
    counts[i + 1] = c - cost
    return counts
  end
  counts[i + 1] = c
end
return counts
"#;

/// KEYS[1]; ARGV cost. Never below zero.
const REFUND: &str = r#"
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c <= 0 then return 0 end
local cost = math.min(c, tonumber(ARGV[1]))
return redis.call('DECRBY', KEYS[1], cost)
"#;

pub struct RedisWindows {
    pool: Pool,
    prefix: String,
    hit: Script,
    refund: Script,
}

impl RedisWindows {
    pub fn new(cache: &RedisCache) -> Self {
        Self {
            pool: cache.pool().clone(),
            prefix: format!("{}rl:", cache.prefix()),
            hit: Script::from_lua(HIT),
            refund: Script::from_lua(REFUND),
        }
    }

    /// `checks`: (key, limit, cost, ttl ms). See [`HIT`].
    pub async fn hit_all(
        &self,
        checks: &[(&str, u64, u64, i64)],
    ) -> Result<(Option<usize>, Vec<u64>), CacheError> {
        let client = self.pool.next();
        if !client.is_connected() {
            return Err(CacheError::Disconnected);
        }
        let keys: Vec<String> = checks.iter().map(|(k, ..)| format!("{}{k}", self.prefix)).collect();
        let args: Vec<String> = checks
            .iter()
            .flat_map(|&(_, limit, cost, ttl_ms)| {
                [limit.to_string(), cost.to_string(), ttl_ms.max(1).to_string()]
            })
            .collect();
        let reply: Vec<i64> = self.hit.evalsha_with_reload(client, keys, args).await?;
        let refused = reply.first().copied().unwrap_or(0);
        let refused = usize::try_from(refused).ok().filter(|&i| i > 0).map(|i| i - 1);
        let counts = reply.iter().skip(1).map(|&c| u64::try_from(c).unwrap_or(0)).collect();
        Ok((refused, counts))
    }

    pub async fn refund(&self, key: &str, cost: u64) -> Result<(), CacheError> {
        let client = self.pool.next();
        let _: i64 = self
            .refund
            .evalsha_with_reload(client, vec![format!("{}{key}", self.prefix)], vec![cost.to_string()])
            .await?;
        Ok(())
    }
}
