//! The client credentials grant (RFC 6749 §4.4): a confidential client acting on its own
//! behalf. The access token's `sub` is the client id; no ID token (there is no user) and no
//! refresh token (§4.4.3: "A refresh token SHOULD NOT be included").

use super::super::scope;
use super::{OAuth, OAuthError, TokenResponse};
use crate::model::Client;
use crate::oauth::Params;

impl OAuth {
    pub(super) async fn client_credentials_grant(
        &self,
        client: &Client,
        params: &Params,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        // §4.4: "MUST only be used by confidential clients".
        if client.is_public() {
            return Err(OAuthError::UnauthorizedClient(
                "public clients cannot use client_credentials (RFC 6749 section 4.4)",
            ));
        }
        let requested = self.requested_scopes(params.get("scope"), client).await?;
        let granted = scope::grant_for_client(requested.as_ref(), client)?;
        let access_token = self.sign_access_token(client, &client.id, &granted, None, None, now)?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.lifetimes.access_token.as_secs(),
            scope: granted.to_string(),
            refresh_token: None,
            id_token: None,
        })
    }
}
