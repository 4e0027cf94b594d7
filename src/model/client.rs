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
    pub settings: RelyingPartySettings,
}

/// What a client shows users and how it learns of logouts: set at registration, changed by
/// an update.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelyingPartySettings {
    pub name: Option<DisplayName>,
    pub consent: bool,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub backchannel_logout_uri: Option<BackchannelLogoutUri>,
}

/// A change to a registered client; `None` keeps what is stored, a given list replaces the
/// stored one. The secret is not part of it (`rotate-secret`), nor is being public.
#[derive(Clone, Debug, Default)]
pub struct ClientChanges {
    pub grant_types: Option<Vec<GrantType>>,
    pub scopes: Option<ScopeSet>,
    pub redirect_uris: Option<Vec<RedirectUri>>,
    pub audiences: Option<Vec<String>>,
    pub name: Option<Option<DisplayName>>,
    pub consent: Option<bool>,
    pub post_logout_redirect_uris: Option<Vec<RedirectUri>>,
    pub backchannel_logout_uri: Option<Option<BackchannelLogoutUri>>,
}

/// The name users see on the login and consent pages: 1 to 100 characters, no control
/// characters, no leading or trailing space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisplayName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "a display name must be 1 to 100 characters without control or invisible formatting characters"
)]
pub struct InvalidDisplayName;

impl DisplayName {
    pub fn parse(name: &str) -> Result<Self, InvalidDisplayName> {
        let name = name.trim();
        let invisible = |c: char| c.is_control() || is_format_char(c);
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(invisible) {
            return Err(InvalidDisplayName);
        }
        Ok(Self(name.to_owned()))
    }
}

/// Unicode format characters (category Cf) that can make a name on the consent page read
/// as another (bidirectional overrides and isolates, zero-width characters).
fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// Where a client receives logout tokens (Back-Channel Logout 1.0 §2.2): `https`, or `http`
/// on a loopback host only — a logout token is a bearer credential for ending sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackchannelLogoutUri(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidBackchannelLogoutUri {
    #[error(
        "{0:?} is not allowed: a back-channel logout URI must be an absolute https URI, or \
         http on a loopback host (127.0.0.1, [::1] or localhost), without a fragment"
    )]
    Scheme(String),
}

impl BackchannelLogoutUri {
    pub fn parse(uri: &str) -> Result<Self, InvalidBackchannelLogoutUri> {
        let refused = || InvalidBackchannelLogoutUri::Scheme(uri.to_owned());
        let parsed = url::Url::parse(uri).map_err(|_| refused())?;
        let web = matches!(parsed.scheme(), "http" | "https");
        // Back-Channel Logout 1.0 §2.2: "MAY contain port, path, and query parameter
        // components" but "MUST NOT include any fragment component".
        if !web || parsed.fragment().is_some() {
            return Err(refused());
        }
        check_redirect_uri(uri, RedirectUriPolicy::default()).map_err(|_| refused())?;
        // Stored as the URL parser writes it (spaces percent-encoded, hosts in ASCII), which
        // every HTTP client accepts.
        Ok(Self(parsed.as_str().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
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
         returns with the code)"
    )]
    CodeWithoutRedirectUri,
    /// A confidential client may have none (a resource server that only introspects).
    #[error("a public client needs at least one grant type")]
    NoGrantType,
    /// The password grant has no page to show consent on: a client that must ask users
    /// (a third-party app) uses the authorization-code flow.
    #[error(
        "a client that asks for consent cannot use the password grant (users would never see \
         the consent page); drop --consent or that grant"
    )]
    ConsentWithPassword,
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
    consent: bool,
    grant_types: &[GrantType],
    redirect_uris: &[RedirectUri],
) -> Result<(), InvalidClient> {
    if consent && grant_types.contains(&GrantType::Password) {
        return Err(InvalidClient::ConsentWithPassword);
    }
    if public && grant_types.is_empty() {
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
        check_client_shape(
            r.secret.is_none(),
            r.settings.consent,
            &r.grant_types,
            &r.redirect_uris,
        )?;
        if r.secret
            .as_ref()
            .is_some_and(|s| s.expose().chars().count() < MIN_CLIENT_SECRET_CHARS)
        {
            return Err(InvalidClient::WeakSecret);
        }
        let mut client = Client {
            id: r.id.0,
            secret_hash: r.secret.as_ref().map(|s| hash_client_secret(s.expose())),
            grant_types: canonical(r.grant_types),
            scopes: r.scopes,
            redirect_uris: uri_strings(r.redirect_uris),
            audiences: r.audiences,
            created_at: now,
            ..Client::default()
        };
        client.apply_settings(r.settings);
        Ok(client)
    }

    /// The client with `changes` applied, if the result follows the registration rules. Its
    /// id, secret and registration time stay, so its live tokens stay valid.
    pub fn updated(&self, changes: ClientChanges) -> Result<Client, InvalidClient> {
        let mut c = self.clone();
        if let Some(g) = changes.grant_types {
            c.grant_types = canonical(g);
        }
        if let Some(s) = changes.scopes {
            c.scopes = s;
        }
        if let Some(u) = changes.redirect_uris {
            c.redirect_uris = uri_strings(u);
        }
        if let Some(a) = changes.audiences {
            c.audiences = a;
        }
        if let Some(n) = changes.name {
            c.name = n.map(|n| n.0);
        }
        if let Some(consent) = changes.consent {
            c.consent = consent;
        }
        if let Some(u) = changes.post_logout_redirect_uris {
            c.post_logout_redirect_uris = uri_strings(u);
        }
        if let Some(u) = changes.backchannel_logout_uri {
            c.backchannel_logout_uri = u.map(|u| u.0);
        }
        let redirect_uris = c
            .redirect_uris
            .iter()
            .map(|u| RedirectUri(u.clone()))
            .collect::<Vec<_>>();
        check_client_shape(c.is_public(), c.consent, &c.grant_types, &redirect_uris)?;
        Ok(c)
    }

    fn apply_settings(&mut self, s: RelyingPartySettings) {
        self.name = s.name.map(|n| n.0);
        self.consent = s.consent;
        self.post_logout_redirect_uris = uri_strings(s.post_logout_redirect_uris);
        self.backchannel_logout_uri = s.backchannel_logout_uri.map(|u| u.0);
    }
}

