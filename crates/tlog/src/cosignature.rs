//! C2SP tlog-cosignature v1 with Ed25519 (signature type 0x04).
//!
//! The signature line's bytes after the key id are a `timestamped_signature`:
//! a big-endian u64 POSIX timestamp then the Ed25519 signature over
//! `"cosignature/v1\ntime <timestamp>\n" || checkpoint note text`.

use crate::error::TlogError;
use crate::note::{ALG_COSIGNATURE_V1, Note, NoteSignature, NoteSigner, VerifierKey};

/// The message a cosigner signs.
pub fn cosigned_message(timestamp: u64, checkpoint_text: &str) -> Vec<u8> {
    let mut out = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    out.extend_from_slice(checkpoint_text.as_bytes());
    out
}

/// A cosignature of `checkpoint_text` at `timestamp` by `cosigner` (whose
/// key must be of type 0x04).
pub fn cosign(
    cosigner: &NoteSigner,
    checkpoint_text: &str,
    timestamp: u64,
) -> Result<NoteSignature, TlogError> {
    if cosigner.verifier().alg() != ALG_COSIGNATURE_V1 {
        return Err(TlogError::Key(
            "a cosigner key has signature type 0x04".into(),
        ));
    }
    if timestamp > i64::MAX as u64 {
        return Err(TlogError::Key("timestamp beyond 2^63 - 1".into()));
    }
    Ok(cosigner.sign_raw(
        &cosigned_message(timestamp, checkpoint_text),
        &timestamp.to_be_bytes(),
    ))
}

/// Verifies `key`'s cosignature on a checkpoint note; returns its
/// timestamp.
pub fn verify(note: &Note, key: &VerifierKey) -> Result<u64, TlogError> {
    if key.alg() != ALG_COSIGNATURE_V1 {
        return Err(TlogError::Key(format!(
            "{} is not a cosigner key (type 0x04)",
            key.name()
        )));
    }
    let sig = note
        .signatures_of(key)
        .next()
        .ok_or_else(|| TlogError::Note(format!("no cosignature by {key}")))?;
    if sig.signature.len() != 8 + 64 {
        return Err(TlogError::Note(format!(
            "cosignature by {} is not a timestamped Ed25519 signature",
            key.name()
        )));
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&sig.signature[..8]);
    let timestamp = u64::from_be_bytes(ts);
    if timestamp > i64::MAX as u64
        || !key.verify_raw(
            &cosigned_message(timestamp, &note.text),
            &sig.signature[8..],
        )
    {
        return Err(TlogError::BadSignature {
            name: key.name().to_owned(),
        });
    }
    Ok(timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::{ALG_ED25519, parse};

    #[test]
    fn cosign_and_verify() {
        let log = NoteSigner::from_seed("example.com/log", ALG_ED25519, &[1; 32]).unwrap();
        let witness =
            NoteSigner::from_seed("witness.example.com/w1", ALG_COSIGNATURE_V1, &[2; 32]).unwrap();
        let text = "example.com/log\n5\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n";
        let mut note = log.sign(text).unwrap();
        note.add_signature(cosign(&witness, text, 1679315147).unwrap());
        let reparsed = parse(&note.format()).unwrap();
        assert_eq!(verify(&reparsed, witness.verifier()).unwrap(), 1679315147);
        reparsed.verify(log.verifier()).unwrap();
        // The verifier key string carries type 0x04.
        let vkey = VerifierKey::parse(&witness.verifier().to_string()).unwrap();
        assert_eq!(vkey.alg(), ALG_COSIGNATURE_V1);
        // A changed timestamp or text fails.
        let mut tampered = reparsed.clone();
        tampered.signatures[1].signature[7] ^= 1;
        assert!(verify(&tampered, witness.verifier()).is_err());
        let mut other_text = reparsed.clone();
        other_text.text = text.replace('5', "6");
        assert!(verify(&other_text, witness.verifier()).is_err());
        // A type 0x01 key with the same seed has another key id: not found.
        let same_seed =
            NoteSigner::from_seed("witness.example.com/w1", ALG_ED25519, &[2; 32]).unwrap();
        assert!(verify(&reparsed, same_seed.verifier()).is_err());
    }
}
