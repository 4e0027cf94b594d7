//! Which scopes a grant gets (RFC 6749 §3.3).
//!
//! First, at `/authorize` and at `/token` alike, values ferrid does not define are ignored
//! (OIDC Core §3.1.2.1: "Scope values used that are not understood by an implementation
//! SHOULD be ignored"; RFC 6749 §3.3 lets the server grant less than asked), and the
//! response's `scope` says what was granted ([`understood`]):
//! - the OIDC scopes ferrid implements (`openid`, `profile`, `email`, `offline_access`) are
//!   kept when the client is registered for them, and ignored otherwise (their claims are
//!   simply not released);
//! - a permission scope (any other value) is defined when some client is registered for it:
//!   it is kept, and the rules below refuse it if this client or user may not have it;
//! - anything else — `phone`, `address`, `groups`, a typo — is ignored.
//!
//! Then, on what is left:
//! - Every requested scope must be allowed for the client, else `invalid_scope`.
//! - For user grants, every requested permission scope (anything but the OIDC scopes
//!   `openid`, `profile`, `email`, `offline_access`) must also be held by the user. The OIDC
//!   scopes only describe the user to the client, so the client's permission is enough.
//! - No `scope` parameter: the default is every scope both the client may have and the user
//!   holds, less `offline_access`, which must be asked for (OIDC Core §11).
//! - `offline_access` (OIDC Core §11) is granted only to clients registered for the
//!   `refresh_token` grant; for others it is left out of what is granted, and the response's
//!   `scope` says so (§3.3 allows a narrower grant than requested).
//! - A refresh may ask for the originally granted scopes or fewer, never more (RFC 6749 §6),
//!   and gets only what client and user may still have.
//! - `client_credentials` has no user: only permission scopes, by default all the client's.

use super::OAuthError;
use crate::model::{Client, GrantType, IDENTITY_SCOPES, OFFLINE_ACCESS, ScopeSet, User};

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

/// Whether [`understood`] needs to know which permission scopes are defined: some value is
/// neither registered for the client nor an OIDC scope.
pub fn needs_registry(requested: Option<&ScopeSet>, client: &Client) -> bool {
    requested.is_some_and(|r| {
        r.iter()
            .any(|s| !client.scopes.contains(s) && !is_user_independent(s))
    })
}

/// The requested values ferrid understands (see the module's rules); `defined` tells
/// whether a permission scope is registered for any client.
pub fn understood(
    requested: Option<ScopeSet>,
    client: &Client,
    defined: impl Fn(&str) -> bool,
) -> Option<ScopeSet> {
    requested
        .map(|r| r.filter(|s| client.scopes.contains(s) || (!is_user_independent(s) && defined(s))))
}

impl super::OAuth {
    /// The `scope` parameter as ferrid understands it for `client`: parsed, with the values
    /// it does not define left out (the module's first rules). Reads which permission
    /// scopes are defined only when the request names one the client is not registered for.
    pub(crate) async fn requested_scopes(
        &self,
        raw: Option<&str>,
        client: &Client,
    ) -> Result<Option<ScopeSet>, OAuthError> {
        let requested = parse_requested(raw)?;
        if !needs_registry(requested.as_ref(), client) {
            return Ok(understood(requested, client, |_| false));
        }
        let registry = self.store.registered_scopes().await?;
        Ok(understood(requested, client, |s| registry.contains(s)))
    }
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
    if !client.may_use(GrantType::RefreshToken) {
        granted.remove(OFFLINE_ACCESS);
    }
    Ok(granted)
}

/// The scopes of a refresh (RFC 6749 §6): the requested ones must have been granted
/// originally; without a `scope` parameter, the original grant. Either way, only what client
/// and user may still have.
pub fn grant_for_refresh(
    requested: Option<&ScopeSet>,
    original: &ScopeSet,
    client: &Client,
    user: &User,
) -> Result<ScopeSet, OAuthError> {
    match requested {
        Some(requested) => {
            if let Some(scope) = requested.iter().find(|s| !original.contains(s)) {
                return Err(OAuthError::InvalidScope(
                    format!(
                        "scope {scope} was not granted originally; a refresh cannot widen the scope"
                    )
                    .into(),
                ));
            }
            grant_for_user(Some(requested), client, user)
        }
        None => {
            let still_allowed = original.filter(|s| {
                client.scopes.contains(s) && (is_user_independent(s) || user.scopes.contains(s))
            });
            grant_for_user(Some(&still_allowed), client, user)
        }
    }
}

