//! Signed download links: `GET /api/v1/media/{id}?expires=<unix>&sig=<…>`
//! works without a credential until `expires`. `sig` is the HMAC-SHA256
//! (base64url) of `<id>.<expires>` under the link secret
//! (`WAGATE_MEDIA_LINK_SECRET`, or derived from `JWT_SECRET`: every replica
//! has the same); checked in constant time (`ring::hmac::verify`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

use super::MediaError;

pub struct LinkSigner {
    key: hmac::Key,
}

impl LinkSigner {
    /// From the configured link secret, else one derived from the JWT secret
    /// (an HMAC of a fixed label: a link signature says nothing about it).
    pub fn new(link_secret: Option<&str>, jwt_secret: &str) -> Self {
        let secret = match link_secret {
            Some(s) => s.as_bytes().to_vec(),
            None => {
                let base = hmac::Key::new(hmac::HMAC_SHA256, jwt_secret.as_bytes());
                hmac::sign(&base, b"wagate media links v1").as_ref().to_vec()
            }
        };
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, &secret) }
    }

    fn message(media_id: &str, expires: u64) -> String {
        format!("{media_id}.{expires}")
    }

    pub fn sign(&self, media_id: &str, expires: u64) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, Self::message(media_id, expires).as_bytes()))
    }

    /// Ok when `sig` signs (`media_id`, `expires`) and `expires` is not past `now`.
    pub fn verify(&self, media_id: &str, expires: u64, sig: &str, now: u64) -> Result<(), MediaError> {
        let raw = URL_SAFE_NO_PAD.decode(sig.trim().as_bytes()).map_err(|_| MediaError::BadLink)?;
        hmac::verify(&self.key, Self::message(media_id, expires).as_bytes(), &raw)
            .map_err(|_| MediaError::BadLink)?;
        if expires <= now {
            return Err(MediaError::BadLink);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_id_and_expiry() {
        let s = LinkSigner::new(None, "jwt-secret");
        let sig = s.sign("m1", 100);
        assert!(s.verify("m1", 100, &sig, 99).is_ok());
        assert!(s.verify("m1", 100, &sig, 100).is_err(), "expired");
        assert!(s.verify("m1", 101, &sig, 99).is_err(), "expiry changed");
        assert!(s.verify("m2", 100, &sig, 99).is_err(), "other media");
        assert!(s.verify("m1", 100, "AAAA", 99).is_err());
        assert!(LinkSigner::new(None, "other").verify("m1", 100, &sig, 99).is_err());
    }
}
