//! Password hashing with argon2id (on the blocking pool: it is slow on purpose).

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::error::CpError;

/// argon2id allocates its memory cost (19 MiB by default) per hash; running
/// every concurrent sign-up or login at once would multiply that (and the
/// allocator keeps the peak). At most this many hash at a time.
const MAX_CONCURRENT_HASHES: usize = 2;

static HASH_PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_HASHES);

pub async fn hash(password: String) -> Result<String, CpError> {
    let _permit = HASH_PERMITS.acquire().await.map_err(|e| CpError::Hashing(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| CpError::Hashing(e.to_string()))
    })
    .await
    .map_err(|e| CpError::Hashing(e.to_string()))?
}

/// Verifies `password` against a stored PHC string. A malformed stored hash
/// never matches.
pub async fn verify(password: String, stored: String) -> Result<bool, CpError> {
    let _permit = HASH_PERMITS.acquire().await.map_err(|e| CpError::Hashing(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
    })
    .await
    .map_err(|e| CpError::Hashing(e.to_string()))
}

/// A valid hash of a random password: verifying against it costs the same as
/// a real check, so a login for an unknown email takes as long as a wrong
/// password (no user enumeration by timing).
pub async fn dummy_hash() -> String {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_init(|| async { hash(crate::config::random_secret()).await.unwrap_or_default() })
        .await
        .clone()
}

/// One password check at a time per account: a flood of guesses on one
/// account holds at most one of the [`MAX_CONCURRENT_HASHES`] hashing slots,
/// so other users' logins are not queued behind it.
#[derive(Default)]
pub struct Turns {
    waiting: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
}

/// The account's turn; the next attempt on it goes when this is dropped.
pub struct Turn<'a> {
    turns: &'a Turns,
    key: String,
    lock: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Turns {
    fn map(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>
    {
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for `key`'s turn.
    pub async fn take(&self, key: &str) -> Turn<'_> {
        let lock = self.map().entry(key.to_owned()).or_default().clone();
        let guard = lock.clone().lock_owned().await;
        Turn { turns: self, key: key.to_owned(), lock: Some(lock), guard: Some(guard) }
    }

    /// Accounts with an attempt in progress or waiting (the unit tests check it drains).
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.map().is_empty()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let Some(lock) = self.lock.take() else { return };
        let mut map = self.turns.map();
        // Forget the account once nobody else holds or waits for its lock.
        if map.get(&self.key).is_some_and(|l| std::sync::Arc::ptr_eq(l, &lock))
            && std::sync::Arc::strong_count(&lock) == 2
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn turns_serialise_one_account_and_are_forgotten() {
        let turns = super::Turns::default();
        let a = turns.take("a@x").await;
        // another account is not blocked
        let b = turns.take("b@x").await;
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), turns.take("a@x")).await;
        assert!(waited.is_err(), "a second attempt on the same account waits");
        drop(a);
        let a2 = turns.take("a@x").await;
        drop((a2, b));
        assert!(turns.is_empty());
    }

    #[tokio::test]
    async fn hash_verifies_only_the_right_password() {
        let h = super::hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify("correct horse".into(), h.clone()).await.unwrap());
        assert!(!super::verify("wrong horse".into(), h).await.unwrap());
        assert!(!super::verify("x".into(), "not a hash".into()).await.unwrap());
    }
}
