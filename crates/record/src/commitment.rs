//! The salted commitment to a record's plaintext content.
//!
//! `commitment = SHA-256("cairn.commitment.v1" || 0x00 || salt || content)`
//! with a fresh 32-byte salt. The salt travels inside the (sealed) body, so
//! outsiders cannot test guesses of the content against the commitment,
//! while every recipient can check that what it decrypted is what the
//! author signed: with a non-key-committing AEAD such as AES-GCM, an author
//! could otherwise craft one ciphertext that decrypts to different
//! plaintexts under the content keys it wraps for different recipients.

/// Length of the salt.
pub const SALT_LEN: usize = 32;
/// Length of a commitment.
pub const COMMITMENT_LEN: usize = 32;

const DOMAIN: &[u8] = b"cairn.commitment.v1\x00";

/// Computes the commitment.
pub fn commit(salt: &[u8; SALT_LEN], content: &[u8]) -> [u8; COMMITMENT_LEN] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(DOMAIN);
    ctx.update(salt);
    ctx.update(content);
    let mut out = [0u8; COMMITMENT_LEN];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Whether `commitment` commits to `content` under `salt`.
pub fn matches(commitment: &[u8], salt: &[u8; SALT_LEN], content: &[u8]) -> bool {
    commitment == commit(salt, content)
}

/// A fresh random salt.
pub fn fresh_salt() -> [u8; SALT_LEN] {
    crate::seal::random_array()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salt_and_content_both_matter() {
        let s1 = [1u8; SALT_LEN];
        let s2 = [2u8; SALT_LEN];
        let c = commit(&s1, b"content");
        assert!(matches(&c, &s1, b"content"));
        assert!(!matches(&c, &s2, b"content"));
        assert!(!matches(&c, &s1, b"Content"));
        // Domain separation: the commitment is not a bare hash of salt||content.
        let bare = ring::digest::digest(&ring::digest::SHA256, &[&s1[..], b"content"].concat());
        assert_ne!(c.as_slice(), bare.as_ref());
    }
}
