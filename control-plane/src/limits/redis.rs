//! The shared check: one Lua script, atomic in Redis, so any number of
//! replicas count against one number (see `window` for the rules: a fixed
//! window is a counter, a sliding one a sorted set of unit times).

use fred::clients::Pool;
use fred::interfaces::ClientLike;
use fred::types::scripts::Script;

use super::window::{Shape, Tally};
use crate::cache::{CacheError, RedisCache};

/// Several checks, all or nothing. KEYS[i] the i-th check's key; ARGV[1]
/// now (epoch ms, the limiter's clock), ARGV[2] a nonce unique to this call
/// (names the units it adds to sliding logs), then per check: sliding (0
/// or 1), limit, cost, and the counter's ttl (fixed) or the window (sliding)
/// in ms. Returns {refused index (0: none), then per check up to it: count
/// (after counting, or as it stays when refused), ms until units leave a
/// sliding window (-1: fixed, or no wait makes room)}. One script call for
/// all of a request's limits: one round trip (fred flushes every EVALSHA on
/// its own).
const HIT: &str = r#"
local now, nonce = tonumber(ARGV[1]), ARGV[2]
local function arg(i, j) return ARGV[2 + 4 * (i - 1) + j] end
local function undo(upto)
  for j = 1, upto do
    local cost = tonumber(arg(j, 3))
    if arg(j, 1) == '1' then
      for u = 1, cost do redis.call('ZREM', KEYS[j], nonce .. ':' .. j .. ':' .. u) end
    else
      redis.call('DECRBY', KEYS[j], cost)
    end
  end
end
local out = {0}
for i = 1, #KEYS do
  local limit, cost, ms = tonumber(arg(i, 2)), tonumber(arg(i, 3)), tonumber(arg(i, 4))
  if arg(i, 1) == '1' then
    local start = now - ms
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', start)
    local c = redis.call('ZCARD', KEYS[i])
    if c + cost > limit then
      local frees, need = -1, c + cost - limit
      if need <= c then
        local e = redis.call('ZRANGE', KEYS[i], need - 1, need - 1, 'WITHSCORES')
        frees = tonumber(e[2]) - start
      end
      undo(i - 1)
      out[1] = i
      out[2 * i] = c
      out[2 * i + 1] = frees
      return out
    end
    for u = 1, cost do redis.call('ZADD', KEYS[i], now, nonce .. ':' .. i .. ':' .. u) end
    redis.call('PEXPIRE', KEYS[i], ms)
    local e = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    out[2 * i] = c + cost
    out[2 * i + 1] = e[2] and (tonumber(e[2]) - start) or -1
  else
    local c = redis.call('INCRBY', KEYS[i], cost)
    if c == cost then redis.call('PEXPIRE', KEYS[i], ms) end
    if c > limit then
      redis.call('DECRBY', KEYS[i], cost)
      undo(i - 1)
      out[1] = i
      out[2 * i] = c - cost
      out[2 * i + 1] = -1
      return out
    end
    out[2 * i] = c
    out[2 * i + 1] = -1
  end
end
return out
"#;

/// KEYS[1]; ARGV cost, sliding (0 or 1). Never below zero; a sliding log
/// gives back its latest units.
const REFUND: &str = r#"
local cost = tonumber(ARGV[1])
if ARGV[2] == '1' then
  return #redis.call('ZPOPMAX', KEYS[1], cost)
end
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c <= 0 then return 0 end
return redis.call('DECRBY', KEYS[1], math.min(c, cost))
"#;

/// One check as the script takes it.
pub struct Shared<'a> {
    pub key: &'a str,
    pub shape: Shape,
    pub limit: u64,
    pub cost: u64,
    /// Fixed: the counter's ttl; sliding: the window.
    pub ms: i64,
}

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

    /// See [`HIT`].
    pub async fn hit_all(
        &self,
        now: i64,
        checks: &[Shared<'_>],
    ) -> Result<(Option<usize>, Vec<Tally>), CacheError> {
        let client = self.pool.next();
        if !client.is_connected() {
            return Err(CacheError::Disconnected);
        }
        let keys: Vec<String> = checks.iter().map(|c| format!("{}{}", self.prefix, c.key)).collect();
        let nonce = format!("{:016x}", rand::random::<u64>());
        let mut args: Vec<String> = vec![now.to_string(), nonce];
        for c in checks {
            args.extend([
                u8::from(c.shape == Shape::Sliding).to_string(),
                c.limit.to_string(),
                c.cost.to_string(),
                c.ms.max(1).to_string(),
            ]);
        }
        let reply: Vec<i64> = self.hit.evalsha_with_reload(client, keys, args).await?;
        let refused = reply.first().copied().unwrap_or(0);
        let refused = usize::try_from(refused).ok().filter(|&i| i > 0).map(|i| i - 1);
        let tallies = reply
            .get(1..)
            .unwrap_or_default()
            .chunks(2)
            .map(|pair| Tally {
                count: u64::try_from(pair[0]).unwrap_or(0),
                frees_in: pair.get(1).copied().filter(|&ms| ms >= 0),
            })
            .collect();
        Ok((refused, tallies))
    }

    pub async fn refund(&self, key: &str, shape: Shape, cost: u64) -> Result<(), CacheError> {
        let client = self.pool.next();
        let sliding = u8::from(shape == Shape::Sliding).to_string();
        let _: i64 = self
            .refund
            .evalsha_with_reload(
                client,
                vec![format!("{}{key}", self.prefix)],
                vec![cost.to_string(), sliding],
            )
            .await?;
        Ok(())
    }
}
