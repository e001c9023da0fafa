//! Redis cache through `fred` (a small connection pool).

use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::*;

use super::CacheError;

#[derive(Clone)]
pub struct RedisCache {
    pool: Pool,
    prefix: String,
    /// Invalidation messages received on the pub/sub channel.
    bus: tokio::sync::broadcast::Sender<String>,
    _subscriber: SubscriberClient,
}

/// Sets the record if absent or already ours; 0 when another replica holds it.
const REFRESH_IF_OURS: &str = "local cur = redis.call('GET', KEYS[1]) \
    if cur == false or cur == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end \
    return 0";

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
        let subscriber = Builder::from_config(Config::from_url(url)?)
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(5);
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build_subscriber_client()?;
        subscriber.init().await?;
        // Resubscribes after a reconnect.
        drop(subscriber.manage_subscriptions());
        let channel = format!("{prefix}invalidate");
        let mut messages = subscriber.message_rx();
        subscriber.subscribe(channel.clone()).await?;
        let (bus, _) = tokio::sync::broadcast::channel(4096);
        let tx = bus.clone();
        tokio::spawn(async move {
            loop {
                match messages.recv().await {
                    Ok(m) if *m.channel == *channel => {
                        if let Ok(text) = m.value.convert::<String>() {
                            let _ = tx.send(text);
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "invalidation messages lagged: clearing everything");
                        let _ = tx.send("*".to_owned());
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        Ok(Self { pool, prefix: prefix.to_owned(), bus, _subscriber: subscriber })
    }

    /// The connection pool (for features with scripts of their own, e.g. rate limits).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The prefix of every key of this deployment.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Publishes an invalidation to every replica (this one included).
    pub async fn publish(&self, message: &str) -> Result<(), CacheError> {
        let _: i64 = self.pool.next().publish(format!("{}invalidate", self.prefix), message).await?;
        Ok(())
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.bus.subscribe()
    }

    /// Renews the worker record if absent or ours; false when another
    /// replica holds it (our stream is stale).
    pub async fn refresh_worker_replica(
        &self,
        worker_id: &str,
        replica: &str,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let ms = i64::try_from(ttl.as_millis().max(1)).unwrap_or(i64::MAX);
        let got: i64 = self
            .pool
            .next()
            .eval(
                REFRESH_IF_OURS,
                vec![self.replica_key(worker_id)],
                vec![replica.to_owned(), ms.to_string()],
            )
            .await?;
        Ok(got == 1)
    }

    fn replica_key(&self, worker_id: &str) -> String {
        format!("{}worker_replica:{worker_id}", self.prefix)
    }

    pub async fn set_worker_replica(
        &self,
        worker_id: &str,
        replica: &str,
        ttl: Duration,
    ) -> Result<Option<String>, CacheError> {
        let ms = i64::try_from(ttl.as_millis().max(1)).unwrap_or(i64::MAX);
        // SET … GET: the replica that held the stream before, if any.
        let old: Option<String> =
            self.pool.set(self.replica_key(worker_id), replica, Some(Expiration::PX(ms)), None, true).await?;
        Ok(old)
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

    pub async fn any_token_denied(&self, keys: &[String]) -> Result<bool, CacheError> {
        let keys: Vec<String> = keys.iter().map(|k| format!("{}jwt_deny:{k}", self.prefix)).collect();
        let n: i64 = self.pool.exists(keys).await?;
        Ok(n > 0)
    }

    pub async fn ping(&self) -> Result<(), CacheError> {
        let _: String = self.pool.ping(None).await?;
        Ok(())
    }
}
