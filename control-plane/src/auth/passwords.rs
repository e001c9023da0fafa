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

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hash_verifies_only_the_right_password() {
        let h = super::hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify("correct horse".into(), h.clone()).await.unwrap());
        assert!(!super::verify("wrong horse".into(), h).await.unwrap());
        assert!(!super::verify("x".into(), "not a hash".into()).await.unwrap());
    }
}
