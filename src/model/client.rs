//! The rules of client registration, shared by the command line and every other door: a
//! client id, its redirect URIs, a chosen secret, and which combinations make a client.

use super::{Client, GrantType, ScopeSet, Secret};

/// The shortest client secret an operator may choose (stored as a SHA-256 digest, which is
/// safe only for random, long secrets; generated ones have 256 bits).
pub const MIN_CLIENT_SECRET_CHARS: usize = 32;

/// How a client secret is stored: hex SHA-256 (secrets are 256-bit random values, so a fast
/// hash is enough, and clients are looked up by id, then compared in constant time).
pub fn hash_client_secret(secret: &str) -> String {
    crate::digest::sha256_hex(secret)
}

/// A client id: 1 to 128 RFC 3986 unreserved characters, so it needs no escaping anywhere
/// (Basic credentials, URLs, logs), and never UUID-shaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidClientId {
    #[error("a client id must be 1 to 128 characters of A-Z a-z 0-9 - . _ ~")]
    Characters,
    /// A client's own tokens (client_credentials) carry its id as `sub`; user subjects are
    /// UUIDs, so a UUID-shaped client id could pass for a user at a resource server.
    #[error(
        "a client id may not look like a UUID (users' ids are UUIDs); choose a name such as my-app"
    )]
    LooksLikeAUserId,
}

impl ClientId {
    pub fn parse(id: &str) -> Result<Self, InvalidClientId> {
        let ok = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if !ok {
            return Err(InvalidClientId::Characters);
        }
        if uuid::Uuid::parse_str(id).is_ok() {
            return Err(InvalidClientId::LooksLikeAUserId);
        }
        Ok(Self(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What registering a client asks for.
#[derive(Debug)]
pub struct ClientRegistration {
    pub id: ClientId,
    /// `None`: a public client.
    pub secret: Option<Secret>,
    pub grant_types: Vec<GrantType>,
    pub scopes: ScopeSet,
    pub redirect_uris: Vec<RedirectUri>,
    pub audiences: Vec<String>,
}

/// Why a registration is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidClient {
    /// RFC 6749 §4.4: client_credentials is for confidential clients only.
    #[error(
        "a public client cannot use client_credentials; make it confidential or drop that grant"
    )]
    PublicClientCredentials,
    #[error(
        "the authorization_code grant needs at least one redirect URI (where the browser \
         returns with the code; also accepted as post_logout_redirect_uri)"
    )]
    CodeWithoutRedirectUri,
    #[error("a client needs at least one grant type")]
    NoGrantType,
    #[error(
        "a client secret must have at least {MIN_CLIENT_SECRET_CHARS} characters (it is stored \
         as a SHA-256 digest, which is safe only for random secrets); let ferrid generate one"
    )]
    WeakSecret,
}

/// The rules of a registration that do not depend on the secret's value: a door that reads
/// the secret interactively checks these first.
pub fn check_client_shape(
    public: bool,
    grant_types: &[GrantType],
    redirect_uris: &[RedirectUri],
) -> Result<(), InvalidClient> {
    if grant_types.is_empty() {
        return Err(InvalidClient::NoGrantType);
    }
    if public && grant_types.contains(&GrantType::ClientCredentials) {
        return Err(InvalidClient::PublicClientCredentials);
    }
    if grant_types.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
        return Err(InvalidClient::CodeWithoutRedirectUri);
    }
    Ok(())
}

impl Client {
    /// A client as registered at `now`, if the registration follows the rules; its secret
    /// is kept only as a digest.
    pub fn register(r: ClientRegistration, now: i64) -> Result<Client, InvalidClient> {
        check_client_shape(r.secret.is_none(), &r.grant_types, &r.redirect_uris)?;
        if r.secret
            .as_ref()
            .is_some_and(|s| s.expose().chars().count() < MIN_CLIENT_SECRET_CHARS)
        {
            return Err(InvalidClient::WeakSecret);
        }
        let mut grant_types = r.grant_types;
        grant_types.sort();
        grant_types.dedup();
        Ok(Client {
            id: r.id.0,
            secret_hash: r.secret.as_ref().map(|s| hash_client_secret(s.expose())),
            grant_types,
            scopes: r.scopes,
            redirect_uris: r
                .redirect_uris
                .into_iter()
                .map(RedirectUri::into_string)
                .collect(),
            audiences: r.audiences,
            created_at: now,
        })
    }
}

