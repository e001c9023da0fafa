//! The cache layer: worker → replica records, leases, the token deny-list,
//! rate-limit counters and the invalidation bus. (No session → worker
//! routes: the session row names its worker, and nothing read a cached copy.)
//!
//! Redis (through `fred`) when `REDIS_URL` is set, an in-process map
//! otherwise. The database stays the source of truth: a cache miss falls back
//! to SQL and refills the cache. Every key carries a configurable prefix so
//! that several deployments (or tests) share one Redis.

mod memory;
mod redis;

use std::time::Duration;

pub use memory::MemoryCache;
pub use redis::RedisCache;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("redis is not connected")]
    Disconnected,
}

/// The cache backend (enum dispatch: no boxing on the hot path).
#[derive(Clone)]
pub enum Cache {
    Memory(MemoryCache),
    Redis(RedisCache),
}

impl Cache {
    /// Connects to Redis when `redis_url` is set, otherwise in-process.
    pub async fn connect(redis_url: Option<&str>, prefix: &str) -> Result<Self, CacheError> {
        match redis_url {
            Some(url) if !url.is_empty() => Ok(Cache::Redis(RedisCache::connect(url, prefix).await?)),
            _ => Ok(Cache::Memory(MemoryCache::default())),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Cache::Memory(_) => "memory",
            Cache::Redis(_) => "redis",
        }
    }

    /// Records which control-plane replica (its advertised internal address)
    /// holds a worker's stream; returns the replica recorded before, if any.
    pub async fn set_worker_replica(
        &self,
        worker_id: &str,
        replica: &str,
        ttl: Duration,
    ) -> Result<Option<String>, CacheError> {
        match self {
            Cache::Memory(c) => Ok(c.set_worker_replica(worker_id, replica, ttl)),
            Cache::Redis(c) => c.set_worker_replica(worker_id, replica, ttl).await,
        }
    }

    /// Renews the record's TTL if it is absent or names `replica`; false
    /// when another replica holds the worker's stream now.
    pub async fn refresh_worker_replica(
        &self,
        worker_id: &str,
        replica: &str,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        match self {
            Cache::Memory(c) => Ok(c.refresh_worker_replica(worker_id, replica, ttl)),
            Cache::Redis(c) => c.refresh_worker_replica(worker_id, replica, ttl).await,
        }
    }

    /// Publishes an invalidation message to every replica (this one too).
    pub async fn publish(&self, message: &str) -> Result<(), CacheError> {
        match self {
            Cache::Memory(c) => {
                c.publish(message);
                Ok(())
            }
            Cache::Redis(c) => c.publish(message).await,
        }
    }

    /// Invalidation messages from every replica.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<String> {
        match self {
            Cache::Memory(c) => c.subscribe(),
            Cache::Redis(c) => c.subscribe(),
        }
    }

    pub async fn get_worker_replica(&self, worker_id: &str) -> Result<Option<String>, CacheError> {
        match self {
            Cache::Memory(c) => Ok(c.get_worker_replica(worker_id)),
            Cache::Redis(c) => c.get_worker_replica(worker_id).await,
        }
    }

    /// Forgets the replica record, but only if it still names `replica`.
    pub async fn clear_worker_replica(&self, worker_id: &str, replica: &str) -> Result<(), CacheError> {
        match self {
            Cache::Memory(c) => {
                c.clear_worker_replica(worker_id, replica);
                Ok(())
            }
            Cache::Redis(c) => c.clear_worker_replica(worker_id, replica).await,
        }
    }

    /// Takes or renews a named lease for `holder` (one replica runs each
    /// periodic sweep). True when `holder` holds it now.
    pub async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, CacheError> {
        match self {
            Cache::Memory(c) => Ok(c.try_lease(name, holder, ttl)),
            Cache::Redis(c) => c.try_lease(name, holder, ttl).await,
        }
    }

    /// Revokes one access token (logout) until it would have expired anyway.
    pub async fn deny_token(&self, jti: &str, ttl: Duration) -> Result<(), CacheError> {
        match self {
            Cache::Memory(c) => {
                c.deny_token(jti, ttl);
                Ok(())
            }
            Cache::Redis(c) => c.deny_token(jti, ttl).await,
        }
    }

    pub async fn is_token_denied(&self, jti: &str) -> Result<bool, CacheError> {
        match self {
            Cache::Memory(c) => Ok(c.is_token_denied(jti)),
            Cache::Redis(c) => c.is_token_denied(jti).await,
        }
    }

    /// Whether any of `keys` is on the deny-list (one round trip).
    pub async fn any_token_denied(&self, keys: &[String]) -> Result<bool, CacheError> {
        match self {
            Cache::Memory(c) => Ok(keys.iter().any(|k| c.is_token_denied(k))),
            Cache::Redis(c) => c.any_token_denied(keys).await,
        }
    }

    pub async fn ping(&self) -> Result<(), CacheError> {
        match self {
            Cache::Memory(_) => Ok(()),
            Cache::Redis(c) => c.ping().await,
        }
    }
}
