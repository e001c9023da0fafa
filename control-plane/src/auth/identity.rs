//! Credentials from gRPC metadata → an authenticated caller.

use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;
use wagate_proto::error::ErrorCode;
use wagate_proto::metadata;

use crate::auth::client_addr::Forwarders;
use crate::auth::jwt::{Claims, JwtKeys};
use crate::auth::passwords;
use crate::cache::Cache;
use crate::error::{CpError, api, refused};
use crate::persistence::enums::UserRole;
use crate::persistence::{Db, users};

/// How long the shared deny-list may take before this replica answers
/// alone (every authenticated call asks it; the rate limiter allows the same).
const DENYLIST_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(250);

/// The user behind a valid, current token (row re-read on every call, so
/// deactivation and role changes take effect at once).
pub type AuthUser = users::User;

#[derive(Clone)]
pub struct Authenticator {
    db: Db,
    jwt: JwtKeys,
    cache: Cache,
    reauth_window: std::time::Duration,
    forwarders: Forwarders,
    /// Every authenticated call is counted for billing.
    usage: std::sync::Arc<crate::usage::UsageMeter>,
    /// Tokens revoked through this replica, answered from here while Redis
    /// is unreachable (see [`Authenticator::is_denied`]).
    denied_here: crate::cache::MemoryCache,
}

/// A user with the claims of the token they presented.
pub struct Authenticated {
    pub user: AuthUser,
    pub claims: Claims,
}

impl Authenticator {
    pub fn new(
        db: Db,
        jwt: JwtKeys,
        cache: Cache,
        reauth_window: std::time::Duration,
        forwarders: Forwarders,
        usage: std::sync::Arc<crate::usage::UsageMeter>,
    ) -> Self {
        Self { db, jwt, cache, reauth_window, forwarders, usage, denied_here: Default::default() }
    }

    /// The caller's client address (see [`Forwarders`]).
    pub fn client_ip<T>(&self, req: &tonic::Request<T>) -> String {
        self.forwarders.client_ip(req)
    }

    pub fn jwt(&self) -> &JwtKeys {
        &self.jwt
    }

    /// A user authenticated by `authorization: Bearer <jwt>`.
    pub async fn user(&self, md: &MetadataMap) -> Result<AuthUser, CpError> {
        Ok(self.authenticate(md).await?.user)
    }

    /// The user and the claims of their token: valid signature, issuer and
    /// expiry, issued at the user's current token version (a password change
    /// or logout-all refuses every earlier token), not logged out.
    pub async fn authenticate(&self, md: &MetadataMap) -> Result<Authenticated, CpError> {
        let token =
            bearer(md).ok_or_else(|| api(ErrorCode::Unauthenticated, "authorization token required"))?;
        let invalid_token = || api(ErrorCode::InvalidToken, "invalid or expired token");
        let claims = self.jwt.verify(token).map_err(|_| invalid_token())?;
        let user = users::by_id(&self.db, &claims.sub).await?.ok_or_else(invalid_token)?;
        if !user.is_active {
            return Err(api(ErrorCode::InvalidToken, "account is deactivated"));
        }
        if claims.tv != user.token_version {
            return Err(api(
                ErrorCode::InvalidToken,
                "token was revoked (password changed or signed out everywhere)",
            ));
        }
        if self.is_denied(&claims).await {
            return Err(api(
                ErrorCode::InvalidToken,
                "token was revoked (signed out, or its sign-in's refresh token was reused)",
            ));
        }
        self.usage.user_call(&user.id);
        Ok(Authenticated { user, claims })
    }

    /// Sensitive changes (email, account deletion, key rotation) need the
    /// current password, or a token issued within the re-authentication
    /// window (a stolen older token cannot lock the owner out).
    pub async fn require_recent_auth(
        &self,
        who: &Authenticated,
        current_password: Option<&str>,
    ) -> Result<(), CpError> {
        match current_password.filter(|p| !p.is_empty()) {
            Some(p) => {
                if p.len() > 1024 || !passwords::verify(p.to_owned(), who.user.password_hash.clone()).await? {
                    return Err(refused("currentPassword", "currentPassword is not correct"));
                }
                Ok(())
            }
            None => {
                let age = chrono::Utc::now().timestamp().saturating_sub(who.claims.iat);
                if u64::try_from(age).unwrap_or(u64::MAX) < self.reauth_window.as_secs() {
                    return Ok(());
                }
                Err(refused(
                    "currentPassword",
                    "currentPassword is required for this change (or sign in again: the token is older than the re-authentication window)",
                ))
            }
        }
    }

    /// Revokes the presented access token until it expires (logout).
    pub async fn deny(&self, claims: &Claims) -> Result<(), CpError> {
        let left = claims.exp.saturating_sub(chrono::Utc::now().timestamp()).max(1);
        let ttl = std::time::Duration::from_secs(u64::try_from(left).unwrap_or(1) + 10);
        self.denied_here.deny_token(&claims.jti, ttl);
        self.cache.deny_token(&claims.jti, ttl).await?;
        Ok(())
    }

    /// Revokes every access token minted in refresh-token family `family`
    /// (its refresh token was reused, or its sign-in signed out), until the
    /// last of them expires: an access token's lifetime, its leeway and a
    /// margin. This replica refuses them at once even if Redis fails.
    pub async fn deny_family(&self, family: &str) -> Result<(), CpError> {
        let ttl = self.jwt.ttl() + self.jwt.leeway() + std::time::Duration::from_secs(10);
        let key = family_key(family);
        self.denied_here.deny_token(&key, ttl);
        self.cache.deny_token(&key, ttl).await?;
        Ok(())
    }

    /// Whether a token was signed out, or its family revoked (one look-up
    /// for both). While the shared deny-list (Redis)
    /// is unreachable, the tokens signed out through this replica are still
    /// refused and the others are let through (their token version is
    /// still checked, and they expire within the access-token lifetime):
    /// an outage of the cache must not sign every user out (503 on every
    /// call). Logged and counted.
    async fn is_denied(&self, claims: &Claims) -> bool {
        let mut keys: Vec<String> = Vec::with_capacity(2);
        if !claims.jti.is_empty() {
            keys.push(claims.jti.clone());
        }
        if !claims.fam.is_empty() {
            keys.push(family_key(&claims.fam));
        }
        if keys.is_empty() {
            return false;
        }
        if keys.iter().any(|k| self.denied_here.is_token_denied(k)) {
            return true;
        }
        let error = match tokio::time::timeout(DENYLIST_TIMEOUT, self.cache.any_token_denied(&keys)).await {
            Ok(Ok(denied)) => return denied,
            Ok(Err(err)) => err.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        ::metrics::counter!("wagate_token_denylist_unavailable_total").increment(1);
        tracing::warn!(error, "token deny-list unreachable: answering from this replica");
        false
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

/// The deny-list key of a refresh-token family (token ids are hex: no clash).
fn family_key(family: &str) -> String {
    format!("fam:{family}")
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
