//! Redis cache through `fred` (a small connection pool).

use std::time::Duration;

use fred::prelude::*;

use super::CacheError;

#[derive(Clone)]
pub struct RedisCache {
    pool: Pool,
    routes_key: String,
    prefix: String,
}

/// Deletes the key only when it still holds the expected value.
const DEL_IF_EQ: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// Takes the lease when free, renews it when already ours.
const LEASE: &str = "local cur = redis.call('GET', KEYS[1]) \
    if cur == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end \
    if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end \
    return 0";

impl RedisCache {
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, CacheError> {
        let config = Config::from_url(url)?;
        let pool = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(5);
                c.tcp = TcpConfig { nodelay: Some(true), ..Default::default() };
            })
            .with_performance_config(|p| {
                p.default_command_timeout = Duration::from_secs(5);
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build_pool(4)?;
        pool.init().await?;
        Ok(Self { pool, routes_key: format!("{prefix}session_routing"), prefix: prefix.to_owned() })
    }

    fn replica_key(&self, worker_id: &str) -> String {
        format!("{}worker_replica:{worker_id}", self.prefix)
    }

    pub async fn set_route(&self, session_id: &str, worker_id: &str) -> Result<(), CacheError> {
        let _: () = self.pool.hset(&self.routes_key, (session_id, worker_id)).await?;
        Ok(())
    }

    pub async fn get_route(&self, session_id: &str) -> Result<Option<String>, CacheError> {
        Ok(self.pool.hget(&self.routes_key, session_id).await?)
    }

    pub async fn del_route(&self, session_id: &str) -> Result<(), CacheError> {
        let _: () = self.pool.hdel(&self.routes_key, session_id).await?;
        Ok(())
    }

    pub async fn set_worker_replica(
        &self,
        worker_id: &str,
        replica: &str,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let _: () = self
            .pool
            .set(self.replica_key(worker_id), replica, Some(Expiration::EX(secs)), None, false)
            .await?;
        Ok(())
    }

    pub async fn get_worker_replica(&self, worker_id: &str) -> Result<Option<String>, CacheError> {
        Ok(self.pool.get(self.replica_key(worker_id)).await?)
    }

    pub async fn clear_worker_replica(&self, worker_id: &str, replica: &str) -> Result<(), CacheError> {
        let _: i64 =
            self.pool.next().eval(DEL_IF_EQ, vec![self.replica_key(worker_id)], vec![replica]).await?;
        Ok(())
    }

    pub async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, CacheError> {
        let ms = i64::try_from(ttl.as_millis().max(1)).unwrap_or(i64::MAX);
        let got: i64 = self
            .pool
            .next()
            .eval(
                LEASE,
                vec![format!("{}lease:{name}", self.prefix)],
                vec![holder.to_owned(), ms.to_string()],
            )
            .await?;
        Ok(got == 1)
    }

    pub async fn deny_token(&self, jti: &str, ttl: Duration) -> Result<(), CacheError> {
        let ms = i64::try_from(ttl.as_millis().max(1)).unwrap_or(i64::MAX);
        let key = format!("{}jwt_deny:{jti}", self.prefix);
        let _: () = self.pool.set(key, 1, Some(Expiration::PX(ms)), None, false).await?;
        Ok(())
    }

    pub async fn is_token_denied(&self, jti: &str) -> Result<bool, CacheError> {
        let n: i64 = self.pool.exists(format!("{}jwt_deny:{jti}", self.prefix)).await?;
        Ok(n > 0)
    }

    pub async fn ping(&self) -> Result<(), CacheError> {
        let _: String = self.pool.ping(None).await?;
        Ok(())
    }
}
