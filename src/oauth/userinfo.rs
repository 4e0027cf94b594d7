//! The UserInfo endpoint's logic (OpenID Connect Core §5.3).

use serde::Serialize;

use super::{BearerError, OAuth};
use crate::model::{OPENID, ScopeSet};
use crate::tokens::ProfileClaims;

/// The UserInfo response (OIDC Core §5.3.2): `sub` and the claims of the granted scopes.
#[derive(Debug, Serialize)]
pub struct UserInfo {
    pub sub: String,
    #[serde(flatten)]
    pub claims: ProfileClaims,
}

impl OAuth {
    /// Answers for a Bearer access token that carries `openid` and belongs to a user who
    /// still exists and is enabled.
    pub async fn userinfo(&self, access_token: &str, now: i64) -> Result<UserInfo, BearerError> {
        let live = self
            .live_access_token(access_token, now)
            .await
            .map_err(BearerError::from)?
            .ok_or(BearerError::InvalidToken(
                "the access token is invalid, expired or revoked",
            ))?;
        let claims = live.claims;
        let scopes = ScopeSet::parse(&claims.scope)
            .map_err(|_| BearerError::InvalidToken("the access token is invalid or expired"))?;
        if !scopes.contains(OPENID) {
            // RFC 6750 §3.1 insufficient_scope; OIDC Core §5.3 requires openid.
            return Err(BearerError::InsufficientScope(OPENID));
        }
        // A client's own token (client_credentials) has no user to describe.
        let user = live.user.ok_or(BearerError::InvalidToken(
            "this access token was issued to a client, not to a user",
        ))?;
        Ok(UserInfo {
            sub: user.id.clone(),
            claims: super::grants::profile_claims(&user, &scopes),
        })
    }
}
