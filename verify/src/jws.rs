//! JWS Compact Serialization (RFC 7515 §7.1) as RFC 9068 access tokens use it: RS256 only
//! (RFC 7518 §3.3), `typ` `at+jwt`, a `kid`. [`parse`] checks everything that needs no key;
//! [`Parsed::verify`] checks the signature over the parts exactly as sent.
//!
//! No network, no clock: the key comes from the caller, the claims are checked in `claims`.

use aws_lc_rs::signature::ParsedPublicKey;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Map, Value};

use crate::error::{Error, desc};

/// Longer tokens are refused unread (ferrid's are under 2 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A compact JWS whose header passed [`parse`]; its signature is not checked yet.
#[derive(Debug)]
pub struct Parsed<'a> {
    pub kid: String,
    /// The first two parts as sent: what the signature covers (RFC 7515 §5.2 step 8).
    signing_input: &'a str,
    signature: Vec<u8>,
    /// The payload, parsed but not to be trusted before [`Parsed::verify`].
    claims: Map<String, Value>,
}

/// Splits a compact JWS and checks its header (RFC 7515 §5.2 steps 1–5, RFC 9068 §4).
pub fn parse(token: &str) -> Result<Parsed<'_>, Error> {
    let invalid = Error::InvalidToken;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(invalid(desc::TOO_LONG));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(desc::MALFORMED));
    };
    // RFC 7515 §2: base64url without padding; the engine refuses padding and stray bits.
    let header = B64
        .decode(header_b64)
        .map_err(|_| invalid(desc::MALFORMED))?;
    let payload = B64
        .decode(payload_b64)
        .map_err(|_| invalid(desc::MALFORMED))?;
    let signature = B64
        .decode(signature_b64)
        .map_err(|_| invalid(desc::MALFORMED))?;
    // RFC 7515 §5.2 step 3: the header is a JSON object (a duplicate member is read as its
    // last value, which §5.2 allows).
    let header: Map<String, Value> =
        serde_json::from_slice(&header).map_err(|_| invalid(desc::HEADER))?;

    // RFC 8725 §3.1 and RFC 9068 §4: RS256 only — never `none`, never an HMAC that an
    // attacker would key with the public key. `alg` is case-sensitive (RFC 7515 §4.1.1).
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(invalid(desc::ALG));
    }
    // RFC 7515 §4.1.11: an extension marked critical that we do not understand (we
    // understand none) makes the JWS invalid.
    if header.contains_key("crit") {
        return Err(invalid(desc::CRIT));
    }
    // RFC 9068 §4: typ MUST be "at+jwt" or "application/at+jwt"; media types are
    // case-insensitive and the "application/" prefix may be left out (RFC 7515 §4.1.9).
    // This is what tells an access token from an ID token signed by the same key.
    let typ = header
        .get("typ")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let typ = typ.to_ascii_lowercase();
    if typ != "at+jwt" && typ != "application/at+jwt" {
        return Err(invalid(desc::TYP));
    }
    // The key is chosen by kid (RFC 7515 §4.1.4); ferrid always sets it. `jku`, `jwk`,
    // `x5u` and `x5c` are ignored: keys come only from the issuer's JWKS (RFC 8725 §3.10).
    let kid = match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() => kid.clone(),
        _ => return Err(invalid(desc::KID)),
    };
    let claims: Map<String, Value> =
        serde_json::from_slice(&payload).map_err(|_| invalid(desc::PAYLOAD))?;
    Ok(Parsed {
        kid,
        signing_input: &token[..header_b64.len() + 1 + payload_b64.len()],
        signature,
        claims,
    })
}