fn canonical(mut grant_types: Vec<GrantType>) -> Vec<GrantType> {
    grant_types.sort();
    grant_types.dedup();
    grant_types
}

fn uri_strings(uris: Vec<RedirectUri>) -> Vec<String> {
    uris.into_iter().map(RedirectUri::into_string).collect()
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
                settings: RelyingPartySettings::default(),
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
            (registration(None, &[], &[]), InvalidClient::NoGrantType),
            (
                with_consent(registration(Some(&strong), &[GrantType::Password], &[])),
                InvalidClient::ConsentWithPassword,
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
        // A resource server that only introspects: confidential, no grant type.
        let resource_server = Client::register(registration(Some(&strong), &[], &[]), 0).unwrap();
        assert!(resource_server.grant_types.is_empty());
    }

    fn with_consent(mut r: ClientRegistration) -> ClientRegistration {
        r.settings.consent = true;
        r
    }

    #[test]
    fn an_update_replaces_what_it_names_and_keeps_the_rest() {
        let client = Client {
            id: "app".into(),
            secret_hash: Some("digest".into()),
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: ScopeSet::parse("openid").unwrap(),
            redirect_uris: vec!["https://app.example/cb".into()],
            created_at: 5,
            ..Client::default()
        };
        let uri = |u: &str| RedirectUri::parse(u, RedirectUriPolicy::default()).unwrap();
        let updated = client
            .updated(ClientChanges {
                scopes: Some(ScopeSet::parse("openid email").unwrap()),
                name: Some(Some(DisplayName::parse(" Example App ").unwrap())),
                consent: Some(true),
                post_logout_redirect_uris: Some(vec![uri("https://app.example/bye")]),
                backchannel_logout_uri: Some(Some(
                    BackchannelLogoutUri::parse("https://app.example/logout").unwrap(),
                )),
                ..ClientChanges::default()
            })
            .unwrap();
        assert_eq!(updated.scopes.to_string(), "email openid");
        assert_eq!(updated.display_name(), "Example App");
        assert!(updated.consent);
        assert_eq!(
            updated.post_logout_redirect_uris,
            ["https://app.example/bye"]
        );
        assert_eq!(updated.redirect_uris, client.redirect_uris, "kept");
        assert_eq!(
            updated.secret_hash, client.secret_hash,
            "the secret is kept"
        );
        assert_eq!(updated.created_at, 5, "so are its live tokens");
        // The result must follow the registration rules.
        assert_eq!(
            client
                .updated(ClientChanges {
                    redirect_uris: Some(vec![]),
                    ..ClientChanges::default()
                })
                .unwrap_err(),
            InvalidClient::CodeWithoutRedirectUri
        );
    }

    #[test]
    fn back_channel_logout_uris_are_https_or_loopback_http() {
        for ok in [
            "https://rp.example/backchannel?x=1",
            "http://127.0.0.1:8080/logout",
            "http://localhost/logout",
        ] {
            assert!(BackchannelLogoutUri::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://rp.example/logout",
            "https://rp.example/logout#f",
            "com.example.app:/logout",
            "javascript:alert(1)",
            "logout",
        ] {
            assert!(BackchannelLogoutUri::parse(bad).is_err(), "{bad}");
        }
        assert!(DisplayName::parse("  ").is_err());
        assert!(DisplayName::parse("a\u{7}b").is_err());
        assert!(
            DisplayName::parse("Bank\u{202E}ppa").is_err(),
            "a bidi override"
        );
        assert!(DisplayName::parse("Zero\u{200B}width").is_err());
        assert_eq!(
            BackchannelLogoutUri::parse("https://rp.example/logout?a b")
                .unwrap()
                .as_str(),
            "https://rp.example/logout?a%20b"
        );
        assert!(DisplayName::parse(&"n".repeat(101)).is_err());
    }
}