/// The scopes of a `client_credentials` grant: permission scopes of the client only.
pub fn grant_for_client(
    requested: Option<&ScopeSet>,
    client: &Client,
) -> Result<ScopeSet, OAuthError> {
    check_client(requested, client)?;
    match requested {
        Some(requested) => match requested.iter().find(|s| is_user_independent(s)) {
            Some(scope) => Err(OAuthError::InvalidScope(
                format!("scope {scope} needs a user; client_credentials tokens have none").into(),
            )),
            None => Ok(requested.clone()),
        },
        None => Ok(client.scopes.filter(|s| !is_user_independent(s))),
    }
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
            ..Client::default()
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
            security_version: 0,
            security_changed_at: 0,
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
    fn offline_access_needs_a_client_registered_for_refresh_tokens() {
        let mut c = client("openid offline_access");
        let granted = grant_for_user(req("openid offline_access").as_ref(), &c, &user("")).unwrap();
        assert_eq!(granted.to_string(), "openid");
        c.grant_types.push(GrantType::RefreshToken);
        let granted = grant_for_user(req("openid offline_access").as_ref(), &c, &user("")).unwrap();
        assert_eq!(granted.to_string(), "offline_access openid");
    }

    #[test]
    fn a_refresh_may_narrow_but_never_widen() {
        let c = client("openid profile email items:read");
        let u = user("items:read");
        let original = ScopeSet::parse("openid profile items:read").unwrap();
        let narrowed = grant_for_refresh(req("openid").as_ref(), &original, &c, &u).unwrap();
        assert_eq!(narrowed.to_string(), "openid");
        assert_eq!(
            grant_for_refresh(None, &original, &c, &u).unwrap(),
            original
        );
        assert!(matches!(
            grant_for_refresh(req("openid email").as_ref(), &original, &c, &u),
            Err(OAuthError::InvalidScope(_))
        ));
        // A permission the user lost is dropped from an implicit refresh.
        let without = grant_for_refresh(None, &original, &c, &user("")).unwrap();
        assert_eq!(without.to_string(), "openid profile");
    }

    #[test]
    fn client_credentials_get_permission_scopes_only() {
        let c = client("openid items:read items:write");
        assert_eq!(
            grant_for_client(None, &c).unwrap().to_string(),
            "items:read items:write"
        );
        assert_eq!(
            grant_for_client(req("items:read").as_ref(), &c)
                .unwrap()
                .to_string(),
            "items:read"
        );
        assert!(matches!(
            grant_for_client(req("openid").as_ref(), &c),
            Err(OAuthError::InvalidScope(_))
        ));
        assert!(matches!(
            grant_for_client(req("admin").as_ref(), &c),
            Err(OAuthError::InvalidScope(_))
        ));
    }

    #[test]
    fn values_ferrid_does_not_define_are_ignored_but_known_permissions_are_not() {
        let c = client("openid email items:read");
        let defined = |s: &str| ["items:read", "items:write"].contains(&s);
        let asked = req("openid profile email phone address groups offline_access items:read");
        assert!(needs_registry(asked.as_ref(), &c));
        let kept = understood(asked, &c, defined).unwrap();
        // profile and offline_access are OIDC scopes this client is not registered for:
        // ignored; phone, address, groups are defined nowhere: ignored.
        assert_eq!(kept.to_string(), "email items:read openid");
        // A permission another client has is kept, so that the client check refuses it.
        let kept = understood(req("openid items:write"), &c, defined).unwrap();
        assert!(matches!(
            check_client(Some(&kept), &c),
            Err(OAuthError::InvalidScope(_))
        ));
        assert!(!needs_registry(req("openid profile").as_ref(), &c));
        assert_eq!(understood(None, &c, defined), None);
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
