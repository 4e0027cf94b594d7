//! Which scopes a grant gets (RFC 6749 §3.3).
//!
//! - Every requested scope must be allowed for the client, else `invalid_scope`.
//! - For user grants, every requested permission scope (anything but the OIDC scopes
//!   `openid`, `profile`, `email`, `offline_access`) must also be held by the user. The OIDC
//!   scopes only describe the user to the client, so the client's permission is enough.
//! - No `scope` parameter: the default is every scope both the client may have and the user
//!   holds, less `offline_access`, which must be asked for (OIDC Core §11).
//! - `offline_access` asks for a refresh token. This build issues none yet, so it is left
//!   out of what is granted, and the response's `scope` says so (§3.3 allows a narrower grant).

use super::OAuthError;
use crate::model::{Client, IDENTITY_SCOPES, OFFLINE_ACCESS, ScopeSet, User};

/// Parses the `scope` parameter; `None` when it was not sent.
pub fn parse_requested(raw: Option<&str>) -> Result<Option<ScopeSet>, OAuthError> {
    raw.map(|s| {
        ScopeSet::parse(s).map_err(|_| {
            OAuthError::InvalidScope(
                "scope must be space-separated tokens of printable ASCII (RFC 6749 section 3.3)"
                    .into(),
            )
        })
    })
    .transpose()
}

fn is_user_independent(scope: &str) -> bool {
    IDENTITY_SCOPES.contains(&scope) || scope == OFFLINE_ACCESS
}

/// The part of the check that needs no user: every requested scope is allowed for the client.
/// Run before the password is checked, so a bad request costs no hashing.
pub fn check_client(requested: Option<&ScopeSet>, client: &Client) -> Result<(), OAuthError> {
    match requested.and_then(|r| r.iter().find(|s| !client.scopes.contains(s))) {
        Some(scope) => Err(OAuthError::InvalidScope(
            format!("scope {scope} is not allowed for this client").into(),
        )),
        None => Ok(()),
    }
}

/// The scopes a user grant gets.
pub fn grant_for_user(
    requested: Option<&ScopeSet>,
    client: &Client,
    user: &User,
) -> Result<ScopeSet, OAuthError> {
    check_client(requested, client)?;
    let mut granted = match requested {
        Some(requested) => {
            if let Some(scope) = requested
                .iter()
                .find(|s| !is_user_independent(s) && !user.scopes.contains(s))
            {
                return Err(OAuthError::InvalidScope(
                    format!("scope {scope} is not granted to this user").into(),
                ));
            }
            requested.clone()
        }
        None => client
            .scopes
            .filter(|s| s != OFFLINE_ACCESS && (is_user_independent(s) || user.scopes.contains(s))),
    };
    // No refresh tokens in this build: see the module comment.
    granted.remove(OFFLINE_ACCESS);
    Ok(granted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GrantType, Secret};

    fn client(scopes: &str) -> Client {
        Client {
            id: "app".into(),
            secret_hash: None,
            grant_types: vec![GrantType::Password],
            scopes: ScopeSet::parse(scopes).unwrap(),
            redirect_uris: vec![],
            audiences: vec![],
            created_at: 0,
        }
    }

    fn user(scopes: &str) -> User {
        User {
            id: "u".into(),
            username: "ada".into(),
            password_hash: Secret::new(""),
            name: None,
            email: None,
            email_verified: false,
            scopes: ScopeSet::parse(scopes).unwrap(),
            disabled: false,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn req(s: &str) -> Option<ScopeSet> {
        Some(ScopeSet::parse(s).unwrap())
    }

    #[test]
    fn requested_scopes_must_be_allowed_for_the_client() {
        let c = client("openid items:read");
        assert!(matches!(
            check_client(req("openid admin").as_ref(), &c),
            Err(OAuthError::InvalidScope(_))
        ));
        assert!(check_client(req("openid").as_ref(), &c).is_ok());
        assert!(check_client(None, &c).is_ok());
    }

    #[test]
    fn permissions_must_also_be_held_by_the_user_but_oidc_scopes_need_not() {
        let c = client("openid profile email items:read items:write");
        let u = user("items:read");
        let granted = grant_for_user(req("openid profile items:read").as_ref(), &c, &u).unwrap();
        assert_eq!(granted.to_string(), "items:read openid profile");
        assert!(matches!(
            grant_for_user(req("items:write").as_ref(), &c, &u),
            Err(OAuthError::InvalidScope(_))
        ));
    }

    #[test]
    fn the_default_is_what_client_and_user_share_without_offline_access() {
        let c = client("openid profile offline_access items:read items:write");
        let u = user("items:read other");
        assert_eq!(
            grant_for_user(None, &c, &u).unwrap().to_string(),
            "items:read openid profile"
        );
    }

    #[test]
    fn offline_access_is_not_granted_while_there_are_no_refresh_tokens() {
        let c = client("openid offline_access");
        let granted = grant_for_user(req("openid offline_access").as_ref(), &c, &user("")).unwrap();
        assert_eq!(granted.to_string(), "openid");
    }

    #[test]
    fn malformed_scope_parameters_are_invalid_scope() {
        assert!(matches!(
            parse_requested(Some("a\"b")),
            Err(OAuthError::InvalidScope(_))
        ));
        assert_eq!(parse_requested(None).unwrap(), None);
    }
}
