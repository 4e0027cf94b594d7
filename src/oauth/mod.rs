//! The protocol: client authentication, scope policy, grants, userinfo. No axum and no SQL
//! here: functions take parsed requests and `now`, and return results or RFC-shaped errors.

pub mod authorize;
pub mod backchannel;
pub mod client_auth;
mod error;
pub mod grants;
mod introspect;
pub mod logout;
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
    /// How long after a rotation the rotated token may be presented again for the same
    /// successor (`--refresh-retry-window`; zero: never, every second presentation is a
    /// replay).
    pub refresh_retry_window: Duration,
}

/// See [`OAuth::live_access_token`].
#[derive(Debug)]
pub struct LiveAccessToken {
    pub claims: crate::tokens::AccessClaims,
    /// `None` for a client's own token (client_credentials).
    pub user: Option<crate::model::User>,
}

/// Everything the protocol needs; one per server, cheap to clone. Its parts are its own:
/// adapters call its methods, never the store or the keys behind them.
#[derive(Clone)]
pub struct OAuth {
    store: Store,
    tokens: TokenIssuer,
    passwords: Passwords,
    lifetimes: Lifetimes,
    throttle: std::sync::Arc<throttle::Throttle>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    backchannel: std::sync::Arc<backchannel::Backchannel>,
    /// Signs the consent page's tickets (`authorize::ConsentTicket`).
    consent_key: std::sync::Arc<aws_lc_rs::hmac::Key>,
}

impl OAuth {
    pub fn new(
        store: Store,
        tokens: TokenIssuer,
        passwords: Passwords,
        lifetimes: Lifetimes,
        throttle: std::sync::Arc<throttle::Throttle>,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
        consent_key: &[u8; 32],
    ) -> Self {
        Self {
            store,
            tokens,
            passwords,
            lifetimes,
            throttle,
            metrics,
            backchannel: std::sync::Arc::default(),
            consent_key: std::sync::Arc::new(aws_lc_rs::hmac::Key::new(
                aws_lc_rs::hmac::HMAC_SHA256,
                consent_key,
            )),
        }
    }

    /// The exact `iss` of every token and the base of every endpoint URL.
    pub fn issuer(&self) -> &str {
        self.tokens.issuer()
    }

    /// The signing keys (the JWKS, and the watcher that reloads them).
    pub fn keys(&self) -> &crate::tokens::Keys {
        self.tokens.keys()
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The same metrics, shared (the HTTP front door counts requests there).
    pub fn metrics_handle(&self) -> std::sync::Arc<crate::metrics::Metrics> {
        self.metrics.clone()
    }

    /// What `/metrics` reads at scrape time (all but the process's own numbers).
    pub fn scrape(&self, now: i64) -> crate::metrics::Scraped {
        crate::metrics::Scraped {
            hashing_queue: self.passwords.queue_depth(),
            pool: self.store.pool_state(),
            throttle_entries: self.throttle.len(),
            signing_key_age: Some((now - self.keys().current().signing_since()).max(0) as f64),
            process: None,
        }
    }

    /// Logins waiting for a hashing thread.
    pub fn hashing_queue_depth(&self) -> usize {
        self.passwords.queue_depth()
    }

    /// Whether the database probe last found the database not answering.
    pub fn database_down(&self) -> bool {
        self.store.database_down()
    }

    /// Answers when the database does (what `/readyz` asks).
    pub async fn database_ready(&self) -> Result<(), crate::store::StoreError> {
        self.store.ping().await
    }
}

impl OAuth {
    /// An access token that verifies (signature, issuer, type, expiry, `iat`/`nbf`), was not
    /// revoked, and whose client still exists (registered before the token was issued).
    /// A user's token also needs its user to exist and be enabled, and its session
    /// (`sid`, a refresh-token family) to be live — which a password change or a disable
    /// ends. A client's own token (client_credentials) lives as long as its client. `None`
    /// for anything else; why is logged at debug level (never the token). One database
    /// statement, shared with concurrent requests'.
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
        let state = self
            .store
            .token_state(&claims.sub, &claims.client_id, &claims.jti, sid)
            .await?;
        if state.jti_revoked {
            return refused("revoked");
        }
        match state.client_created_at {
            None => return refused("its client is gone"),
            // A client removed and registered again under the same id is another client.
            Some(registered) if registered > claims.iat => {
                return refused("its client was registered after it was issued");
            }
            Some(_) => {}
        }
        let user = match state.user {
            Some(user) => {
                if user.disabled {
                    return refused("its user is disabled");
                }
                match sid {
                    Some(_) if state.session_expires_at.is_none_or(|end| now >= end) => {
                        return refused("its session ended");
                    }
                    Some(_) => {}
                    // Minted before every user token named a session: refused if issued
                    // at or before the user's last password change or disable.
                    None if claims.iat <= user.security_changed_at => {
                        return refused("issued before its user's last password change");
                    }
                    None => {}
                }
                Some(user)
            }
            // A client's own token has no user and no session.
            None if claims.sub == claims.client_id && sid.is_none() => None,
            None => return refused("its user is gone"),
        };
        Ok(Some(LiveAccessToken { claims, user }))
    }
}
