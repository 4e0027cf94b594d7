//! Minting and verifying JWTs, RS256 only, with the keys of [`keys`]. Free of HTTP and SQL.
//!
//! `exp` is checked against the `now` the caller passes (time is a parameter), not against
//! the system clock: jsonwebtoken's own `exp` check is turned off.

pub mod claims;
pub mod keys;
pub mod opaque;

use std::sync::{Arc, RwLock};

use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::Serialize;

pub use claims::{AccessClaims, Audience, IdClaims, ProfileClaims, at_hash};
pub use keys::{KeyError, KeyRing};

/// `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The current key ring, shared by every request and swapped whole on reload.
#[derive(Clone)]
pub struct Keys {
    ring: Arc<RwLock<Arc<KeyRing>>>,
}

impl Keys {
    pub fn new(ring: KeyRing) -> Self {
        Self {
            ring: Arc::new(RwLock::new(Arc::new(ring))),
        }
    }

    pub fn current(&self) -> Arc<KeyRing> {
        match self.ring.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn replace(&self, ring: KeyRing) {
        let ring = Arc::new(ring);
        match self.ring.write() {
            Ok(mut r) => *r = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
    }
}

/// Why a presented access token was refused. Callers answer all of them the same way
/// (`invalid_token`); the variants are for logs and tests.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("not a JWT")]
    Malformed,
    #[error("not an access token (typ must be at+jwt)")]
    WrongType,
    #[error("signed with an algorithm other than RS256")]
    WrongAlgorithm,
    #[error("signed by a key that is not in the JWKS")]
    UnknownKey,
    #[error("signature or claims invalid")]
    Invalid,
    #[error("expired")]
    Expired,
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Signs and verifies the tokens of one issuer.
#[derive(Clone)]
pub struct TokenIssuer {
    issuer: String,
    keys: Keys,
}

impl TokenIssuer {
    pub fn new(issuer: String, keys: Keys) -> Self {
        Self { issuer, keys }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Signs an access token: RS256, `typ: at+jwt`, `kid` of the signing key.
    pub fn sign_access(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        self.sign(Some(ACCESS_TOKEN_TYP), claims)
    }

    /// Signs an ID token: RS256, `typ: JWT`, `kid` of the signing key.
    pub fn sign_id(&self, claims: &IdClaims) -> Result<String, TokenError> {
        self.sign(Some("JWT"), claims)
    }

    /// The JWS Compact Serialization (RFC 7515 §7.1) of `claims`, RS256 (RFC 7518 §3.3:
    /// RSASSA-PKCS1-v1_5 with SHA-256), signed with the ring's parsed key.
    fn sign<T: Serialize>(&self, typ: Option<&str>, claims: &T) -> Result<String, TokenError> {
        let ring = self.keys.current();
        let (kid, key) = ring.signing();
        let mut header = Header::new(Algorithm::RS256);
        header.typ = typ.map(str::to_owned);
        header.kid = Some(kid.to_owned());
        let header = serde_json::to_vec(&header).map_err(|e| TokenError::Sign(e.to_string()))?;
        let claims = serde_json::to_vec(claims).map_err(|e| TokenError::Sign(e.to_string()))?;
        let mut jws = String::with_capacity((header.len() + claims.len()) * 4 / 3 + 360);
        B64.encode_string(&header, &mut jws);
        jws.push('.');
        B64.encode_string(&claims, &mut jws);
        let mut signature = vec![0; key.public_modulus_len()];
        // PKCS#1 v1.5 is deterministic; aws-lc blinds the private operation itself.
        key.sign(
            &RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            jws.as_bytes(),
            &mut signature,
        )
        .map_err(|_| TokenError::Sign("RSA signing failed".into()))?;
        jws.push('.');
        B64.encode_string(&signature, &mut jws);
        Ok(jws)
    }

    /// The `(aud, sub)` of an ID token this issuer signed — an expired one too, as OIDC
    /// RP-Initiated Logout 1.0 §2 allows for `id_token_hint`.
    pub fn id_token_hint(&self, token: &str) -> Result<(String, String), TokenError> {
        self.decode::<IdClaims>(token, &["iss", "sub", "aud"], |typ| {
            !typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP)
        })
        .map(|claims| (claims.aud, claims.sub))
    }

    /// Verifies an access token of this issuer: RS256 only (no `none`, no HMAC keyed with a
    /// public key: RFC 8725 §3.1), `typ` at+jwt (RFC 9068 §4), a `kid` in the JWKS, our `iss`,
    /// and `exp` after `now`.
    pub fn verify_access(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        let claims =
            self.decode::<AccessClaims>(token, &["exp", "iat", "iss", "sub", "aud"], |typ| {
                typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP)
                    || typ.eq_ignore_ascii_case("application/at+jwt")
            })?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// Decodes a JWT of this issuer: RS256 with a `kid` of the key ring, a `typ` that
    /// `typ_ok` accepts (an absent `typ` is the empty string), our `iss`, the `required`
    /// claims. `exp` is left to the caller (time is a parameter here).
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        required: &[&str],
        typ_ok: impl Fn(&str) -> bool,
    ) -> Result<T, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::WrongAlgorithm);
        }
        if !typ_ok(header.typ.as_deref().unwrap_or_default()) {
            return Err(TokenError::WrongType);
        }
        let ring = self.keys.current();
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| ring.decoding_key(kid))
            .ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        validation.required_spec_claims = required.iter().map(|c| (*c).to_owned()).collect();
        jsonwebtoken::decode::<T>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|_| TokenError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    /// One key for all the cases (generating one per case would dominate the run).
    fn issuer() -> &'static TokenIssuer {
        static ISSUER: std::sync::OnceLock<(tempfile::TempDir, TokenIssuer)> =
            std::sync::OnceLock::new();
        &ISSUER
            .get_or_init(|| {
                let dir = tempfile::tempdir().unwrap();
                let ring = keys::load_or_generate(dir.path()).unwrap();
                (
                    dir,
                    TokenIssuer::new("https://id.example".into(), Keys::new(ring)),
                )
            })
            .1
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Arbitrary strings, and JWTs with arbitrary headers and payloads, are refused
        /// without a panic.
        #[test]
        fn junk_tokens_are_refused(junk in "\\PC{0,300}", header in "\\PC{0,120}", payload in "\\PC{0,120}") {
            let issuer = issuer();
            proptest::prop_assert!(issuer.verify_access(&junk, 0).is_err());
            let forged = format!("{}.{}.{}", B64.encode(&header), B64.encode(&payload), B64.encode("sig"));
            proptest::prop_assert!(issuer.verify_access(&forged, 0).is_err());
            proptest::prop_assert!(issuer.id_token_hint(&forged).is_err());
        }
    }

    #[test]
    fn a_token_we_signed_verifies_and_one_bit_flipped_does_not() {
        let issuer = issuer();
        let claims = AccessClaims {
            iss: "https://id.example".into(),
            sub: "u".into(),
            aud: Audience::One("api".into()),
            exp: 2_000_000_000,
            iat: 1_000_000_000,
            jti: "j".into(),
            client_id: "c".into(),
            scope: "openid".into(),
            auth_time: None,
            sid: None,
        };
        let token = issuer.sign_access(&claims).unwrap();
        assert_eq!(
            issuer.verify_access(&token, 1_500_000_000).unwrap().sub,
            "u"
        );
        assert_eq!(
            issuer.verify_access(&token, 2_000_000_000).err(),
            Some(TokenError::Expired)
        );
        let mut bytes = token.into_bytes();
        let i = bytes.len() / 2;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(issuer.verify_access(&tampered, 1_500_000_000).is_err());
    }
}
