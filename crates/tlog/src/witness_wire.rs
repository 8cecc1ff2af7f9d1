//! The C2SP tlog-witness `add-checkpoint` request body
//! (<https://c2sp.org/tlog-witness>): an `old <size>` line, zero to 63
//! base64 consistency-proof lines, an empty line, then the checkpoint
//! note. Every line ends in U+000A.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::TlogError;
use crate::hash::{HASH_LEN, Hash};

/// The most consistency-proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;

/// The media type of a witness's 409 answer: its size, decimal, newline.
pub const SIZE_MEDIA_TYPE: &str = "text/x.tlog.size";

/// A parsed `add-checkpoint` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the client believes the witness holds.
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The checkpoint note, signatures included.
    pub checkpoint: String,
}

fn bad(what: impl Into<String>) -> TlogError {
    TlogError::WitnessRequest(what.into())
}

impl AddCheckpoint {
    /// Parses a request body, refusing anything the specification does
    /// not allow (leading zeroes, a missing newline, more than 63 proof
    /// lines, a proof line that is not one base64 hash).
    pub fn parse(body: &[u8]) -> Result<Self, TlogError> {
        let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
        let (old_line, rest) = text
            .split_once('\n')
            .ok_or_else(|| bad("the body has no old size line"))?;
        let size = old_line.strip_prefix("old ").ok_or_else(|| {
            bad(format!(
                "the first line must be `old <size>`, got {old_line:?}"
            ))
        })?;
        let old_size = parse_decimal(size).ok_or_else(|| {
            bad(format!(
                "old size {size:?} is not a decimal without leading zeroes"
            ))
        })?;
        let mut proof = Vec::new();
        let mut rest = rest;
        loop {
            let (line, after) = rest
                .split_once('\n')
                .ok_or_else(|| bad("the proof is not followed by an empty line"))?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(bad(format!(
                    "more than {MAX_PROOF_LINES} consistency proof lines"
                )));
            }
            proof.push(decode_hash(line)?);
        }
        if rest.is_empty() {
            return Err(bad("the body has no checkpoint after the empty line"));
        }
        Ok(Self {
            old_size,
            proof,
            checkpoint: rest.to_owned(),
        })
    }

    /// The request body.
    pub fn encode(&self) -> String {
        let mut out = format!("old {}\n", self.old_size);
        for h in &self.proof {
            out.push_str(&STANDARD.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }
}

/// Parses a 409 answer's body (`<size>\n`).
pub fn parse_size_body(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?;
    parse_decimal(text.strip_suffix('\n')?)
}

fn parse_decimal(s: &str) -> Option<u64> {
    let canonical = s == "0" || (!s.starts_with('0') && !s.is_empty());
    if !canonical || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn decode_hash(line: &str) -> Result<Hash, TlogError> {
    let bytes = STANDARD
        .decode(line)
        .map_err(|e| bad(format!("proof line {line:?} is not base64: {e}")))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        bad(format!(
            "proof line {line:?} is {} bytes, not a {HASH_LEN}-byte hash",
            b.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example request body of c2sp.org/tlog-witness.
    const SPEC_EXAMPLE: &str = "old 20852014
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=

example.com/behind-the-sofa
20852163
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
";

    #[test]
    fn parses_the_specification_example_and_encodes_it_back() {
        let r = AddCheckpoint::parse(SPEC_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(r.old_size, 20852014);
        assert_eq!(r.proof.len(), 4);
        assert!(
            r.checkpoint
                .starts_with("example.com/behind-the-sofa\n20852163\n")
        );
        assert_eq!(r.encode(), SPEC_EXAMPLE);
    }

    #[test]
    fn a_first_checkpoint_has_no_proof_lines() {
        let r = AddCheckpoint::parse(b"old 0\n\nlog\n1\nAAAA\n\n").unwrap();
        assert_eq!((r.old_size, r.proof.len()), (0, 0));
    }

    #[test]
    fn refuses_what_the_specification_does_not_allow() {
        let h = STANDARD.encode([0u8; 32]);
        let too_long = format!("old 1\n{}\ncp\n", format!("{h}\n").repeat(64));
        for body in [
            "old 01\n\ncp\n".to_owned(),
            "old -1\n\ncp\n".into(),
            "new 1\n\ncp\n".into(),
            "old 1".into(),
            "old 1\nAAAA\n\ncp\n".into(),
            "old 1\n!!\n\ncp\n".into(),
            format!("old 1\n{h}\n"),
            "old 1\n\n".into(),
            too_long,
        ] {
            assert!(AddCheckpoint::parse(body.as_bytes()).is_err(), "{body:?}");
        }
        assert!(AddCheckpoint::parse(&[0xff, b'\n']).is_err());
    }

    #[test]
    fn size_bodies() {
        assert_eq!(parse_size_body(b"42\n"), Some(42));
        assert_eq!(parse_size_body(b"0\n"), Some(0));
        assert_eq!(parse_size_body(b"42"), None);
        assert_eq!(parse_size_body(b"042\n"), None);
    }
}
