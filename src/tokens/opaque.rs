//! Opaque secrets: client secrets and refresh tokens. 256 random bits each, so a fast
//! SHA-256 is a safe way to store them (no brute force can walk that space), and the
//! database is looked up by digest, never by the secret itself.

use base64::Engine;

/// 256 bits from the system RNG, base64url without padding (43 characters).
pub fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

pub use crate::digest::{hex, sha256_hex};

/// A refresh token's successor, sealed so that only a holder of the token it replaces can read
/// it (the retry window of the refresh grant): AES-256-GCM under HMAC-SHA256(presented token,
/// purpose), with the presented token's digest as associated data, so a sealed value moved to
/// another row does not open. The database keeps only the presented token's digest, from which
/// the key cannot be made. base64url of nonce ‖ ciphertext ‖ tag.
pub fn seal_successor(
    presented: &str,
    presented_hash: &str,
    successor: &str,
) -> anyhow::Result<String> {
    use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
    let key = successor_key(presented)?;
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce)
        .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
    let mut sealed = successor.as_bytes().to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(presented_hash.as_bytes()),
        &mut sealed,
    )
    .map_err(|_| anyhow::anyhow!("sealing failed"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out))
}

/// Opens what [`seal_successor`] sealed; `None` for any other token, row or tampered value.
pub fn open_successor(presented: &str, presented_hash: &str, sealed: &str) -> Option<String> {
    use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sealed)
        .ok()?;
    if bytes.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let mut ciphertext = ciphertext.to_vec();
    let plain = successor_key(presented)
        .ok()?
        .open_in_place(
            Nonce::try_assume_unique_for_key(nonce).ok()?,
            Aad::from(presented_hash.as_bytes()),
            &mut ciphertext,
        )
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

fn successor_key(presented: &str) -> anyhow::Result<aws_lc_rs::aead::LessSafeKey> {
    let hmac = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, presented.as_bytes());
    let derived = aws_lc_rs::hmac::sign(&hmac, b"ferrid refresh successor v1");
    let key = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, derived.as_ref())
        .map_err(|_| anyhow::anyhow!("AES-256-GCM key setup failed"))?;
    Ok(aws_lc_rs::aead::LessSafeKey::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_and_digests_are_hex_sha256() {
        let t = random_token().unwrap();
        assert_eq!(t.len(), 43);
        assert_ne!(t, random_token().unwrap());
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_sealed_successor_opens_only_with_its_token_and_row() {
        let (r1, r2) = (random_token().unwrap(), random_token().unwrap());
        let row = sha256_hex(&r1);
        let sealed = seal_successor(&r1, &row, &r2).unwrap();
        assert!(!sealed.contains(&r2), "nothing readable");
        assert_eq!(
            open_successor(&r1, &row, &sealed).as_deref(),
            Some(r2.as_str())
        );
        let other = random_token().unwrap();
        assert_eq!(open_successor(&other, &row, &sealed), None, "another token");
        assert_eq!(
            open_successor(&r1, &sha256_hex(&other), &sealed),
            None,
            "another row"
        );
        let mut tampered = sealed.clone().into_bytes();
        tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(open_successor(&r1, &row, &tampered), None, "tampered");
        assert_eq!(open_successor(&r1, &row, "AAAA"), None, "too short");
        assert_eq!(open_successor(&r1, &row, "not base64!"), None);
        assert_ne!(
            seal_successor(&r1, &row, &r2).unwrap(),
            sealed,
            "a fresh nonce each time"
        );
    }
}
