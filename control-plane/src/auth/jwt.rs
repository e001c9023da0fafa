//! User tokens: HS256 pinned, with `exp`, `iat`, `iss` and `sub`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    pub email: String,
    pub role: String,
    pub tier: String,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    /// The user's token version at issue time (tokens from before a password
    /// change or logout-all are refused). Absent in older tokens: 0.
    #[serde(default)]
    pub tv: i64,
    /// Token id, the key of the logout deny-list.
    #[serde(default)]
    pub jti: String,
    /// The refresh-token family this token was minted in (one per sign-in):
    /// revoking the family (refresh-token reuse, logout) refuses every
    /// access token of it at once. Absent in older tokens.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fam: String,
}

/// What a token is issued for.
pub struct Subject<'a> {
    pub user_id: &'a str,
    pub email: &'a str,
    pub role: &'a str,
    pub tier: &'a str,
    pub token_version: i64,
    /// The refresh-token family (`fam`).
    pub family: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    ttl: Duration,
}

impl JwtKeys {
    pub fn new(secret: &str, issuer: &str, ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            issuer: issuer.to_owned(),
            ttl,
        }
    }

    pub fn issue(&self, subject: &Subject<'_>) -> Result<(String, DateTime<Utc>), JwtError> {
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::minutes(15));
        let exp = now + ttl;
        let claims = Claims {
            sub: subject.user_id.to_owned(),
            email: subject.email.to_owned(),
            role: subject.role.to_owned(),
            tier: subject.tier.to_owned(),
            iss: self.issuer.clone(),
            iat: now.timestamp(),
            exp: exp.timestamp(),
            tv: subject.token_version,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            fam: subject.family.to_owned(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, exp))
    }

    /// How long an access token lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How late past `exp` a token is still accepted.
    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.validation.leeway)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        Ok(decode::<Claims>(token, &self.decoding, &self.validation)?.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let keys = JwtKeys::new("s3cret", "wagate", Duration::from_secs(60));
        let subject = Subject {
            user_id: "u1",
            email: "a@b.c",
            role: "USER",
            tier: "BASIC",
            token_version: 3,
            family: "f1",
        };
        let (token, _) = keys.issue(&subject).unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.tv, claims.fam.as_str()), ("u1", 3, "f1"));
        let (again, _) = keys.issue(&subject).unwrap();
        assert_ne!(claims.jti, keys.verify(&again).unwrap().jti, "every token has its own id");
        // other secret
        assert!(JwtKeys::new("other", "wagate", Duration::from_secs(60)).verify(&token).is_err());
        // other issuer
        assert!(JwtKeys::new("s3cret", "evil", Duration::from_secs(60)).verify(&token).is_err());
        // alg=none forged token
        let forged = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSIsImlzcyI6IndhZ2F0ZSIsImV4cCI6OTk5OTk5OTk5OX0.";
        assert!(keys.verify(forged).is_err());
        assert!(keys.verify("garbage").is_err());
    }
}
