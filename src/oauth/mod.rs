//! The protocol: client authentication, scope policy, grants, userinfo. No axum and no SQL
//! here: functions take parsed requests and `now`, and return results or RFC-shaped errors.

pub mod authorize;
pub mod client_auth;
mod error;
pub mod grants;
mod introspect;
pub mod params;
mod revoke;
pub mod scope;
pub mod throttle;
mod userinfo;

use std::time::Duration;

pub use client_auth::ClientAuth;
pub use error::{BearerError, OAuthError};
pub use grants::TokenResponse;
pub use introspect::Introspection;
pub use params::Params;
pub use userinfo::UserInfo;

use crate::password::Passwords;
use crate::store::Store;
use crate::tokens::TokenIssuer;

/// Token lifetimes.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub access_token: Duration,
    pub id_token: Duration,
    /// Absolute lifetime of a refresh-token family, counted from the login.
    pub refresh_token: Duration,
}

/// Everything the protocol needs; one per server, cheap to clone.
#[derive(Clone)]
pub struct OAuth {
    pub store: Store,
    pub tokens: TokenIssuer,
    pub passwords: Passwords,
    pub lifetimes: Lifetimes,
    pub throttle: std::sync::Arc<throttle::Throttle>,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl OAuth {
    /// An access token that verifies (signature, issuer, type, expiry) and was not revoked,
    /// neither by itself nor with its login session (refresh-token family). `None` for
    /// anything else; why is logged at debug level (never the token).
    pub async fn live_access_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<crate::tokens::AccessClaims>, crate::store::StoreError> {
        let claims = match self.tokens.verify_access(token, now) {
            Ok(claims) => claims,
            Err(reason) => {
                tracing::debug!(%reason, "access token refused");
                return Ok(None);
            }
        };
        if self.store.is_access_token_revoked(&claims.jti).await? {
            tracing::debug!(jti = claims.jti, "access token refused: revoked");
            return Ok(None);
        }
        let session_live = match &claims.sid {
            Some(sid) => self.store.refresh_family_is_live(sid, now).await?,
            None => true,
        };
        if !session_live {
            tracing::debug!(jti = claims.jti, "access token refused: its session ended");
            return Ok(None);
        }
        Ok(Some(claims))
    }
}
