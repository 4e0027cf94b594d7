//! Minting and verifying JWTs, RS256 only, with the keys of [`keys`]. Free of HTTP and SQL.
//!
//! The JWS compact serialization is written and checked in [`jws`], over aws-lc keys parsed
//! once when the key ring loads. (jsonwebtoken re-parses and re-validates the private key for
//! every signature: 629 µs a token against 263 µs with the parsed key, which is what
//! `openssl speed rsa2048` does on the same machine.) `exp` is checked against the `now`
//! the caller passes (time is a parameter), not against the system clock.

pub mod claims;
pub mod jws;
pub mod keys;
pub mod opaque;

use std::sync::{Arc, RwLock};

use aws_lc_rs::signature::ParsedPublicKey;
use serde::Serialize;

pub use claims::{
    AccessClaims, Audience, BACKCHANNEL_LOGOUT_EVENT, IdClaims, LogoutClaims, ProfileClaims,
    at_hash,
};
pub use keys::{KeyError, KeyRing};

/// `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// `typ` of logout tokens (Back-Channel Logout 1.0 §2.4: explicit typing, so that a logout
/// token can never pass for an ID token or the other way round).
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";

/// The login an `id_token_hint` names: its client, user and session at that client (`sid`,
/// absent from ID tokens of earlier versions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdTokenHint {
    pub aud: String,
    pub sub: String,
    pub sid: Option<String>,
}

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
    #[error("not valid yet (iat or nbf ahead of this server's clock beyond the allowed skew)")]
    NotYetValid,
    #[error("signing failed: {0}")]
    Sign(String),
}

/// How far a token's `iat` or `nbf` may be ahead of this server's clock (replicas' clocks
/// may disagree a little; more is a forged or broken token).
pub const CLOCK_SKEW_SECS: i64 = 30;

impl From<jws::JwsError> for TokenError {
    fn from(e: jws::JwsError) -> Self {
        match e {
            jws::JwsError::Malformed => TokenError::Malformed,
            jws::JwsError::WrongAlgorithm => TokenError::WrongAlgorithm,
            jws::JwsError::Invalid => TokenError::Invalid,
            jws::JwsError::Sign(why) => TokenError::Sign(why),
        }
    }
}

/// Signs and verifies the tokens of one issuer.
#[derive(Clone)]
pub struct TokenIssuer {
    issuer: String,
    keys: Keys,
    verified: Arc<VerifiedTokens>,
}

/// Access tokens that verified, by their text, with the `kid` that signed them.
///
/// A resource server presents one token to /userinfo or /introspect many times over its
/// life, and the signature check is most of such a request's CPU (~15 µs of RSA). Only
/// what cannot change is remembered: that these exact bytes carry our valid signature and
/// well-formed claims. An entry counts only while its key is still in the ring (a retired
/// key's tokens fail at once); `exp` is checked on every use, and revocation, session and
/// user by the caller, in the database, on every request. Bounded: when full, it starts
/// over.
#[derive(Default)]
struct VerifiedTokens {
    tokens: std::sync::Mutex<std::collections::HashMap<String, (String, AccessClaims)>>,
}

/// Entries in [`VerifiedTokens`]: about 1 KiB each.
const VERIFIED_CAPACITY: usize = 4096;

impl VerifiedTokens {
    fn get(&self, token: &str) -> Option<(String, AccessClaims)> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.get(token).cloned()
    }

    fn insert(&self, token: &str, kid: String, claims: &AccessClaims) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if tokens.len() >= VERIFIED_CAPACITY {
            tokens.clear();
        }
        tokens.insert(token.to_owned(), (kid, claims.clone()));
    }
}

