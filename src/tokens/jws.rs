//! JWS Compact Serialization (RFC 7515 §7.1) with RS256 (RFC 7518 §3.3: RSASSA-PKCS1-v1_5
//! with SHA-256), and nothing else. Two calls:
//!
//! - [`sign`]: claims → `BASE64URL(header) . BASE64URL(claims) . BASE64URL(signature)`, the
//!   header `{"typ", "alg": "RS256", "kid"}`.
//! - [`parse`] → [`Unverified`]: the header read and checked (`alg` is RS256, no `crit`,
//!   three parts of unpadded base64url); the caller picks the key by [`Unverified::kid`]
//!   and calls [`Unverified::verify`], which checks the signature over the parts as sent
//!   before it reads the claims.
//!
//! Keys are aws-lc's, parsed once when the key ring loads (see `tokens::keys`). Which claims
//! are required, and what `iss`, `typ`, `exp` must be, is the caller's business.

use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a JWS was refused, or could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwsError {
    /// Not three parts of base64url, or a header that is not a JSON object.
    #[error("not a JWS in compact serialization")]
    Malformed,
    /// `alg` other than RS256 (RFC 8725 §3.1: never `none`, never HMAC keyed with a public key).
    #[error("signed with an algorithm other than RS256")]
    WrongAlgorithm,
    /// A `crit` header (RFC 7515 §4.1.11: we understand no extension), a bad signature, or
    /// claims that do not parse.
    #[error("signature or claims invalid")]
    Invalid,
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Signs `claims` with `key`, naming it `kid`, with `typ` in the header if given.
pub fn sign<T: Serialize>(
    key: &KeyPair,
    kid: &str,
    typ: Option<&str>,
    claims: &T,
) -> Result<String, JwsError> {
    // The JOSE header (RFC 7515 §4.1): typ, alg, kid.
    #[derive(Serialize)]
    struct Header<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        typ: Option<&'a str>,
        alg: &'static str,
        kid: &'a str,
    }
    let header = Header {
        typ,
        alg: "RS256",
        kid,
    };
    let header = serde_json::to_vec(&header).map_err(|e| JwsError::Sign(e.to_string()))?;
    let claims = serde_json::to_vec(claims).map_err(|e| JwsError::Sign(e.to_string()))?;
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
    .map_err(|_| JwsError::Sign("RSA signing failed".into()))?;
    jws.push('.');
    B64.encode_string(&signature, &mut jws);
    Ok(jws)
}

/// A compact JWS whose header passed [`parse`], its signature not checked yet.
#[derive(Debug)]
pub struct Unverified<'a> {
    typ: Option<String>,
    kid: Option<String>,
    /// The first two parts, as sent: what the signature covers (§5.2 step 8).
    signing_input: &'a str,
    payload_b64: &'a str,
    signature_b64: &'a str,
}

/// Splits a compact JWS and checks its header (RFC 7515 §5.2 steps 1–5, as far as RS256 and
/// no extensions go).
pub fn parse(token: &str) -> Result<Unverified<'_>, JwsError> {
    #[derive(serde::Deserialize)]
    struct Header {
        alg: String,
        #[serde(default)]
        typ: Option<String>,
        #[serde(default)]
        kid: Option<String>,
        #[serde(default)]
        crit: Present,
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    // A JSON object (§4), not any JSON that serde would read into the struct (an array).
    let header: Header = B64
        .decode(header_b64)
        .ok()
        .filter(|json| json.trim_ascii_start().starts_with(b"{"))
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or(JwsError::Malformed)?;
    if header.alg != "RS256" {
        return Err(JwsError::WrongAlgorithm);
    }
    if header.crit.0 {
        return Err(JwsError::Invalid);
    }
    Ok(Unverified {
        typ: header.typ,
        kid: header.kid,
        signing_input: &token[..header_b64.len() + 1 + payload_b64.len()],
        payload_b64,
        signature_b64,
    })
}

impl Unverified<'_> {
    /// `typ`, or the empty string when the header has none.
    pub fn typ(&self) -> &str {
        self.typ.as_deref().unwrap_or_default()
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Checks the signature with `key`, then reads the claims as `T` (which makes its
    /// fields required).
    pub fn verify<T: DeserializeOwned>(&self, key: &ParsedPublicKey) -> Result<T, JwsError> {
        let signature = B64
            .decode(self.signature_b64)
            .map_err(|_| JwsError::Invalid)?;
        key.verify_sig(self.signing_input.as_bytes(), &signature)
            .map_err(|_| JwsError::Invalid)?;
        B64.decode(self.payload_b64)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(JwsError::Invalid)
    }
}

/// Whether a JSON member was there at all — with any value, `null` included.
#[derive(Debug, Default)]
struct Present(bool);

impl<'de> serde::Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Present(true))
    }
}