/// Where a client may send the browser back to (RFC 6749 §3.1.2), checked at registration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedirectUriPolicy {
    /// Also accept plain `http` on any host — for development only: codes would cross the
    /// network in the clear (RFC 9700 §4.1).
    pub allow_http_anywhere: bool,
}

/// Why a redirect URI is refused, in words an operator can act on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidRedirectUri {
    #[error("{0:?} is not an absolute URI ({1})")]
    NotAbsolute(String, String),
    #[error("{0:?} has a fragment, which a redirect URI may not have (RFC 6749 section 3.1.2)")]
    Fragment(String),
    #[error(
        "{0:?} uses plain http on a host that is not this machine; use https, or http only on \
         a loopback host (127.0.0.1, [::1] or localhost: RFC 8252 section 7.3)"
    )]
    HttpNotLoopback(String),
    #[error(
        "{0:?} is not allowed: a redirect URI must use https, http on a loopback host \
         (127.0.0.1, [::1] or localhost), or a native app's private-use scheme in reverse-DNS \
         form, with a dot (RFC 8252 section 7.1, e.g. com.example.app:/callback)"
    )]
    Scheme(String),
    #[error("{0:?} has no host")]
    NoHost(String),
}

/// A redirect URI a client may be registered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// An absolute URI without a fragment (RFC 6749 §3.1.2) that is `https`, `http` on a
    /// loopback host (RFC 8252 §7.3), or a private-use scheme with a dot, as native apps use
    /// (RFC 8252 §7.1). Everything else — `javascript:`, `data:`, `file:`, plain `http` to
    /// another host — is refused: a code sent there could run as script or cross the
    /// network in the clear.
    pub fn parse(uri: &str, policy: RedirectUriPolicy) -> Result<Self, InvalidRedirectUri> {
        check_redirect_uri(uri, policy).map(|()| Self(uri.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

fn check_redirect_uri(uri: &str, policy: RedirectUriPolicy) -> Result<(), InvalidRedirectUri> {
    let parsed = url::Url::parse(uri)
        .map_err(|e| InvalidRedirectUri::NotAbsolute(uri.to_owned(), e.to_string()))?;
    if parsed.fragment().is_some() {
        return Err(InvalidRedirectUri::Fragment(uri.to_owned()));
    }
    match parsed.scheme() {
        "https" => match parsed.host() {
            Some(_) => Ok(()),
            None => Err(InvalidRedirectUri::NoHost(uri.to_owned())),
        },
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
                None => return Err(InvalidRedirectUri::NoHost(uri.to_owned())),
            };
            if loopback || policy.allow_http_anywhere {
                Ok(())
            } else {
                Err(InvalidRedirectUri::HttpNotLoopback(uri.to_owned()))
            }
        }
        // RFC 8252 §7.1: "a URI scheme based on a domain name under their control, expressed
        // in reverse order" — so it has a dot; `javascript`, `data`, `file` have none.
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(InvalidRedirectUri::Scheme(uri.to_owned())),
    }
}

/// Whether a redirect URI stored by an earlier version may still be used: every scheme that
/// [`RedirectUri::parse`] refuses whatever the policy (`javascript:`, `data:`, `file:` …) is
/// refused at use too; plain http to another host passes, since it may have been registered
/// with the development flag.
pub fn is_usable_redirect_uri(uri: &str) -> bool {
    let any_http = RedirectUriPolicy {
        allow_http_anywhere: true,
    };
    check_redirect_uri(uri, any_http).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_follow_rfc_8252_and_rfc_6749() {
        let strict = RedirectUriPolicy::default();
        for ok in [
            "https://app.example/cb",
            "https://app.example/cb?x=1",
            "http://127.0.0.1:8000/cb",
            "http://127.1.2.3/cb",
            "http://[::1]:9/cb",
            "http://localhost:3000/cb",
            "http://LOCALHOST/cb",
            "com.example.app:/oauth2redirect",
            "com.example.app:/cb?x=1",
        ] {
            assert_eq!(
                RedirectUri::parse(ok, strict).map(|u| u.into_string()),
                Ok((*ok).to_owned()),
                "{ok}"
            );
        }
        for (bad, why) in [
            ("javascript:alert(1)", "private-use scheme"),
            ("JavaScript:alert(document.cookie)//", "private-use scheme"),
            (
                "data:text/html,<script>alert(1)</script>",
                "private-use scheme",
            ),
            ("file:///etc/passwd", "private-use scheme"),
            ("myapp:/cb", "with a dot"),
            ("http://app.example/cb", "loopback"),
            ("http://127.0.0.1.nip.io/cb", "loopback"),
            ("http://localhost.evil.example/cb", "loopback"),
            ("https://app.example/cb#x", "fragment"),
            ("/relative/cb", "absolute"),
            ("", "absolute"),
        ] {
            let err = RedirectUri::parse(bad, strict).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let dev = RedirectUriPolicy {
            allow_http_anywhere: true,
        };
        assert_eq!(
            RedirectUri::parse("http://app.example/cb", dev).map(|_| ()),
            Ok(())
        );
        assert!(RedirectUri::parse("javascript:alert(1)", dev).is_err());
        assert!(is_usable_redirect_uri("http://app.example/cb"));
        assert!(!is_usable_redirect_uri("javascript:alert(1)"));
        assert!(!is_usable_redirect_uri("data:text/html,x"));
    }

    #[test]
    fn client_ids_are_unreserved_characters_and_never_uuids() {
        assert!(ClientId::parse("my-app.v2_~").is_ok());
        assert_eq!(ClientId::parse(""), Err(InvalidClientId::Characters));
        assert_eq!(ClientId::parse("my app"), Err(InvalidClientId::Characters));
        assert_eq!(
            ClientId::parse(&"a".repeat(129)),
            Err(InvalidClientId::Characters)
        );
        assert_eq!(
            ClientId::parse("6f1c2e1e-8c1a-4b7e-9f0a-1b2c3d4e5f60"),
            Err(InvalidClientId::LooksLikeAUserId)
        );
    }

    #[test]
    fn registrations_follow_the_rules() {
        let registration =
            |secret: Option<&str>, grants: &[GrantType], uris: &[&str]| ClientRegistration {
                id: ClientId::parse("app").unwrap(),
                secret: secret.map(Secret::new),
                grant_types: grants.to_vec(),
                scopes: ScopeSet::parse("openid").unwrap(),
                redirect_uris: uris
                    .iter()
                    .map(|u| RedirectUri::parse(u, RedirectUriPolicy::default()).unwrap())
                    .collect(),
                audiences: vec![],
            };
        let strong = "s".repeat(MIN_CLIENT_SECRET_CHARS);
        let client = Client::register(
            registration(
                Some(&strong),
                &[
                    GrantType::RefreshToken,
                    GrantType::Password,
                    GrantType::Password,
                ],
                &[],
            ),
            7,
        )
        .unwrap();
        assert_eq!(
            client.grant_types,
            vec![GrantType::Password, GrantType::RefreshToken]
        );
        assert_ne!(
            client.secret_hash.as_deref(),
            Some(strong.as_str()),
            "a digest"
        );
        assert_eq!(client.created_at, 7);
        for (r, why) in [
            (
                registration(None, &[GrantType::ClientCredentials], &[]),
                InvalidClient::PublicClientCredentials,
            ),
            (
                registration(None, &[GrantType::AuthorizationCode], &[]),
                InvalidClient::CodeWithoutRedirectUri,
            ),
            (
                registration(Some(&strong), &[], &[]),
                InvalidClient::NoGrantType,
            ),
            (
                registration(Some("short"), &[GrantType::Password], &[]),
                InvalidClient::WeakSecret,
            ),
        ] {
            assert_eq!(Client::register(r, 0).unwrap_err(), why);
        }
        assert!(
            Client::register(
                registration(
                    None,
                    &[GrantType::AuthorizationCode],
                    &["com.example.app:/cb"]
                ),
                0
            )
            .is_ok()
        );
    }
}
