//! The shared fixed-window check: one Lua script, atomic in Redis, so any
//! number of replicas count against one number (see `window` for the rule).

use fred::clients::Pool;
use fred::interfaces::ClientLike;
use fred::types::scripts::Script;

use crate::cache::{CacheError, RedisCache};

/// KEYS[1] the window's counter; ARGV limit, cost, ttl ms.
/// Returns {allowed (0/1), count after the check}.
const HIT: &str = r#"
local cost = tonumber(ARGV[2])
local c = redis.call('INCRBY', KEYS[1], cost)
if c == cost then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
if c > tonumber(ARGV[1]) then
  redis.call('DECRBY', KEYS[1], cost)
  return {0, c - cost}
end
return {1, c}
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

    pub async fn hit(
        &self,
        key: &str,
        limit: u64,
        cost: u64,
        ttl_ms: i64,
    ) -> Result<(bool, u64), CacheError> {
        let client = self.pool.next();
        if !client.is_connected() {
            return Err(CacheError::Disconnected);
        }
        let (allowed, count): (i64, i64) = self
            .hit
            .evalsha_with_reload(
                client,
                vec![format!("{}{key}", self.prefix)],
                vec![limit.to_string(), cost.to_string(), ttl_ms.max(1).to_string()],
            )
            .await?;
        Ok((allowed == 1, u64::try_from(count).unwrap_or(0)))
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
