//! Custody of WhatsApp auth-state snapshots: the newest snapshot per session,
//! encrypted at rest with AES-256-GCM (random 96-bit nonce, the session id as
//! associated data so a row cannot be replayed onto another session). The key
//! id is stored beside the ciphertext so keys can rotate: new snapshots use
//! the active key, older rows stay readable with retired keys.

use std::collections::HashMap;

use crate::persistence::DbErr;
use chrono::Utc;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::persistence::{Db, auth_states};

#[derive(Debug, thiserror::Error)]
pub enum CustodyError {
    #[error("auth-state key {0:?} must be 64 hex characters (32 bytes)")]
    BadKey(String),
    #[error("auth-state key id {0:?} is not configured")]
    UnknownKey(String),
    #[error("auth-state ciphertext does not authenticate")]
    Tampered,
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

pub struct Vault {
    active_id: String,
    keys: HashMap<String, LessSafeKey>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("active_id", &self.active_id).field("keys", &self.keys.len()).finish()
    }
}

fn parse_key(hex_key: &str) -> Result<LessSafeKey, CustodyError> {
    let bytes = hex::decode(hex_key.trim()).map_err(|_| CustodyError::BadKey(redact(hex_key)))?;
    let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| CustodyError::BadKey(redact(hex_key)))?;
    Ok(LessSafeKey::new(unbound))
}

fn redact(k: &str) -> String {
    format!("{}…", k.chars().take(4).collect::<String>())
}

impl Vault {
    /// `active` is (key id, 64 hex chars); `retired` are older keys that can
    /// still decrypt.
    pub fn new(
        active_id: &str,
        active_hex: &str,
        retired: &[(String, String)],
    ) -> Result<Self, CustodyError> {
        let mut keys = HashMap::new();
        for (id, hex_key) in retired {
            keys.insert(id.clone(), parse_key(hex_key)?);
        }
        keys.insert(active_id.to_owned(), parse_key(active_hex)?);
        Ok(Self { active_id: active_id.to_owned(), keys })
    }

    /// Returns (key id, nonce, ciphertext ‖ tag).
    pub fn seal(&self, session_id: &str, plaintext: &[u8]) -> (String, Vec<u8>, Vec<u8>) {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut in_out = plaintext.to_vec();
        let key = &self.keys[&self.active_id];
        // Sealing with a valid key and a fresh nonce cannot fail.
        let _ = key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(session_id.as_bytes()),
            &mut in_out,
        );
        (self.active_id.clone(), nonce_bytes.to_vec(), in_out)
    }

    pub fn open(
        &self,
        session_id: &str,
        key_id: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, CustodyError> {
        let key = self.keys.get(key_id).ok_or_else(|| CustodyError::UnknownKey(key_id.to_owned()))?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CustodyError::Tampered)?;
        let mut buf = ciphertext.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(session_id.as_bytes()), &mut buf)
            .map_err(|_| CustodyError::Tampered)?;
        Ok(plain.to_vec())
    }
}

/// Stores the newest snapshot of a session (older generations never
/// overwrite newer ones).
pub async fn store(
    db: &Db,
    vault: &Vault,
    session_id: &str,
    generation: u64,
    data: &[u8],
) -> Result<u64, CustodyError> {
    let (key_id, nonce, ciphertext) = vault.seal(session_id, data);
    let generation = i64::try_from(generation).unwrap_or(i64::MAX);
    let sealed = auth_states::Sealed { key_id, nonce, ciphertext };
    Ok(auth_states::upsert(db, session_id, sealed, generation, Utc::now()).await?)
}

/// Forgets a session's credentials (logged out); true when it had some.
pub async fn wipe(db: &Db, session_id: &str) -> Result<bool, CustodyError> {
    Ok(auth_states::delete(db, session_id).await? > 0)
}

/// Whether a session has stored credentials (it paired at least once and
/// was not logged out since).
pub async fn held(db: &Db, session_id: &str) -> Result<bool, CustodyError> {
    Ok(auth_states::get(db, session_id).await?.is_some())
}

/// The newest snapshot of a session, decrypted; `None` when it has none.
pub async fn load(db: &Db, vault: &Vault, session_id: &str) -> Result<Option<Vec<u8>>, CustodyError> {
    let Some(s) = auth_states::get(db, session_id).await? else { return Ok(None) };
    vault.open(session_id, &s.key_id, &s.nonce, &s.ciphertext).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_rotate_and_tamper() {
        let k1 = "11".repeat(32);
        let k2 = "22".repeat(32);
        let old = Vault::new("k1", &k1, &[]).unwrap();
        let (kid, nonce, ct) = old.seal("s1", b"secret creds");
        assert_eq!(kid, "k1");
        assert!(!ct.windows(6).any(|w| w == b"secret"), "ciphertext must not contain plaintext");
        // rotated: k2 active, k1 retired still opens old rows
        let new = Vault::new("k2", &k2, &[("k1".into(), k1.clone())]).unwrap();
        assert_eq!(new.open("s1", &kid, &nonce, &ct).unwrap(), b"secret creds");
        assert_eq!(new.seal("s1", b"x").0, "k2");
        // bound to the session id
        assert!(new.open("s2", &kid, &nonce, &ct).is_err());
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert!(new.open("s1", &kid, &nonce, &bad).is_err());
        assert!(Vault::new("k", "zz", &[]).is_err());
    }
}
