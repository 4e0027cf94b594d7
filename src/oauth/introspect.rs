//! Token introspection (RFC 7662).
//!
//! Who may see what: a client may introspect the tokens issued to it, and the access tokens
//! whose `aud` names it (a resource server registered as a client). Anything else — and
//! anything expired, revoked, malformed, foreign, or of a disabled user — is `{"active":
//! false}` and nothing more (§2.2), so the answer never tells whether a token exists.

use serde::Serialize;

use super::client_auth::{self, ClientAuth};
use super::{LiveAccessToken, OAuth, OAuthError};
use crate::model::Client;
use crate::tokens::{Audience, opaque};

/// The introspection response (RFC 7662 §2.2).
#[derive(Debug, Default, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl Introspection {
    pub fn inactive() -> Self {
        Self::default()
    }
}

impl OAuth {
    /// `POST /introspect`: authenticates the client, which must be confidential. `hint` only decides
    /// which kind of token is looked up first (§2.1).
    pub async fn introspect(
        &self,
        auth: ClientAuth,
        token: Option<&str>,
        hint: Option<&str>,
        now: i64,
    ) -> Result<Introspection, OAuthError> {
        // The client first (RFC 7662 §2.1): a caller that cannot authenticate learns nothing,
        // not even that its request lacked a token.
        let client = &client_auth::authenticate(&self.store, &auth).await?;
        let token =
            token.ok_or_else(|| OAuthError::invalid_request("the token parameter is missing"))?;
        if client.is_public() {
            // §2.1: the endpoint requires client authentication; a public client has none.
            return Err(OAuthError::InvalidClient);
        }
        let found = if hint == Some("refresh_token") {
            match self.introspect_refresh(client, token, now).await? {
                Some(found) => Some(found),
                None => self.introspect_access(client, token, now).await?,
            }
        } else {
            match self.introspect_access(client, token, now).await? {
                Some(found) => Some(found),
                None => self.introspect_refresh(client, token, now).await?,
            }
        };
        Ok(found.unwrap_or_else(Introspection::inactive))
    }

    async fn introspect_access(
        &self,
        client: &Client,
        token: &str,
        now: i64,
    ) -> Result<Option<Introspection>, OAuthError> {
        let Some(LiveAccessToken { claims, user }) = self.live_access_token(token, now).await?
        else {
            return Ok(None);
        };
        if claims.client_id != client.id && !claims.aud.contains(&client.id) {
            return Ok(None);
        }
        Ok(Some(Introspection {
            active: true,
            scope: Some(claims.scope),
            client_id: Some(claims.client_id),
            username: user.map(|u| u.username),
            token_type: Some("Bearer"),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            sub: Some(claims.sub),
            aud: Some(claims.aud),
            iss: Some(claims.iss),
            jti: Some(claims.jti),
        }))
    }

    async fn introspect_refresh(
        &self,
        client: &Client,
        token: &str,
        now: i64,
    ) -> Result<Option<Introspection>, OAuthError> {
        let Some((record, user)) = self
            .store
            .refresh_record_with_user(&opaque::sha256_hex(token))
            .await?
        else {
            return Ok(None);
        };
        let family = record.family;
        if record.used_at.is_some()
            || !family.is_live_for(&user, now)
            || family.client_id != client.id
        {
            return Ok(None);
        }
        Ok(Some(Introspection {
            active: true,
            scope: Some(family.scopes.to_string()),
            client_id: Some(family.client_id),
            username: Some(user.username),
            token_type: None,
            exp: Some(family.expires_at),
            iat: Some(record.issued_at),
            sub: Some(family.user_id),
            aud: None,
            iss: Some(self.tokens.issuer().to_owned()),
            jti: None,
        }))
    }
}
