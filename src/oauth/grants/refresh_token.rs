//! The refresh token grant (RFC 6749 §6) with rotation and reuse detection
//! (RFC 9700 §4.14.2).
//!
//! Every refresh rotates: the presented token is marked used and a successor is issued, in
//! one database transaction committed before the response goes out. A used token presented
//! again — a replay, by an attacker or by a confused client, even within the same second —
//! revokes its whole family, successors included, before anything else is checked. Validity
//! is decided by the database alone.
//!
//! With a retry window (`--refresh-retry-window`, off by default), a client whose answer was
//! lost on the network may present the rotated token once more within the window and get
//! the *same* successor back (with a fresh access token), instead of losing the session. The
//! successor is kept sealed under a key derived from the rotated token
//! ([`opaque::seal_successor`]), so only a holder of that token can read it. Reuse detection
//! stays: a third presentation, a presentation after the window, or one after the
//! successor was used is a replay as without the window (RFC 9700 §4.14.2), and a token that
//! was handed out twice cannot itself be retried. A thief with the rotated token gains, within
//! the window, what the client has — the same successor, plus one set of access and ID tokens;
//! the first use of that successor exposes nothing, but the second (by the other holder) is a
//! replay and ends the family.

use super::super::scope;
use super::{Login, OAuth, OAuthError, TokenResponse};
use crate::model::Client;
use crate::model::User;
use crate::oauth::Params;
use crate::store::{RefreshFamily, RefreshRecord, Retry, Rotation};
use crate::tokens::opaque;

const INVALID: &str =
    "the refresh token is invalid, expired, revoked or was issued to another client";

impl OAuth {
    pub(super) async fn refresh_grant(
        &self,
        client: &Client,
        params: &Params,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let presented = params.require("refresh_token")?;
        let requested = self.requested_scopes(params.get("scope"), client).await?;
        let presented_hash = opaque::sha256_hex(presented);

        let Some((record, user)) = self.store.refresh_record_with_user(&presented_hash).await?
        else {
            return Err(OAuthError::InvalidGrant(INVALID));
        };
        if record.used_at.is_some() {
            if self.may_retry(client, &user, &record, now) {
                let family = &record.family;
                // Tokens first: once the sealed successor is taken, nothing may fail.
                let granted =
                    scope::grant_for_refresh(requested.as_ref(), &family.scopes, client, &user)?;
                let mut response =
                    self.mint_for_user(client, &user, &granted, login_of(family), now)?;
                if let Some(sealed) = self
                    .store
                    .claim_refresh_retry(
                        &presented_hash,
                        &family.id,
                        now - self.retry_window(),
                        now,
                    )
                    .await?
                {
                    let successor = open_or_refuse(family, presented, &presented_hash, &sealed)?;
                    log_retry(self, family, client);
                    response.refresh_token = Some(successor);
                    return Ok(response);
                }
            }
            // A replay, whoever presents it and whatever else it asks for.
            self.store
                .revoke_refresh_family(&record.family.id, now)
                .await?;
            log_reuse(self, &record.family, client);
            return Err(OAuthError::InvalidGrant(INVALID));
        }
        let family = &record.family;
        // Bound to the client it was issued to (RFC 6749 §6); a live token presented by
        // another client is refused and left as it is.
        if family.client_id != client.id || !family.is_live_for(&user, now) {
            return Err(OAuthError::InvalidGrant(INVALID));
        }
        let granted = scope::grant_for_refresh(requested.as_ref(), &family.scopes, client, &user)?;

        // Sign first: once the rotation commits, the old token is spent, so nothing may fail
        // after it. Tokens of a refused rotation are simply dropped.
        let mut response = self.mint_for_user(client, &user, &granted, login_of(family), now)?;
        let successor = opaque::random_token()?;
        let retry = match self.retry_window() {
            0 => None,
            window => Some(Retry {
                sealed_successor: opaque::seal_successor(presented, &presented_hash, &successor)?,
                rotated_since: now - window,
            }),
        };
        // The family's client and user never change; its liveness is checked again by the
        // rotation itself.
        let rotation = self
            .store
            .rotate_refresh_token(
                &presented_hash,
                &family.id,
                &opaque::sha256_hex(&successor),
                now,
                retry,
            )
            .await?;
        match rotation {
            Rotation::Rotated => {
                response.refresh_token = Some(successor);
                Ok(response)
            }
            // A concurrent presentation of the same token rotated it first: within the
            // window this one is its retry, and gets the same successor.
            Rotation::Retried { sealed } => {
                let successor = open_or_refuse(family, presented, &presented_hash, &sealed)?;
                log_retry(self, family, client);
                response.refresh_token = Some(successor);
                Ok(response)
            }
            // Another request rotated it between our read and our update.
            Rotation::Reused => {
                log_reuse(self, family, client);
                Err(OAuthError::InvalidGrant(INVALID))
            }
            Rotation::Refused => Err(OAuthError::InvalidGrant(INVALID)),
        }
    }
}

impl OAuth {
    /// `--refresh-retry-window` in seconds (0: off).
    fn retry_window(&self) -> i64 {
        self.lifetimes.refresh_retry_window.as_secs() as i64
    }

    /// Whether a used token presented again may be a retry: within the window after its
    /// rotation, by the client it was issued to, of a family still live for its user. (The
    /// store then hands out the sealed successor once, if it is unused.)
    fn may_retry(&self, client: &Client, user: &User, record: &RefreshRecord, now: i64) -> bool {
        let window = self.retry_window();
        let family = &record.family;
        window > 0
            && record.used_at.is_some_and(|used| now - used <= window)
            && family.client_id == client.id
            && family.is_live_for(user, now)
    }
}

/// The login a family's tokens carry.
fn login_of(family: &RefreshFamily) -> Login<'_> {
    Login {
        auth_time: family.auth_time,
        sid: Some(&family.id),
        nonce: None,
    }
}

/// Opens a sealed successor. It was sealed under this very token, so failing to open it means
/// the stored value was altered: refused, and said in the log.
fn open_or_refuse(
    family: &RefreshFamily,
    presented: &str,
    presented_hash: &str,
    sealed: &str,
) -> Result<String, OAuthError> {
    opaque::open_successor(presented, presented_hash, sealed).ok_or_else(|| {
        tracing::error!(
            family_id = family.id,
            "a sealed refresh-token successor does not open; refusing the retry"
        );
        OAuthError::InvalidGrant(INVALID)
    })
}

/// A retry answered with the same successor: not a security event, but worth seeing.
fn log_retry(oauth: &OAuth, family: &RefreshFamily, presented_by: &Client) {
    oauth.metrics.refresh_retry();
    tracing::info!(
        event = "refresh_token_retry",
        family_id = family.id,
        client_id = presented_by.id,
        "a refresh token was presented again within --refresh-retry-window; answered with the same successor"
    );
}

/// The security event of RFC 9700 §4.14.2, in a stable shape.
fn log_reuse(oauth: &OAuth, family: &RefreshFamily, presented_by: &Client) {
    oauth.metrics.reuse(crate::metrics::Reuse::RefreshToken);
    tracing::warn!(
        event = "refresh_token_reuse",
        family_id = family.id,
        client_id = family.client_id,
        user_id = family.user_id,
        presented_by = presented_by.id,
        "a rotated refresh token was presented again; its family is revoked"
    );
}
