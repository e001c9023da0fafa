//! Session API keys: `wag_` + 48 hex chars of randomness, shown once, stored
//! as a SHA-256 hash (keys are high-entropy, so a fast hash is the right
//! tool and lets a request be checked with one indexed lookup).

use sha2::{Digest, Sha256};

pub const KEY_PREFIX: &str = "wag_";
const DISPLAY_PREFIX_LEN: usize = 12;

pub struct NewKey {
    pub key: String,
    pub display_prefix: String,
    pub hash: String,
}

pub fn generate() -> NewKey {
    let bytes: [u8; 24] = rand::random();
    let key = format!("{KEY_PREFIX}{}", hex::encode(bytes));
    NewKey { display_prefix: key[..DISPLAY_PREFIX_LEN].to_owned(), hash: hash(&key), key }
}

pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Cheap shape check before touching the database.
pub fn looks_like_key(key: &str) -> bool {
    key.len() == KEY_PREFIX.len() + 48
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_unique_prefixed_and_hashed() {
        let a = super::generate();
        let b = super::generate();
        assert_ne!(a.key, b.key);
        assert!(super::looks_like_key(&a.key));
        assert!(a.key.starts_with(&a.display_prefix));
        assert_eq!(a.hash, super::hash(&a.key));
        assert_ne!(a.hash, a.key);
        assert!(!super::looks_like_key("wag_zz"));
    }
}
