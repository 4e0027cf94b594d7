//! Digests of high-entropy secrets (client secrets, refresh tokens, codes, session cookies):
//! 256 random bits each, so a fast SHA-256 is a safe way to store them, and the database is
//! looked up by digest. A leaf: anything may use it.

/// Lower-case hex SHA-256: how client secrets and refresh tokens are stored.
pub fn sha256_hex(secret: &str) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes()).as_ref())
}

/// Lower-case hex, without a formatting call per byte (this runs on every client
/// authentication).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(2 * bytes.len());
    for b in bytes {
        hex.push(char::from(DIGITS[usize::from(b >> 4)]));
        hex.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    hex
}