impl TokenIssuer {
    pub fn new(issuer: String, keys: Keys) -> Self {
        Self {
            issuer,
            keys,
            verified: Arc::default(),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Signs an access token: RS256, `typ: at+jwt`, `kid` of the signing key.
    pub fn sign_access(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        self.sign(Some(ACCESS_TOKEN_TYP), claims, claims.iat)
    }

    /// Signs an ID token: RS256, `typ: JWT`, `kid` of the signing key.
    pub fn sign_id(&self, claims: &IdClaims) -> Result<String, TokenError> {
        self.sign(Some("JWT"), claims, claims.iat)
    }

    /// Signs a logout token: RS256, `typ: logout+jwt`, `kid` of the signing key.
    pub fn sign_logout(&self, claims: &LogoutClaims) -> Result<String, TokenError> {
        self.sign(Some(LOGOUT_TOKEN_TYP), claims, claims.iat)
    }

    /// The JWS Compact Serialization of `claims`, signed with the key that signs at `now`
    /// (the token's `iat`).
    fn sign<T: Serialize>(
        &self,
        typ: Option<&str>,
        claims: &T,
        now: i64,
    ) -> Result<String, TokenError> {
        let ring = self.keys.current();
        let (kid, key) = ring.signing(now);
        jws::sign(key, kid, typ, claims).map_err(TokenError::from)
    }

    /// What an ID token this issuer signed says of its login — an expired one too, as OIDC
    /// RP-Initiated Logout 1.0 §2 allows for `id_token_hint`.
    pub fn id_token_hint(&self, token: &str) -> Result<IdTokenHint, TokenError> {
        // Signed by any key still in the keys dir: an old login's hint may come after its key
        // left the JWKS. (It grants nothing; it names the login to end.)
        self.decode::<IdClaims>(
            token,
            |typ| !is_access_token_typ(typ) && !typ.eq_ignore_ascii_case(LOGOUT_TOKEN_TYP),
            KeyRing::any_key,
        )
        .map(|(claims, _)| IdTokenHint {
            aud: claims.aud,
            sub: claims.sub,
            sid: claims.sid,
        })
    }

    /// Verifies an access token of this issuer: RS256 only (no `none`, no HMAC keyed with a
    /// public key: RFC 8725 §3.1), `typ` at+jwt (RFC 9068 §4), a `kid` in the JWKS, our `iss`,
    /// `exp` after `now`, and `iat` and `nbf` (if any) no later than `now` plus
    /// [`CLOCK_SKEW_SECS`].
    pub fn verify_access(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        let known = self
            .verified
            .get(token)
            .filter(|(kid, _)| self.keys.current().verifying_key(kid).is_some());
        let claims = match known {
            Some((_, claims)) => claims,
            None => {
                let (claims, kid) = self.decode::<AccessClaims>(
                    token,
                    is_access_token_typ,
                    KeyRing::verifying_key,
                )?;
                self.verified.insert(token, kid, &claims);
                claims
            }
        };
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        // RFC 7519 §4.1.5 (nbf), and an `iat` from the future: a token is not accepted
        // before it was issued, give or take the clocks of replicas that disagree a little.
        if claims.iat > now + CLOCK_SKEW_SECS
            || claims.nbf.is_some_and(|nbf| nbf > now + CLOCK_SKEW_SECS)
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }

    /// Decodes a JWT of this issuer (RFC 7515 §5.2, compact serialization): RS256 (RFC 7518
    /// §3.3) with a `kid` of the key ring, a `typ` that `typ_ok` accepts (an absent `typ` is
    /// the empty string), no `crit` (§4.1.11: we understand no extension), a valid
    /// signature, then claims that parse as `T` (which makes its claims required) with our
    /// `iss`. `exp` is left to the caller (time is a parameter here). The key was parsed
    /// once, at load: verification is the signature check alone.
    /// Returns the claims and the `kid` that signed them.
    fn decode<T: serde::de::DeserializeOwned + Issued>(
        &self,
        token: &str,
        typ_ok: impl Fn(&str) -> bool,
        key_of: for<'r> fn(&'r KeyRing, &str) -> Option<&'r ParsedPublicKey>,
    ) -> Result<(T, String), TokenError> {
        let jws = jws::parse(token)?;
        if !typ_ok(jws.typ()) {
            return Err(TokenError::WrongType);
        }
        let ring = self.keys.current();
        let (kid, key) = jws
            .kid()
            .and_then(|kid| key_of(&ring, kid).map(|key| (kid.to_owned(), key)))
            .ok_or(TokenError::UnknownKey)?;
        let claims: T = jws.verify(key)?;
        if claims.iss() != self.issuer {
            return Err(TokenError::Invalid);
        }
        Ok((claims, kid))
    }
}

/// RFC 9068 §4: `at+jwt`, or its full media type `application/at+jwt`, in any case.
fn is_access_token_typ(typ: &str) -> bool {
    typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || typ.eq_ignore_ascii_case("application/at+jwt")
}

/// Claims that name their issuer.
trait Issued {
    fn iss(&self) -> &str;
}

impl Issued for AccessClaims {
    fn iss(&self) -> &str {
        &self.iss
    }
}

impl Issued for IdClaims {
    fn iss(&self) -> &str {
        &self.iss
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::RSA_PKCS1_SHA256;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    /// One key for all the cases (generating one per case would dominate the run).
    fn issuer() -> &'static TokenIssuer {
        static ISSUER: std::sync::OnceLock<(tempfile::TempDir, TokenIssuer)> =
            std::sync::OnceLock::new();
        &ISSUER
            .get_or_init(|| {
                let dir = tempfile::tempdir().unwrap();
                let ring =
                    keys::load_or_generate(dir.path(), 0, keys::KeyPolicy::default()).unwrap();
                (
                    dir,
                    TokenIssuer::new("https://id.example".into(), Keys::new(ring)),
                )
            })
            .1
    }

