//! Token revocation (RFC 7009).
//!
//! - A refresh token: its whole family is revoked (§2.1: "SHOULD also invalidate all access
//!   tokens based on the same authorization grant" — for the refresh side, ferrid revokes the
//!   family; access tokens already issued stay valid offline until they expire).
//! - An access token: its `jti` is recorded until it expires, and ferrid's own endpoints
//!   (userinfo, introspection) refuse it. Resource servers that verify offline cannot know.
//! - An unknown, expired or foreign token: 200, nothing to do (§2.2).
//! - A live token issued to another client: refused with `invalid_grant` (§2.1).

use super::client_auth::{self, ClientAuth};
use super::{OAuth, OAuthError};
use crate::model::Client;
use crate::tokens::opaque;

impl OAuth {
    /// `POST /revoke`: authenticates the client, then revokes `token` if it is one of its.
    pub async fn revoke(
        &self,
        auth: ClientAuth,
        token: Option<&str>,
        hint: Option<&str>,
        now: i64,
    ) -> Result<(), OAuthError> {
        // The client first (RFC 7009 §2.1).
        let client = &client_auth::authenticate(&self.store, &auth).await?;
        let token =
            token.ok_or_else(|| OAuthError::invalid_request("the token parameter is missing"))?;
        if hint == Some("access_token") {
            if !self.revoke_access(client, token, now).await? {
                self.revoke_refresh(client, token, now).await?;
            }
        } else if !self.revoke_refresh(client, token, now).await? {
            self.revoke_access(client, token, now).await?;
        }
        Ok(())
    }

    /// True when `token` was one of our refresh tokens (and is now revoked).
    async fn revoke_refresh(
        &self,
        client: &Client,
        token: &str,
        now: i64,
    ) -> Result<bool, OAuthError> {
        let Some(record) = self
            .store
            .refresh_record(&opaque::sha256_hex(token))
            .await?
        else {
            return Ok(false);
        };
        if record.family.client_id != client.id {
            // Refused only while it is live (§2.1); a dead token of another client is
            // answered like an unknown one, so the endpoint is no oracle for old tokens.
            if record.used_at.is_none() && record.family.is_live(now) {
                return Err(OAuthError::InvalidGrant(
                    "this token was issued to another client",
                ));
            }
            return Ok(true);
        }
        self.store
            .revoke_refresh_family(&record.family.id, now)
            .await?;
        tracing::info!(
            event = "refresh_family_revoked",
            family_id = record.family.id,
            client_id = client.id
        );
        Ok(true)
    }

    /// True when `token` is one of our unexpired access tokens (and is now revoked). Its
    /// `jti` is recorded whatever the state of its user or session, so that re-enabling a
    /// user does not bring a revoked token back.
    async fn revoke_access(
        &self,
        client: &Client,
        token: &str,
        now: i64,
    ) -> Result<bool, OAuthError> {
        let Ok(claims) = self.tokens.verify_access(token, now) else {
            return Ok(false);
        };
        if claims.client_id != client.id {
            return Err(OAuthError::InvalidGrant(
                "this token was issued to another client",
            ));
        }
        self.store
            .revoke_access_token(&claims.jti, claims.exp)
            .await?;
        tracing::info!(
            event = "access_token_revoked",
            jti = claims.jti,
            client_id = client.id
        );
        Ok(true)
    }
}