impl Parsed<'_> {
    /// Checks the RS256 signature (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 §3.3) and hands
    /// over the claims.
    pub fn verify(self, key: &ParsedPublicKey) -> Result<Map<String, Value>, Error> {
        key.verify_sig(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| Error::InvalidToken(desc::SIGNATURE))?;
        Ok(self.claims)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256};
    use serde_json::json;
    use std::sync::LazyLock;

    pub static KEY: LazyLock<KeyPair> =
        LazyLock::new(|| KeyPair::generate(KeySize::Rsa2048).unwrap());

    pub fn public(pair: &KeyPair) -> ParsedPublicKey {
        PublicKeyComponents::<Vec<u8>>::from(pair.public_key())
            .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
            .unwrap()
    }

    /// A compact JWS of `header` and `claims`, signed RS256 by `key`.
    pub fn sign(key: &KeyPair, header: &Value, claims: &Value) -> String {
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
    }

    fn at(header: Value) -> Result<Map<String, Value>, Error> {
        let token = sign(&KEY, &header, &json!({"sub": "x"}));
        parse(&token)?.verify(&public(&KEY))
    }

    #[test]
    fn an_at_jwt_signed_rs256_with_a_kid_verifies() {
        let claims = at(json!({"typ": "at+jwt", "alg": "RS256", "kid": "k1"})).unwrap();
        assert_eq!(claims["sub"], "x");
    }

    #[test]
    fn typ_is_compared_case_insensitively_with_or_without_the_media_type_prefix() {
        for typ in ["AT+JWT", "application/at+jwt", "Application/AT+jwt"] {
            assert!(
                at(json!({"typ": typ, "alg": "RS256", "kid": "k"})).is_ok(),
                "{typ}"
            );
        }
    }

    #[test]
    fn a_token_of_another_type_is_not_an_access_token() {
        // An ID token (typ JWT or none) or a logout token signed by the same key.
        for header in [
            json!({"typ": "JWT", "alg": "RS256", "kid": "k"}),
            json!({"alg": "RS256", "kid": "k"}),
            json!({"typ": "logout+jwt", "alg": "RS256", "kid": "k"}),
            json!({"typ": "at+jwt+x", "alg": "RS256", "kid": "k"}),
        ] {
            assert_eq!(at(header), Err(Error::InvalidToken(desc::TYP)));
        }
    }

    #[test]
    fn only_rs256_is_accepted() {
        for alg in ["none", "HS256", "RS384", "PS256", "rs256"] {
            let header = json!({"typ": "at+jwt", "alg": alg, "kid": "k"});
            assert_eq!(at(header), Err(Error::InvalidToken(desc::ALG)), "{alg}");
        }
        // An unsigned token (`alg: none`, empty signature) never reaches a key.
        let none = format!(
            "{}.{}.",
            B64.encode(r#"{"typ":"at+jwt","alg":"none","kid":"k"}"#),
            B64.encode(r#"{"sub":"x"}"#)
        );
        assert_eq!(parse(&none).err(), Some(Error::InvalidToken(desc::ALG)));
    }

    #[test]
    fn a_critical_extension_or_a_missing_kid_is_refused() {
        let crit = json!({"typ": "at+jwt", "alg": "RS256", "kid": "k", "crit": ["exp"]});
        assert_eq!(at(crit), Err(Error::InvalidToken(desc::CRIT)));
        for header in [
            json!({"typ": "at+jwt", "alg": "RS256"}),
            json!({"typ": "at+jwt", "alg": "RS256", "kid": ""}),
            json!({"typ": "at+jwt", "alg": "RS256", "kid": 7}),
        ] {
            assert_eq!(at(header), Err(Error::InvalidToken(desc::KID)));
        }
    }

    #[test]
    fn a_changed_payload_or_signature_fails_the_signature() {
        let header = json!({"typ": "at+jwt", "alg": "RS256", "kid": "k"});
        let token = sign(&KEY, &header, &json!({"sub": "alice"}));
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(r#"{"sub":"mallory"}"#),
            parts[2]
        );
        let key = public(&KEY);
        assert_eq!(
            parse(&forged).unwrap().verify(&key),
            Err(Error::InvalidToken(desc::SIGNATURE))
        );
        let other = KeyPair::generate(KeySize::Rsa2048).unwrap();
        assert_eq!(
            parse(&token).unwrap().verify(&public(&other)),
            Err(Error::InvalidToken(desc::SIGNATURE))
        );
    }

    #[test]
    fn malformed_compact_serializations_are_refused() {
        let header = json!({"typ": "at+jwt", "alg": "RS256", "kid": "k"});
        let token = sign(&KEY, &header, &json!({"sub": "x"}));
        let padded = format!("{token}=");
        let four = format!("{token}.x");
        let array_header = format!("{}.e30.AA", B64.encode("[1]"));
        let array_claims = format!("{}.{}.AA", B64.encode(header.to_string()), B64.encode("[]"));
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        for (bad, why) in [
            ("", desc::MALFORMED),
            ("a.b", desc::MALFORMED),
            (four.as_str(), desc::MALFORMED),
            (padded.as_str(), desc::MALFORMED),
            ("e30.e30.!!", desc::MALFORMED),
            (array_header.as_str(), desc::HEADER),
            (array_claims.as_str(), desc::PAYLOAD),
            (long.as_str(), desc::TOO_LONG),
        ] {
            assert_eq!(
                parse(bad).err(),
                Some(Error::InvalidToken(why)),
                "{bad:.40}"
            );
        }
    }
}
