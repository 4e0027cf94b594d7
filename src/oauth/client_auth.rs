//! Client authentication at the token endpoint (RFC 6749 §2.3): `client_secret_basic`,
//! `client_secret_post`, and `none` for public clients (§2.1, §3.2.1).

use base64::Engine;
use subtle::ConstantTimeEq;

use super::OAuthError;
use crate::model::{Client, Secret};
use crate::store::Store;
use crate::tokens::opaque::random_token;

/// The credentials of an `Authorization: Basic` header.
#[derive(Debug)]
pub struct BasicCredentials {
    pub client_id: String,
    /// The secret, form-decoded as RFC 6749 §2.3.1 says.
    pub secret: Secret,
    /// The secret exactly as sent, when form-decoding changed it: many clients (Python
    /// requests' `HTTPBasicAuth`, most HTTP libraries) do not form-encode, so a secret with
    /// `+` or `%` would otherwise fail.
    pub as_sent: Option<Secret>,
}

/// How the client presented itself.
#[derive(Debug)]
pub enum ClientAuth {
    /// `Authorization: Basic` (client_secret_basic); `as_sent` as in [`BasicCredentials`].
    Basic {
        client_id: String,
        secret: Secret,
        as_sent: Option<Secret>,
    },
    /// `client_id` and `client_secret` in the form body (client_secret_post).
    Post { client_id: String, secret: Secret },
    /// `client_id` only: a public client (`none`).
    Public { client_id: String },
}

impl ClientAuth {
    /// Combines the Basic header (if any) with the form's `client_id` / `client_secret`.
    /// RFC 6749 §2.3: a client MUST NOT use more than one authentication method per request.
    pub fn from_parts(
        basic: Option<BasicCredentials>,
        form_client_id: Option<&str>,
        form_secret: Option<&str>,
    ) -> Result<Self, OAuthError> {
        match (basic, form_client_id, form_secret) {
            (Some(_), _, Some(_)) => Err(OAuthError::invalid_request(
                "client credentials were sent both in the Authorization header and in the body; use one",
            )),
            (Some(basic), Some(form_id), None) if form_id != basic.client_id => {
                Err(OAuthError::invalid_request(
                    "client_id in the body differs from the one in the Authorization header",
                ))
            }
            (Some(basic), _, None) => Ok(ClientAuth::Basic {
                client_id: basic.client_id,
                secret: basic.secret,
                as_sent: basic.as_sent,
            }),
            (None, Some(id), Some(secret)) => Ok(ClientAuth::Post {
                client_id: id.to_owned(),
                secret: Secret::new(secret),
            }),
            (None, Some(id), None) => Ok(ClientAuth::Public {
                client_id: id.to_owned(),
            }),
            // No client identification at all: authentication failed (§5.2 invalid_client).
            (None, None, _) => Err(OAuthError::InvalidClient),
        }
    }

    pub fn client_id(&self) -> &str {
        match self {
            ClientAuth::Basic { client_id, .. }
            | ClientAuth::Post { client_id, .. }
            | ClientAuth::Public { client_id } => client_id,
        }
    }
}

/// Parses `Authorization: Basic base64(client_id ":" client_secret)`, where both parts are
/// application/x-www-form-urlencoded before encoding (RFC 6749 §2.3.1). `None` when the
/// header is another scheme; `Err(InvalidClient)` when it is Basic but malformed.
pub fn parse_basic(header: &str) -> Result<Option<BasicCredentials>, OAuthError> {
    let Some((scheme, rest)) = header.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| OAuthError::InvalidClient)?;
    let decoded = String::from_utf8(decoded).map_err(|_| OAuthError::InvalidClient)?;
    let (id, raw_secret) = decoded.split_once(':').ok_or(OAuthError::InvalidClient)?;
    let id = form_decode(id);
    if id.is_empty() {
        return Err(OAuthError::InvalidClient);
    }
    let secret = form_decode(raw_secret);
    let as_sent = (secret != raw_secret).then(|| Secret::new(raw_secret));
    Ok(Some(BasicCredentials {
        client_id: id,
        secret: Secret::new(secret),
        as_sent,
    }))
}