    /// Claims of a token of `https://id.example` valid from 2001 to 2033.
    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "https://id.example".into(),
            sub: "u".into(),
            aud: Audience::One("api".into()),
            exp: 2_000_000_000,
            iat: 1_000_000_000,
            nbf: None,
            jti: "j".into(),
            client_id: "c".into(),
            scope: "openid".into(),
            auth_time: None,
            sid: None,
        }
    }

    /// RFC 7519 §4.1.5 and §4.1.6: a token whose `nbf` or `iat` is ahead of the clock by more
    /// than the skew is refused — also once it was remembered as verified.
    #[test]
    fn tokens_from_the_future_are_refused_beyond_the_skew() {
        let issuer = issuer();
        let now = 1_500_000_000;
        let at = |iat: i64, nbf: Option<i64>| {
            let token = issuer
                .sign_access(&AccessClaims {
                    iat,
                    nbf,
                    ..claims()
                })
                .unwrap();
            issuer.verify_access(&token, now)
        };
        assert!(at(now, None).is_ok());
        assert!(at(now + CLOCK_SKEW_SECS, None).is_ok(), "within the skew");
        assert_eq!(
            at(now + CLOCK_SKEW_SECS + 1, None).unwrap_err(),
            TokenError::NotYetValid
        );
        assert!(at(now, Some(now + CLOCK_SKEW_SECS)).is_ok());
        assert_eq!(
            at(now, Some(now + CLOCK_SKEW_SECS + 1)).unwrap_err(),
            TokenError::NotYetValid
        );
        // Verified once, with a later clock; presented again with the earlier one.
        let token = issuer
            .sign_access(&AccessClaims {
                iat: now + 600,
                ..claims()
            })
            .unwrap();
        assert!(issuer.verify_access(&token, now + 600).is_ok());
        assert_eq!(
            issuer.verify_access(&token, now).unwrap_err(),
            TokenError::NotYetValid
        );
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

    /// Tokens signed with our key but with headers we must not accept (RFC 7515 §4.1.11
    /// `crit`; RFC 8725 §3.1 algorithms; RFC 9068 §4 `typ`), or not in three parts.
    #[test]
    fn headers_we_do_not_understand_are_refused_even_when_the_signature_is_ours() {
        let issuer = issuer();
        let ring = issuer.keys().current();
        let (kid, key) = ring.signing(0);
        let claims = serde_json::json!({
            "iss": "https://id.example", "sub": "u", "aud": "api", "exp": 2_000_000_000_i64,
            "iat": 1_000_000_000_i64, "jti": "j", "client_id": "c", "scope": "openid",
        });
        let sign = |header: serde_json::Value| {
            let input = format!(
                "{}.{}",
                B64.encode(header.to_string()),
                B64.encode(claims.to_string())
            );
            let mut sig = vec![0; key.public_modulus_len()];
            key.sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .unwrap();
            format!("{input}.{}", B64.encode(sig))
        };
        let now = 1_500_000_000;
        let good = sign(serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": kid}));
        assert_eq!(issuer.verify_access(&good, now).unwrap().sub, "u");
        let cases = [
            (
                serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": kid, "crit": ["exp"], "exp": 1}),
                TokenError::Invalid,
            ),
            (
                serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": kid, "crit": null}),
                TokenError::Invalid,
            ),
            (
                serde_json::json!({"alg": "RS384", "typ": "at+jwt", "kid": kid}),
                TokenError::WrongAlgorithm,
            ),
            (
                serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": kid}),
                TokenError::WrongAlgorithm,
            ),
            (
                serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": kid}),
                TokenError::WrongType,
            ),
            (
                serde_json::json!({"alg": "RS256", "typ": "at+jwt"}),
                TokenError::UnknownKey,
            ),
            (
                serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": "someone-else"}),
                TokenError::UnknownKey,
            ),
        ];
        for (header, why) in cases {
            let token = sign(header.clone());
            assert_eq!(
                issuer.verify_access(&token, now).err(),
                Some(why),
                "{header}"
            );
        }
        assert_eq!(
            issuer.verify_access(&format!("{good}.x"), now).err(),
            Some(TokenError::Malformed)
        );
        // An access token is no id_token_hint, whichever way its typ is spelled.
        let full =
            sign(serde_json::json!({"alg": "RS256", "typ": "application/at+jwt", "kid": kid}));
        assert_eq!(issuer.verify_access(&full, now).unwrap().sub, "u");
        for token in [&good, &full] {
            assert_eq!(
                issuer.id_token_hint(token).err(),
                Some(TokenError::WrongType)
            );
        }
        let unsigned = good.rsplit_once('.').unwrap().0.to_owned() + ".";
        assert_eq!(
            issuer.verify_access(&unsigned, now).err(),
            Some(TokenError::Invalid)
        );
    }

    /// A token verified once is remembered, but only while its key is in the ring, and
    /// its `exp` still counts.
    #[test]
    fn a_remembered_token_still_expires_and_dies_with_its_key() {
        let (dir, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let keys =
            Keys::new(keys::load_or_generate(dir.path(), 0, keys::KeyPolicy::default()).unwrap());
        let issuer = TokenIssuer::new("https://id.example".into(), keys.clone());
        let claims = claims();
        let token = issuer.sign_access(&claims).unwrap();
        for _ in 0..2 {
            assert_eq!(
                issuer.verify_access(&token, 1_500_000_000).unwrap().jti,
                "j"
            );
        }
        assert_eq!(
            issuer.verify_access(&token, 2_000_000_000).err(),
            Some(TokenError::Expired)
        );
        // The key leaves the ring (retired): the remembered token fails like any other.
        keys.replace(keys::load_or_generate(other.path(), 0, keys::KeyPolicy::default()).unwrap());
        assert_eq!(
            issuer.verify_access(&token, 1_500_000_000).err(),
            Some(TokenError::UnknownKey)
        );
    }

    /// An `id_token_hint` signed by a key that has left the JWKS (its file still in the dir)
    /// still names its login, as RP-Initiated Logout 1.0 §2 lets it be expired; an access
    /// token of that key is refused.
    #[test]
    fn a_hint_outlives_its_keys_publication_but_an_access_token_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let policy = keys::KeyPolicy {
            retire_after: Some(60),
            schedule: None,
        };
        let keys = Keys::new(keys::load_or_generate(dir.path(), 1_000, policy).unwrap());
        let issuer = TokenIssuer::new("https://id.example".into(), keys.clone());
        let id: IdClaims = serde_json::from_value(serde_json::json!({
            "iss": "https://id.example", "sub": "u", "aud": "rp", "exp": 1_100, "iat": 1_000,
            "auth_time": 1_000, "at_hash": "x", "sid": "s",
        }))
        .unwrap();
        let hint = issuer.sign_id(&id).unwrap();
        let mut access = claims();
        access.iat = 1_000;
        access.exp = 5_000;
        let token = issuer.sign_access(&access).unwrap();
        keys::generate(dir.path(), 2_000).unwrap();
        keys.replace(keys::load(dir.path(), 3_000, policy, None).unwrap());
        assert_eq!(
            issuer.verify_access(&token, 3_000).err(),
            Some(TokenError::UnknownKey),
            "out of the JWKS: grants nothing"
        );
        assert_eq!(
            issuer.id_token_hint(&hint).unwrap().sid.as_deref(),
            Some("s")
        );
    }

    #[test]
    fn a_token_we_signed_verifies_and_one_bit_flipped_does_not() {
        let issuer = issuer();
        let claims = claims();
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
