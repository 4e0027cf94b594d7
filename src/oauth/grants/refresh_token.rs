//! The refresh token grant (RFC 6749 §6) with rotation and reuse detection
//! (RFC 9700 §4.14.2).
//!
//! Every refresh rotates: the presented token is marked used and a successor is issued, in
//! one database transaction committed before the response goes out. A used token presented
//! again — a replay, by an attacker or by a confused client, even within the same second —
//! revokes its whole family, successors included, before anything else is checked. Validity
//! is decided by the database alone.

use super::super::scope;
use super::{Login, OAuth, OAuthError, TokenResponse};
use crate::model::Client;
use crate::oauth::Params;
use crate::store::{RefreshFamily, Rotation};
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
        let login = Login {
            auth_time: family.auth_time,
            sid: Some(&family.id),
            nonce: None,
        };
        let mut response = self.mint_for_user(client, &user, &granted, login, now)?;
        let successor = opaque::random_token()?;
        // The family's client and user never change; its liveness is checked again by the
        // rotation itself.
        let rotation = self
            .store
            .rotate_refresh_token(
                &presented_hash,
                &family.id,
                &opaque::sha256_hex(&successor),
                now,
            )
            .await?;
        match rotation {
            Rotation::Rotated => {
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
