//! Opaque, tamper-evident page tokens and watch cursors: a sequence number
//! and an HMAC-SHA256 binding it to the caller.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::hmac;

use crate::error::ServiceError;

const DOMAIN: &[u8] = b"cairn.position.v1";
const MAC_LEN: usize = 32;

/// Makes and checks positions for one service.
pub struct Tokens {
    key: hmac::Key,
}

impl Tokens {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn message(member: &str, seq: u64) -> Vec<u8> {
        let mut m = Vec::with_capacity(DOMAIN.len() + 12 + member.len());
        m.extend_from_slice(DOMAIN);
        m.extend_from_slice(&(member.len() as u32).to_be_bytes());
        m.extend_from_slice(member.as_bytes());
        m.extend_from_slice(&seq.to_be_bytes());
        m
    }

    /// The token for "after `seq`", for `member`.
    pub fn make(&self, member: &str, seq: u64) -> String {
        let mut raw = seq.to_be_bytes().to_vec();
        raw.extend_from_slice(hmac::sign(&self.key, &Self::message(member, seq)).as_ref());
        B64.encode(raw)
    }

    /// The sequence number in `token` (empty: 0, the start), if `member`
    /// was given it.
    pub fn read(&self, member: &str, token: &str, what: &'static str) -> Result<u64, ServiceError> {
        if token.is_empty() {
            return Ok(0);
        }
        let bad = || ServiceError::BadToken { field: what };
        let raw = B64.decode(token).map_err(|_| bad())?;
        if raw.len() != 8 + MAC_LEN {
            return Err(bad());
        }
        let mut s = [0u8; 8];
        s.copy_from_slice(&raw[..8]);
        let seq = u64::from_be_bytes(s);
        // ring compares tags in constant time.
        hmac::verify(&self.key, &Self::message(member, seq), &raw[8..]).map_err(|_| bad())?;
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let t = Tokens::new(b"secret");
        let tok = t.make("uk-aisi", 42);
        assert_eq!(t.read("uk-aisi", &tok, "page_token").unwrap(), 42);
        assert!(t.read("jp-aisi", &tok, "page_token").is_err());
        let mut raw = B64.decode(&tok).unwrap();
        raw[7] ^= 1;
        assert!(t.read("uk-aisi", &B64.encode(raw), "page_token").is_err());
        assert!(t.read("uk-aisi", "!!", "page_token").is_err());
        assert_eq!(t.read("uk-aisi", "", "page_token").unwrap(), 0);
    }
}