fn form_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Authenticates the client. Every failure is the same `invalid_client`, so the answer does
/// not tell an unknown client from a wrong secret.
pub async fn authenticate(store: &Store, auth: &ClientAuth) -> Result<Client, OAuthError> {
    let client = store
        .client(auth.client_id())
        .await
        .map_err(OAuthError::from)?;
    let (presented, as_sent) = match auth {
        ClientAuth::Basic {
            secret, as_sent, ..
        } => (Some(secret), as_sent.as_ref()),
        ClientAuth::Post { secret, .. } => (Some(secret), None),
        ClientAuth::Public { .. } => (None, None),
    };
    // Hash even when there is no client, so both paths do the same work.
    let presented_hash = presented.map(|s| hash_client_secret(s.expose()));
    let as_sent_hash = as_sent.map(|s| hash_client_secret(s.expose()));
    let Some(client) = client else {
        return Err(OAuthError::InvalidClient);
    };
    match (&client.secret_hash, presented_hash) {
        // The decoded secret, or the one as sent (see `BasicCredentials::as_sent`): both
        // compared in constant time, whichever matches.
        (Some(stored), Some(presented))
            if bool::from(
                stored.as_bytes().ct_eq(presented.as_bytes())
                    | as_sent_hash.as_ref().map_or(subtle::Choice::from(0), |h| {
                        stored.as_bytes().ct_eq(h.as_bytes())
                    }),
            ) =>
        {
            Ok(client)
        }
        // A public client authenticates with its id alone (RFC 6749 §2.1, §3.2.1).
        (None, None) => Ok(client),
        _ => Err(OAuthError::InvalidClient),
    }
}

/// A new client secret: 256 random bits, base64url (43 characters).
pub fn new_client_secret() -> anyhow::Result<Secret> {
    random_token().map(Secret::new)
}

pub use crate::model::hash_client_secret;

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    #[test]
    fn basic_credentials_are_form_decoded_and_kept_as_sent_when_that_differs() {
        let got = parse_basic(&basic("my%20app:s%3Ae+cret")).unwrap().unwrap();
        assert_eq!(got.client_id, "my app");
        assert_eq!(got.secret.expose(), "s:e cret");
        assert_eq!(got.as_sent.unwrap().expose(), "s%3Ae+cret");
        let plain = parse_basic(&basic("app:plain-secret")).unwrap().unwrap();
        assert!(plain.as_sent.is_none(), "nothing to fall back to");
        assert!(parse_basic("Bearer abc").unwrap().is_none());
        assert!(parse_basic("basic !!!").is_err());
        assert!(parse_basic(&basic("no-colon")).is_err());
        assert!(parse_basic(&basic(":secret")).is_err());
    }

    #[test]
    fn one_authentication_method_per_request() {
        let b = || {
            Some(BasicCredentials {
                client_id: "app".to_owned(),
                secret: Secret::new("s"),
                as_sent: None,
            })
        };
        assert!(matches!(
            ClientAuth::from_parts(b(), None, Some("s")),
            Err(OAuthError::InvalidRequest(_))
        ));
        assert!(matches!(
            ClientAuth::from_parts(b(), Some("other"), None),
            Err(OAuthError::InvalidRequest(_))
        ));
        assert!(matches!(
            ClientAuth::from_parts(b(), Some("app"), None),
            Ok(ClientAuth::Basic { .. })
        ));
        assert!(matches!(
            ClientAuth::from_parts(None, Some("app"), Some("s")),
            Ok(ClientAuth::Post { .. })
        ));
        assert!(matches!(
            ClientAuth::from_parts(None, Some("app"), None),
            Ok(ClientAuth::Public { .. })
        ));
        assert!(matches!(
            ClientAuth::from_parts(None, None, Some("s")),
            Err(OAuthError::InvalidClient)
        ));
    }

    #[test]
    fn client_secrets_are_256_bit_and_hashed_as_hex_sha256() {
        let s = new_client_secret().unwrap();
        assert_eq!(s.expose().len(), 43);
        assert_eq!(hash_client_secret(s.expose()).len(), 64);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any Authorization header value is parsed or refused; nothing panics.
        #[test]
        fn any_authorization_header_is_handled(value in "\\PC{0,200}") {
            let _ = parse_basic(&value);
            let _ = parse_basic(&format!("Basic {value}"));
        }

        /// Credentials encoded as RFC 6749 §2.3.1 says come back as they were.
        #[test]
        fn basic_credentials_round_trip(id in "\\PC{1,40}", secret in "\\PC{0,60}") {
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let header = format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(&id), enc(&secret))));
            let got = parse_basic(&header).unwrap().unwrap();
            proptest::prop_assert_eq!(got.client_id, id);
            proptest::prop_assert_eq!(got.secret.expose(), secret.as_str());
        }
    }
}
