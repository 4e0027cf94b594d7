//! The resource owner password credentials grant (RFC 6749 §4.3).
//!
//! RFC 9700 §2.4 says this grant MUST NOT be used: it teaches users to type passwords into
//! clients. ferrid keeps it for trusted first-party clients and for apps migrating from a
//! FastAPI-style `/token` route, and makes it as hard to abuse as it can:
//! - only clients registered for `password` may use it (`unauthorized_client` otherwise);
//! - wrong password, unknown user and disabled user get one identical answer, after the same
//!   work (an unknown user is checked against a dummy hash);
//! - hashing runs on dedicated threads behind a bounded queue, answered 503 when full;
//! - a failed login is answered no sooner than [`FAILED_LOGIN_FLOOR`] after it arrived. The
//!   dummy hash only costs what a current argon2id hash costs; users whose stored hash is
//!   slower (bcrypt imports, argon2id with older parameters, until their next login) would
//!   otherwise stand out by timing. The wait is asynchronous: it holds no core.

use super::super::scope;
use super::{Login, OAuth, OAuthError, TokenResponse};
use std::net::IpAddr;

use crate::metrics::LoginOutcome;
use crate::model::{Client, Secret, User};
use crate::oauth::Params;
use crate::oauth::throttle::{Refused, Verdict};
use crate::password::{PasswordCheck, PasswordError};

/// The one answer for every failed login (RFC 6749 §5.2 invalid_grant).
const BAD_CREDENTIALS: &str = "the username or password is incorrect";

/// The earliest a failed login is answered: longer than a bcrypt check at passlib's default
/// cost (12 rounds, a few hundred milliseconds), so every failure looks the same.
pub const FAILED_LOGIN_FLOOR: std::time::Duration = std::time::Duration::from_millis(500);

impl OAuth {
    pub(super) async fn password_grant(
        &self,
        client: &Client,
        params: &Params,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let started = tokio::time::Instant::now();
        let username = params.require("username")?;
        let password = Secret::new(params.require("password")?);
        let requested = self.requested_scopes(params.get("scope"), client).await?;
        scope::check_client(requested.as_ref(), client)?;

        let user = self
            .check_password(username, password, ip, started, now)
            .await?;
        let granted = scope::grant_for_user(requested.as_ref(), client, &user)?;
        let family = self.new_login_family(client, &user, &granted, now, now);
        let login = Login {
            auth_time: now,
            sid: Some(&family.id),
            nonce: None,
        };
        let mut response = self.mint_for_user(client, &user, &granted, login, now)?;
        response.refresh_token = self.store_login_family(client, &family).await?;
        Ok(response)
    }

    /// Checks a username and password — for the password grant and the login page alike.
    /// Every failure is the same `invalid_grant`, answered no sooner than
    /// [`FAILED_LOGIN_FLOOR`] after `started`; a full hashing queue is
    /// `temporarily_unavailable`. An outdated hash is upgraded on success.
    pub(crate) async fn check_password(
        &self,
        username: &str,
        password: Secret,
        ip: Option<IpAddr>,
        started: tokio::time::Instant,
        now: i64,
    ) -> Result<User, OAuthError> {
        // Counted as it starts, told as it ends only what a sequence would be told
        // (RFC 6749 §4.3.2; oauth::throttle).
        let attempt = match self.throttle.begin(username, ip, now).await {
            Ok(attempt) => attempt,
            Err(Refused::Wait(wait)) => {
                self.metrics.login(LoginOutcome::Throttled);
                tracing::info!(
                    event = "login_throttled",
                    retry_after = wait,
                    "login refused before checking"
                );
                return Err(OAuthError::Throttled(wait));
            }
            Err(Refused::Busy) => return Err(OAuthError::TemporarilyUnavailable),
            Err(Refused::Store(e)) => return Err(e.into()),
        };
        let checked = async {
            let user = self.store.user_by_username(username).await?;
            let stored = user.as_ref().map(|u| u.password_hash.clone());
            let verified = self
                .passwords
                .verify(stored, password.clone())
                .await
                .map_err(|e| match e {
                    PasswordError::Busy => OAuthError::TemporarilyUnavailable,
                    other => OAuthError::Internal(other.into()),
                })?;
            Ok::<_, OAuthError>((user, verified))
        };
        let (user, verified) = match checked.await {
            Ok(checked) => checked,
            Err(e) => {
                // Not checked after all (a full queue, the database): it does not count.
                attempt.not_checked();
                return Err(e);
            }
        };
        let (user, rehash) = match (user, verified) {
            // A disabled user went through the same verification as everyone else.
            (Some(user), PasswordCheck::Match { rehash }) if !user.disabled => {
                match attempt.succeeded(now) {
                    Verdict::Tell => (user, rehash),
                    // Right, but throttled meanwhile by concurrent wrong guesses: told
                    // nothing, when a failure would be.
                    Verdict::Withhold(wait) => {
                        return Err(self.withheld(wait, started).await);
                    }
                }
            }
            _ => match attempt.failed(now).await {
                Verdict::Tell => {
                    self.metrics.login(LoginOutcome::Failure);
                    tracing::info!(event = "login_failed", "login refused");
                    tokio::time::sleep_until(started + FAILED_LOGIN_FLOOR).await;
                    return Err(OAuthError::InvalidGrant(BAD_CREDENTIALS));
                }
                Verdict::Withhold(wait) => return Err(self.withheld(wait, started).await),
            },
        };
        self.metrics.login(LoginOutcome::Success);
        tracing::info!(event = "login_succeeded", user_id = %user.id, "login");
        if rehash {
            self.upgrade_hash(&user.id, &user.password_hash, password, now)
                .await;
        }
        Ok(user)
    }

    /// The answer for a checked attempt whose outcome the throttle withholds: "throttled",
    /// no sooner than a failure's answer, so that neither tells the outcome.
    async fn withheld(&self, wait: i64, started: tokio::time::Instant) -> OAuthError {
        self.metrics.login(LoginOutcome::Throttled);
        tracing::info!(
            event = "login_throttled",
            retry_after = wait,
            "login checked during a burst; its outcome is withheld"
        );
        tokio::time::sleep_until(started + FAILED_LOGIN_FLOOR).await;
        OAuthError::Throttled(wait)
    }

    /// Replaces a bcrypt (or outdated argon2) hash with argon2id at the configured parameters,
    /// now that the password is known. A failure is logged and the login still succeeds.
    async fn upgrade_hash(&self, user_id: &str, old: &Secret, password: Secret, now: i64) {
        let result = async {
            let new = self.passwords.hash(password).await?;
            let replaced = self
                .store
                .upgrade_password_hash(user_id, old, &new, now)
                .await?;
            anyhow::Ok(replaced)
        }
        .await;
        match result {
            Ok(true) => tracing::info!(user_id, "password hash upgraded to argon2id"),
            Ok(false) => tracing::info!(user_id, "password changed meanwhile; hash not upgraded"),
            Err(e) => tracing::warn!(user_id, error = %e, "could not upgrade the password hash"),
        }
    }
}
