//! Credentials from gRPC metadata → an authenticated caller.

use sea_orm::EntityTrait;
use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;
use wagate_proto::error::ErrorCode;
use wagate_proto::metadata;

use crate::auth::jwt::JwtKeys;
use crate::error::{CpError, api};
use crate::persistence::Db;
use crate::persistence::entities::user;
use crate::persistence::enums::UserRole;

/// The user behind a valid, current token (row re-read on every call, so
/// deactivation and role changes take effect at once).
pub type AuthUser = user::Model;

#[derive(Clone)]
pub struct Authenticator {
    db: Db,
    jwt: JwtKeys,
}

impl Authenticator {
    pub fn new(db: Db, jwt: JwtKeys) -> Self {
        Self { db, jwt }
    }

    pub fn jwt(&self) -> &JwtKeys {
        &self.jwt
    }

    /// A user authenticated by `authorization: Bearer <jwt>`.
    pub async fn user(&self, md: &MetadataMap) -> Result<AuthUser, CpError> {
        let token =
            bearer(md).ok_or_else(|| api(ErrorCode::Unauthenticated, "authorization token required"))?;
        let claims =
            self.jwt.verify(token).map_err(|_| api(ErrorCode::InvalidToken, "invalid or expired token"))?;
        let user = user::Entity::find_by_id(claims.sub)
            .one(&self.db.conn)
            .await?
            .ok_or_else(|| api(ErrorCode::InvalidToken, "invalid or expired token"))?;
        if !user.is_active {
            return Err(api(ErrorCode::InvalidToken, "account is deactivated"));
        }
        Ok(user)
    }

    /// A user with the ADMINISTRATOR role.
    pub async fn admin(&self, md: &MetadataMap) -> Result<AuthUser, CpError> {
        let user = self.user(md).await?;
        if user.role != UserRole::Administrator {
            return Err(api(ErrorCode::Forbidden, "administrator role required"));
        }
        Ok(user)
    }
}

/// The token of `authorization: Bearer <token>`.
pub fn bearer(md: &MetadataMap) -> Option<&str> {
    let value = md.get(metadata::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A session API key from `x-api-key`, or from `authorization: Bearer`.
pub fn api_key(md: &MetadataMap) -> Option<&str> {
    md.get(metadata::API_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .or_else(|| bearer(md))
}

/// Constant-time comparison of a presented secret with the expected one.
pub fn secret_matches(presented: &str, expected: &str) -> bool {
    presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// A request id from metadata, for logs.
pub fn request_id(md: &MetadataMap) -> String {
    md.get(metadata::REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_api_key_extraction() {
        let mut md = MetadataMap::new();
        assert!(bearer(&md).is_none());
        md.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&md), Some("abc"));
        assert_eq!(api_key(&md), Some("abc"));
        md.insert("x-api-key", "wag_k".parse().unwrap());
        assert_eq!(api_key(&md), Some("wag_k"));
        md.insert("authorization", "Basic abc".parse().unwrap());
        assert!(bearer(&md).is_none());
        assert!(secret_matches("tok", "tok"));
        assert!(!secret_matches("tok", "tok2"));
    }
}
