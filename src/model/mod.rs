//! Plain data shared by every layer. Parse, don't validate: a [`ScopeSet`] or a [`GrantType`]
//! that exists is well-formed.

mod client;
mod user;

pub use client::{
    BackchannelLogoutUri, ClientChanges, ClientId, ClientRegistration, DisplayName,
    InvalidBackchannelLogoutUri, InvalidClient, InvalidClientId, InvalidDisplayName,
    InvalidRedirectUri, MIN_CLIENT_SECRET_CHARS, RedirectUri, RedirectUriPolicy,
    RelyingPartySettings, check_client_shape, hash_client_secret, is_usable_redirect_uri,
};
pub use user::{
    InvalidUsername, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, Username, WeakPassword,
    check_new_password,
};

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// The OpenID Connect scopes ferrid knows (OIDC Core §5.4, §11). Every other scope is a
/// free-form permission string assigned to clients and users.
pub const OPENID: &str = "openid";
pub const PROFILE: &str = "profile";
pub const EMAIL: &str = "email";
pub const OFFLINE_ACCESS: &str = "offline_access";

/// The identity scopes: granted to a user grant when the client may have them, whatever
/// permissions the user holds, since they only describe the user to the client.
pub const IDENTITY_SCOPES: [&str; 3] = [OPENID, PROFILE, EMAIL];

/// A secret that must never reach a log line: its `Debug` is redacted, it has no `Display`
/// and no `PartialEq`; [`Secret::expose`] makes every read explicit.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A set of scope tokens, kept sorted so its string form is canonical.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<String>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a scope may contain only printable ASCII characters other than space, '\"' and '\\'")]
pub struct InvalidScope;

impl ScopeSet {
    /// Parses a space-delimited scope list (RFC 6749 §3.3):
    /// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`, tokens separated by single spaces.
    /// Repeated tokens collapse; an empty string is the empty set.
    pub fn parse(s: &str) -> Result<Self, InvalidScope> {
        s.split(' ')
            .filter(|t| !t.is_empty())
            .map(|t| {
                if t.bytes().all(is_scope_char) {
                    Ok(t.to_owned())
                } else {
                    Err(InvalidScope)
                }
            })
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Self)
    }

    pub fn from_tokens<I, S>(tokens: I) -> Result<Self, InvalidScope>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined: Vec<String> = tokens.into_iter().map(|s| s.as_ref().to_owned()).collect();
        if joined.iter().any(|t| t.is_empty() || t.contains(' ')) {
            return Err(InvalidScope);
        }
        Self::parse(&joined.join(" "))
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
    /// Adds every scope of `other`.
    pub fn extend(&mut self, other: &ScopeSet) {
        self.0.extend(other.0.iter().cloned());
    }
    pub fn remove(&mut self, scope: &str) {
        self.0.remove(scope);
    }
    /// The scopes of `self` that `keep` says yes to.
    pub fn filter(&self, mut keep: impl FnMut(&str) -> bool) -> ScopeSet {
        ScopeSet(self.0.iter().filter(|s| keep(s)).cloned().collect())
    }
}

fn is_scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

/// The grant types of RFC 6749 §4 that a client can be registered for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrantType {
    AuthorizationCode,
    Password,
    ClientCredentials,
    RefreshToken,
}

impl GrantType {
    pub const ALL: [GrantType; 4] = [
        GrantType::AuthorizationCode,
        GrantType::Password,
        GrantType::ClientCredentials,
        GrantType::RefreshToken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::Password => "password",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::RefreshToken => "refresh_token",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown grant type {0:?}; known: authorization_code, password, client_credentials, refresh_token"
)]
pub struct UnknownGrantType(pub String);

impl FromStr for GrantType {
    type Err = UnknownGrantType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GrantType::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| UnknownGrantType(s.to_owned()))
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user account. `id` is a UUID that never changes and is never reused: it is the `sub`.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub username: String,
    /// A PHC string (argon2id) or an imported bcrypt hash (`$2b$…`).
    pub password_hash: Secret,
    pub name: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    /// Free-form permissions this user may be granted (`items:read`, `me`).
    pub scopes: ScopeSet,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Moves on with every password change and disable: each session, refresh family and
    /// code keeps the version it was made under and is dead once this has moved on.
    pub security_version: i64,
    /// When `security_version` last moved (unix seconds).
    pub security_changed_at: i64,
}

/// A registered client (RFC 6749 §2).
#[derive(Clone, Debug, Default)]
pub struct Client {
    pub id: String,
    /// Lower-case hex SHA-256 of the secret; `None` for a public client.
    pub secret_hash: Option<String>,
    pub grant_types: Vec<GrantType>,
    pub scopes: ScopeSet,
    pub redirect_uris: Vec<String>,
    /// `aud` of the access tokens it gets; empty means its own client id.
    pub audiences: Vec<String>,
    pub created_at: i64,
    /// Shown to users on the login and consent pages instead of the id.
    pub name: Option<String>,
    /// Users must allow the client's scopes on a consent page (a third-party app).
    pub consent: bool,
    /// Where RP-initiated logout may send the browser back to (RP-Initiated Logout 1.0
    /// §3.1): registered apart from the redirect URIs, which receive codes.
    pub post_logout_redirect_uris: Vec<String>,
    /// Where logout tokens are POSTed when a session the client signed in ends
    /// (Back-Channel Logout 1.0 §2.2).
    pub backchannel_logout_uri: Option<String>,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }
    pub fn may_use(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
    /// The name users see: the display name, else the id.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_parsing_follows_rfc_6749_section_3_3() {
        let s = ScopeSet::parse("openid  profile openid items:read").unwrap();
        assert_eq!(s.to_string(), "items:read openid profile");
        assert_eq!(ScopeSet::parse("").unwrap(), ScopeSet::default());
        assert_eq!(ScopeSet::parse("a\"b"), Err(InvalidScope));
        assert_eq!(ScopeSet::parse("a\\b"), Err(InvalidScope));
        assert_eq!(ScopeSet::parse("caf\u{e9}"), Err(InvalidScope));
        assert_eq!(ScopeSet::parse("tab\there"), Err(InvalidScope));
        assert!(ScopeSet::from_tokens(["a b"]).is_err());
    }

    #[test]
    fn grant_types_round_trip() {
        for g in GrantType::ALL {
            assert_eq!(g.as_str().parse::<GrantType>().unwrap(), g);
        }
        assert!("implicit".parse::<GrantType>().is_err());
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
