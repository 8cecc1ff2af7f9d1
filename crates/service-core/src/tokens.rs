//! Opaque, tamper-evident page tokens and watch cursors. A position is a
//! sequence number, and the gaps between sequence numbers count records
//! the reader may not see (TLP:RED ones above all), so a token shows
//! nothing of it: the number is sealed with XChaCha20-Poly1305 under a key
//! derived from the service's secret, with a random 192-bit nonce and the
//! member as associated data. Two tokens for one position differ; a token
//! is valid only for the member it was given to.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ring::{hkdf, hmac};

use crate::error::ServiceError;

/// The HMAC domain of the tokens made before positions were sealed.
const LEGACY_DOMAIN: &[u8] = b"cairn.position.v1";
const LEGACY_MAC_LEN: usize = 32;
/// The associated-data domain of sealed positions.
const DOMAIN: &[u8] = b"cairn.position.v2";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Makes and checks positions for one service.
pub struct Tokens {
    cipher: XChaCha20Poly1305,
    legacy: hmac::Key,
}

/// The 32-byte token key, derived from the service secret with HKDF-SHA256.
struct KeyLen;

impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        32
    }
}

impl Tokens {
    /// Tokens of the service whose secret is `secret`.
    pub fn new(secret: &[u8]) -> Result<Self, ServiceError> {
        let mut key = [0u8; 32];
        hkdf::Salt::new(hkdf::HKDF_SHA256, DOMAIN)
            .extract(secret)
            .expand(&[b"position sealing key"], KeyLen)
            .and_then(|okm| okm.fill(&mut key))
            .map_err(|_| ServiceError::Crypto {
                what: "deriving the position key",
            })?;
        Ok(Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
            legacy: hmac::Key::new(hmac::HMAC_SHA256, secret),
        })
    }

    fn aad(member: &str) -> Vec<u8> {
        let mut m = Vec::with_capacity(DOMAIN.len() + 4 + member.len());
        m.extend_from_slice(DOMAIN);
        m.extend_from_slice(&(member.len() as u32).to_be_bytes());
        m.extend_from_slice(member.as_bytes());
        m
    }

    fn legacy_message(member: &str, seq: u64) -> Vec<u8> {
        let mut m = Vec::with_capacity(LEGACY_DOMAIN.len() + 12 + member.len());
        m.extend_from_slice(LEGACY_DOMAIN);
        m.extend_from_slice(&(member.len() as u32).to_be_bytes());
        m.extend_from_slice(member.as_bytes());
        m.extend_from_slice(&seq.to_be_bytes());
        m
    }

    /// The token for "after `seq`", for `member`.
    pub fn make(&self, member: &str, seq: u64) -> Result<String, ServiceError> {
        let mut nonce = [0u8; NONCE_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| ServiceError::Random)?;
        let aad = Self::aad(member);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &seq.to_be_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| ServiceError::Crypto {
                what: "sealing a position",
            })?;
        let mut raw = nonce.to_vec();
        raw.extend_from_slice(&sealed);
        Ok(B64.encode(raw))
    }

    /// The sequence number in `token` (empty: 0, the start), if `member`
    /// was given it. Tokens made before positions were sealed (an HMAC
    /// over the number in clear) are still read, so that a watch resumes
    /// across an upgrade; none are made any more.
    pub fn read(&self, member: &str, token: &str, what: &'static str) -> Result<u64, ServiceError> {
        if token.is_empty() {
            return Ok(0);
        }
        let bad = || ServiceError::BadToken { field: what };
        let raw = B64.decode(token).map_err(|_| bad())?;
        let seq = match raw.len() {
            n if n == NONCE_LEN + 8 + TAG_LEN => {
                let (nonce, sealed) = raw.split_at(NONCE_LEN);
                let aad = Self::aad(member);
                self.cipher
                    .decrypt(
                        XNonce::from_slice(nonce),
                        Payload {
                            msg: sealed,
                            aad: &aad,
                        },
                    )
                    .map_err(|_| bad())?
            }
            n if n == 8 + LEGACY_MAC_LEN => {
                let (seq, tag) = raw.split_at(8);
                let seq = <[u8; 8]>::try_from(seq).map_err(|_| bad())?;
                // ring compares tags in constant time.
                hmac::verify(
                    &self.legacy,
                    &Self::legacy_message(member, u64::from_be_bytes(seq)),
                    tag,
                )
                .map_err(|_| bad())?;
                seq.to_vec()
            }
            _ => return Err(bad()),
        };
        <[u8; 8]>::try_from(seq.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let t = Tokens::new(b"secret").unwrap();
        let tok = t.make("uk-aisi", 42).unwrap();
        assert_eq!(t.read("uk-aisi", &tok, "page_token").unwrap(), 42);
        assert!(t.read("jp-aisi", &tok, "page_token").is_err());
        assert!(
            Tokens::new(b"other")
                .unwrap()
                .read("uk-aisi", &tok, "x")
                .is_err()
        );
        let raw = B64.decode(&tok).unwrap();
        for i in 0..raw.len() {
            let mut flipped = raw.clone();
            flipped[i] ^= 1;
            assert!(
                t.read("uk-aisi", &B64.encode(flipped), "x").is_err(),
                "byte {i}"
            );
        }
        assert!(t.read("uk-aisi", "!!", "page_token").is_err());
        assert!(t.read("uk-aisi", &B64.encode([0u8; 48]), "x").is_err());
        assert_eq!(t.read("uk-aisi", "", "page_token").unwrap(), 0);
    }

    #[test]
    fn a_token_shows_nothing_of_its_position() {
        let t = Tokens::new(b"secret").unwrap();
        let seq: u64 = 0x0102_0304_0506_0708;
        let a = B64.decode(t.make("uk-aisi", seq).unwrap()).unwrap();
        let b = B64.decode(t.make("uk-aisi", seq).unwrap()).unwrap();
        assert_ne!(a, b, "two tokens for one position differ");
        for raw in [&a, &b] {
            assert!(
                !raw.windows(8).any(|w| w == seq.to_be_bytes()),
                "the sequence number is in the token"
            );
        }
        // Consecutive positions do not give tokens that share a prefix or
        // differ by the step.
        let c = B64.decode(t.make("uk-aisi", seq + 1).unwrap()).unwrap();
        assert_ne!(a[..8], c[..8]);
    }

    #[test]
    fn tokens_made_before_sealing_are_still_read() {
        let t = Tokens::new(b"secret").unwrap();
        let mut raw = 7u64.to_be_bytes().to_vec();
        raw.extend_from_slice(
            hmac::sign(&t.legacy, &Tokens::legacy_message("uk-aisi", 7)).as_ref(),
        );
        let old = B64.encode(&raw);
        assert_eq!(t.read("uk-aisi", &old, "cursor").unwrap(), 7);
        assert!(t.read("jp-aisi", &old, "cursor").is_err());
    }
}
