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

/// See [`OAuth::live_access_token`].
#[derive(Debug)]
pub struct LiveAccessToken {
    pub claims: crate::tokens::AccessClaims,
    /// `None` for a client's own token (client_credentials).
    pub user: Option<crate::model::User>,
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
    /// An access token that verifies (signature, issuer, type, expiry), was not revoked —
    /// neither by itself nor with its login session (refresh-token family) — and whose
    /// user exists and is enabled, or, for a client's own token (client_credentials), whose
    /// client still exists. `None` for anything else; why is logged at debug level (never
    /// the token). A user's token costs one database statement.
    pub async fn live_access_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<LiveAccessToken>, crate::store::StoreError> {
        let claims = match self.tokens.verify_access(token, now) {
            Ok(claims) => claims,
            Err(reason) => {
                tracing::debug!(%reason, "access token refused");
                return Ok(None);
            }
        };
        let sid = claims.sid.as_deref();
        let refused = |why: &str| {
            tracing::debug!(jti = claims.jti, "access token refused: {why}");
            Ok(None)
        };
        let found = self
            .store
            .user_with_token_state(&claims.sub, &claims.jti, sid)
            .await?;
        let user = match found {
            Some((user, state)) => {
                if state.jti_revoked {
                    return refused("revoked");
                }
                if sid.is_some() && state.session_expires_at.is_none_or(|end| now >= end) {
                    return refused("its session ended");
                }
                if user.disabled {
                    return refused("its user is disabled");
                }
                Some(user)
            }
            // A client's own token lives as long as the client, and has no session.
            None if claims.sub == claims.client_id && sid.is_none() => {
                if self.store.is_access_token_revoked(&claims.jti).await? {
                    return refused("revoked");
                }
                if self.store.client(&claims.client_id).await?.is_none() {
                    return refused("its client is gone");
                }
                None
            }
            None => return refused("its user is gone"),
        };
        Ok(Some(LiveAccessToken { claims, user }))
    }
}