/// Differential tests against an implementation nobody here wrote: what ferrid signs
/// verifies with jsonwebtoken, what jsonwebtoken signs with ferrid's key verifies here, and
/// every mutation of a token — header, claims, signature, encoding — is refused by both.
#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256};
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    struct Fixture {
        pair: KeyPair,
        public: ParsedPublicKey,
        theirs_encoding: EncodingKey,
        theirs_decoding: DecodingKey,
    }

    /// One key for every case (generating one per case would dominate the run).
    fn fixture() -> &'static Fixture {
        static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
        FIXTURE.get_or_init(|| {
            let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
            let der = AsDer::<Pkcs8V1Der>::as_der(&pair).unwrap();
            let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
            let public =
                ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pair.public_key().as_ref())
                    .unwrap();
            let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
            Fixture {
                theirs_encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
                theirs_decoding: DecodingKey::from_rsa_raw_components(&components.n, &components.e),
                public,
                pair,
            }
        })
    }

    fn theirs_accept(token: &str) -> Option<Value> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(token, &fixture().theirs_decoding, &validation)
            .ok()
            .map(|data| data.claims)
    }

    fn ours_accept(token: &str) -> Option<Value> {
        parse(token).ok()?.verify(&fixture().public).ok()
    }

    fn claims() -> impl Strategy<Value = Value> {
        (
            "\\PC{0,40}",
            any::<i64>(),
            proptest::collection::vec("[a-z:]{1,12}", 0..4),
        )
            .prop_map(|(sub, iat, scopes)| {
                json!({"iss": "https://id.example", "sub": sub, "iat": iat, "scope": scopes.join(" ")})
            })
    }

    /// A change to one of the token's characters, or to its shape.
    #[derive(Clone, Debug)]
    enum Mutation {
        /// Replace the character at this position (modulo the length) with another one of
        /// the base64url alphabet.
        Flip(usize, u8),
        /// Add padding, which the compact serialization does not use.
        Pad(usize),
        /// Insert a character outside base64url.
        Junk(usize),
        /// Drop the last part.
        Truncate,
        /// Swap in a header that asks for another algorithm (not re-signed).
        Algorithm(&'static str),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), 0u8..64).prop_map(|(i, c)| Mutation::Flip(i, c)),
            (0usize..3).prop_map(Mutation::Pad),
            any::<usize>().prop_map(Mutation::Junk),
            Just(Mutation::Truncate),
            prop_oneof![Just("none"), Just("HS256"), Just("RS384"), Just("PS256")]
                .prop_map(Mutation::Algorithm),
        ]
    }

    fn mutate(token: &str, m: &Mutation) -> Option<String> {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut bytes = token.as_bytes().to_vec();
        match m {
            Mutation::Flip(i, c) => {
                let i = i % bytes.len();
                let new = ALPHABET[usize::from(*c)];
                if bytes[i] == b'.' || bytes[i] == new {
                    return None;
                }
                bytes[i] = new;
            }
            Mutation::Pad(part) => {
                let end = token
                    .match_indices('.')
                    .map(|(i, _)| i)
                    .chain([token.len()])
                    .nth(*part)?;
                bytes.insert(end, b'=');
            }
            Mutation::Junk(i) => bytes.insert(i % bytes.len(), b'*'),
            Mutation::Truncate => {
                let last = token.rfind('.')?;
                bytes.truncate(last);
            }
            Mutation::Algorithm(alg) => {
                let (_, rest) = token.split_once('.')?;
                let header = B64.encode(json!({"alg": alg, "typ": "JWT", "kid": "k"}).to_string());
                return Some(format!("{header}.{rest}"));
            }
        }
        String::from_utf8(bytes).ok()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn what_we_sign_they_verify(claims in claims()) {
            let token = sign(&fixture().pair, "k", Some("at+jwt"), &claims).unwrap();
            prop_assert_eq!(theirs_accept(&token), Some(claims.clone()));
            prop_assert_eq!(ours_accept(&token), Some(claims));
        }

        #[test]
        fn what_they_sign_we_verify(claims in claims()) {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some("k".into());
            header.typ = Some("at+jwt".into());
            let token = jsonwebtoken::encode(&header, &claims, &fixture().theirs_encoding).unwrap();
            let parsed = parse(&token).unwrap();
            prop_assert_eq!(parsed.kid(), Some("k"));
            prop_assert_eq!(parsed.typ(), "at+jwt");
            prop_assert_eq!(ours_accept(&token), Some(claims));
        }

        #[test]
        fn every_mutation_is_refused_by_both(claims in claims(), m in mutation()) {
            let token = sign(&fixture().pair, "k", Some("at+jwt"), &claims).unwrap();
            if let Some(mutated) = mutate(&token, &m) {
                prop_assert_eq!(ours_accept(&mutated), None, "{:?}", m);
                prop_assert_eq!(theirs_accept(&mutated), None, "{:?}", m);
            }
        }
    }

    #[test]
    fn headers_we_do_not_understand_are_refused() {
        let token = sign(&fixture().pair, "k", None, &json!({"sub": "u"})).unwrap();
        let (_, rest) = token.split_once('.').unwrap();
        for (header, error) in [
            (json!({"alg": "RS256", "crit": ["exp"]}), JwsError::Invalid),
            (json!({"alg": "RS256", "crit": null}), JwsError::Invalid),
            (json!({"alg": "none"}), JwsError::WrongAlgorithm),
            (json!({"alg": "HS256"}), JwsError::WrongAlgorithm),
            (json!({"typ": "JWT"}), JwsError::Malformed),
            (json!(["RS256"]), JwsError::Malformed),
        ] {
            let forged = format!("{}.{rest}", B64.encode(header.to_string()));
            assert_eq!(parse(&forged).unwrap_err(), error, "{header}");
        }
        assert_eq!(parse("a.b").unwrap_err(), JwsError::Malformed);
        assert_eq!(parse("a.b.c.d").unwrap_err(), JwsError::Malformed);
    }
}
