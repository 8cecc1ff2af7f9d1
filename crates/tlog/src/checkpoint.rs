//! C2SP tlog-checkpoint: `<origin>\n<size>\n<base64 root>\n[<extension>\n…]`,
//! carried as a signed note whose first signature is the log's.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::error::TlogError;
use crate::hash::Hash;
use crate::note::{self, Note, NoteSigner, VerifierKey};

/// A checkpoint body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin (its name).
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
    /// Extension lines (without newlines).
    pub extensions: Vec<String>,
}

fn cp_err(m: impl Into<String>) -> TlogError {
    TlogError::Checkpoint(m.into())
}

impl Checkpoint {
    /// The note text.
    pub fn to_body(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for e in &self.extensions {
            out.push_str(e);
            out.push('\n');
        }
        out
    }

    /// Parses note text as a checkpoint.
    pub fn parse_body(text: &str) -> Result<Self, TlogError> {
        note::check_text(text)?;
        let lines: Vec<&str> = text[..text.len() - 1].split('\n').collect();
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(cp_err("fewer than three lines"));
        };
        if origin.is_empty() || origin.chars().any(char::is_whitespace) {
            return Err(cp_err("origin line is empty or contains spaces"));
        }
        if size.is_empty()
            || !size.bytes().all(|c| c.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(cp_err(format!(
                "tree size {:?} is not a decimal without leading zeros",
                size.chars().take(30).collect::<String>()
            )));
        }
        let size: u64 = size.parse().map_err(|_| cp_err("tree size out of range"))?;
        let root = B64
            .decode(root)
            .map_err(|_| cp_err("root hash is not base64"))?;
        let root: Hash = root
            .as_slice()
            .try_into()
            .map_err(|_| cp_err(format!("root hash is {} bytes, expected 32", root.len())))?;
        if extensions.iter().any(|e| e.is_empty()) {
            return Err(cp_err("empty extension line"));
        }
        Ok(Self {
            origin: (*origin).to_owned(),
            size,
            root,
            extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
        })
    }

    /// Signs the checkpoint with the log's key; returns the note text.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, TlogError> {
        Ok(signer.sign(&self.to_body())?.format())
    }
}

/// A checkpoint whose log signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The whole note (with every signature line).
    pub note: Note,
}

/// Parses a checkpoint note and verifies the log's signature; the origin
/// must be the log key's name.
pub fn open(note_text: &str, log_key: &VerifierKey) -> Result<SignedCheckpoint, TlogError> {
    let note = note::parse(note_text)?;
    let checkpoint = Checkpoint::parse_body(&note.text)?;
    if checkpoint.origin != log_key.name() {
        return Err(cp_err(format!(
            "origin {:?} is not the log {:?}",
            checkpoint.origin,
            log_key.name()
        )));
    }
    note.verify(log_key)?;
    Ok(SignedCheckpoint { checkpoint, note })
}

/// A checkpoint verified against the log key and a witness quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witnessed {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The witnesses whose cosignatures verified, with their timestamps.
    pub cosigned_by: Vec<(String, u64)>,
}

/// Verifies the log's signature and at least `quorum` valid cosignatures
/// among `witnesses` (type 0x04 keys). A witness listed but absent or
/// invalid does not count; an invalid cosignature line is reported only if
/// the quorum then fails.
pub fn verify_witnessed(
    note_text: &str,
    log_key: &VerifierKey,
    witnesses: &[VerifierKey],
    quorum: usize,
) -> Result<Witnessed, TlogError> {
    let signed = open(note_text, log_key)?;
    let mut cosigned_by = Vec::new();
    let mut problems = Vec::new();
    for w in witnesses {
        match crate::cosignature::verify(&signed.note, w) {
            Ok(ts) => cosigned_by.push((w.name().to_owned(), ts)),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if cosigned_by.len() < quorum {
        return Err(cp_err(format!(
            "{} of the required {quorum} witness cosignatures verify ({})",
            cosigned_by.len(),
            if problems.is_empty() {
                "none missing".to_owned()
            } else {
                problems.join("; ")
            }
        )));
    }
    Ok(Witnessed {
        checkpoint: signed.checkpoint,
        cosigned_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::ALG_ED25519;

    #[test]
    fn round_trip_and_refusals() {
        let signer = NoteSigner::from_seed("cairn.example/log", ALG_ED25519, &[7u8; 32]).unwrap();
        let cp = Checkpoint {
            origin: "cairn.example/log".into(),
            size: 20852163,
            root: [9u8; 32],
            extensions: vec![],
        };
        let text = cp.sign(&signer).unwrap();
        assert!(text.starts_with("cairn.example/log\n20852163\nCQkJ"));
        let opened = open(&text, signer.verifier()).unwrap();
        assert_eq!(opened.checkpoint, cp);
        let other = NoteSigner::from_seed("other.example/log", ALG_ED25519, &[7u8; 32]).unwrap();
        assert!(open(&text, other.verifier()).is_err());
        for bad in [
            "a\n01\nAAAA\n",
            "a\n1\nAAAA\n",
            "a b\n1\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n",
            "a\n1\n",
            "a\n-1\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n",
        ] {
            assert!(Checkpoint::parse_body(bad).is_err(), "{bad:?}");
        }
        let with_ext = Checkpoint {
            extensions: vec!["ext line".into()],
            ..cp
        };
        assert_eq!(
            Checkpoint::parse_body(&with_ext.to_body()).unwrap(),
            with_ext
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,120}") {
            let _ = Checkpoint::parse_body(&s);
        }
    }
}
