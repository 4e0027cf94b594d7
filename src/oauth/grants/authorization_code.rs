//! The authorization code grant at the token endpoint (RFC 6749 §4.1.3, RFC 7636 §4.6,
//! OpenID Connect Core §3.1.3).
//!
//! A code is spent by one conditional UPDATE: redeemed once at most. A second use is an
//! attack or a broken client, and revokes the tokens issued from the code (§4.1.2: "SHOULD
//! revoke (when possible) all tokens previously issued based on that authorization code").

use super::{Login, OAuth, OAuthError, TokenResponse};
use crate::model::{Client, GrantType};
use crate::oauth::Params;
use crate::oauth::authorize::pkce_matches;
use crate::store::Redemption;
use crate::tokens::opaque;

const INVALID: &str =
    "the code is invalid, expired, used, or was issued to another client or redirect_uri";

impl OAuth {
    pub(super) async fn authorization_code_grant(
        &self,
        client: &Client,
        params: &Params,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let code = params.require("code")?;
        // §4.1.3: required, since every authorization request of ours carries one.
        let redirect_uri = params.require("redirect_uri")?;
        let verifier = params.get("code_verifier");
        let family_expires_at = now + self.lifetimes.refresh_token.as_secs() as i64;
        let code = match self
            .store
            .redeem_code(&opaque::sha256_hex(code), now, family_expires_at)
            .await?
        {
            Redemption::Unknown => return Err(OAuthError::InvalidGrant(INVALID)),
            Redemption::Reused(code) => {
                self.store
                    .revoke_refresh_family(&code.family_id, now)
                    .await?;
                self.metrics.reuse(crate::metrics::Reuse::AuthorizationCode);
                tracing::warn!(
                    event = "authorization_code_reuse",
                    family_id = code.family_id,
                    client_id = code.client_id,
                    user_id = code.user_id,
                    "an authorization code was used twice; the tokens issued from it are revoked"
                );
                return Err(OAuthError::InvalidGrant(INVALID));
            }
            Redemption::Redeemed(code) => code,
        };
        if code.expires_at <= now
            || code.client_id != client.id
            || code.redirect_uri != redirect_uri
        {
            return Err(OAuthError::InvalidGrant(INVALID));
        }
        // RFC 7636 §4.6, and RFC 9700 §2.1.1: a verifier without a challenge is a downgrade
        // attempt, refused like a wrong one.
        let pkce_ok = match (&code.code_challenge, verifier) {
            (Some(challenge), Some(verifier)) => pkce_matches(verifier, challenge),
            (None, None) => true,
            _ => false,
        };
        if !pkce_ok {
            return Err(OAuthError::InvalidGrant(
                "code_verifier does not match the code_challenge",
            ));
        }
        let user = self
            .store
            .user_by_id(&code.user_id)
            .await?
            .filter(|u| !u.disabled)
            .ok_or(OAuthError::InvalidGrant(INVALID))?;

        // The session (family) was created with the redemption; a second use of the code
        // revokes it, and with it everything minted here.
        let login = Login {
            auth_time: code.auth_time,
            sid: Some(&code.family_id),
            nonce: code.nonce.as_deref(),
        };
        let mut response = self.mint_for_user(client, &user, &code.scopes, login, now)?;
        if client.may_use(GrantType::RefreshToken) {
            let token = opaque::random_token()?;
            self.store
                .insert_refresh_token(&code.family_id, &opaque::sha256_hex(&token), now)
                .await?;
            response.refresh_token = Some(token);
        }
        Ok(response)
    }
}
