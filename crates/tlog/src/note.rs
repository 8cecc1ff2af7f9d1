//! C2SP signed notes (signed-note v1.0.0).
//!
//! A note is UTF-8 text ending in a newline, then a blank line, then one
//! or more signature lines `— <name> <base64(key id || signature)>`. A key
//! id is the first four bytes of `SHA-256(name || "\n" || type || public
//! key)`; a verifier key is written `<name>+<hex key id>+<base64(type ||
//! public key)>`. Type 0x01 is an Ed25519 signature over the note text;
//! type 0x04 is a tlog cosignature (see [`crate::cosignature`]).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{self, Ed25519KeyPair, KeyPair as _};

use crate::error::TlogError;

/// Signature type of plain Ed25519 note signatures.
pub const ALG_ED25519: u8 = 0x01;
/// Signature type of Ed25519 tlog cosignatures (C2SP tlog-cosignature v1).
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// Most signature lines a note may carry.
pub const MAX_SIGNATURES: usize = 100;
/// Most bytes of a note accepted by [`parse`].
pub const MAX_NOTE_LEN: usize = 1 << 20;

const DASH: &str = "\u{2014} ";

fn note_err(m: impl Into<String>) -> TlogError {
    TlogError::Note(m.into())
}

/// Checks a key name: non-empty, no whitespace, no `+`.
pub fn check_name(name: &str) -> Result<(), TlogError> {
    if name.is_empty()
        || name.chars().any(|c| c.is_whitespace() || c == '+')
        || name.chars().any(char::is_control)
    {
        return Err(TlogError::Key(format!(
            "key name {:?} must be non-empty, without spaces or '+'",
            name.chars().take(80).collect::<String>()
        )));
    }
    Ok(())
}

/// The 4-byte key id of a key.
pub fn key_id(name: &str, alg: u8, public_key: &[u8]) -> [u8; 4] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n");
    ctx.update(&[alg]);
    ctx.update(public_key);
    let d = ctx.finish();
    let mut out = [0u8; 4];
    out.copy_from_slice(&d.as_ref()[..4]);
    out
}

/// A verifier key: a name, a signature type and an Ed25519 public key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VerifierKey {
    name: String,
    alg: u8,
    key: [u8; 32],
    id: [u8; 4],
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut material = Vec::with_capacity(33);
        material.push(self.alg);
        material.extend_from_slice(&self.key);
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex8(&self.id),
            B64.encode(material)
        )
    }
}

fn hex8(id: &[u8; 4]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl VerifierKey {
    /// A key from its parts.
    pub fn new(name: &str, alg: u8, public_key: [u8; 32]) -> Result<Self, TlogError> {
        check_name(name)?;
        if alg != ALG_ED25519 && alg != ALG_COSIGNATURE_V1 {
            return Err(TlogError::Key(format!(
                "unsupported signature type {alg:#04x}"
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            alg,
            key: public_key,
            id: key_id(name, alg, &public_key),
        })
    }

    /// Parses `<name>+<hex key id>+<base64(type || key)>`.
    pub fn parse(text: &str) -> Result<Self, TlogError> {
        let bad = |m: &str| {
            TlogError::Key(format!(
                "verifier key {:?}: {m}",
                text.chars().take(120).collect::<String>()
            ))
        };
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(material)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected <name>+<key id>+<key>"));
        };
        check_name(name).map_err(|_| bad("malformed name"))?;
        if id_hex.len() != 8
            || !id_hex
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return Err(bad("key id must be 8 lowercase hex digits"));
        }
        let material = B64.decode(material).map_err(|_| bad("key is not base64"))?;
        let (alg, key) = material.split_first().ok_or_else(|| bad("empty key"))?;
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| bad("an Ed25519 key is 32 bytes"))?;
        let vk = Self::new(name, *alg, key).map_err(|e| bad(&e.to_string()))?;
        if hex8(&vk.id) != id_hex {
            return Err(bad("key id does not match name and key"));
        }
        Ok(vk)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signature type.
    pub fn alg(&self) -> u8 {
        self.alg
    }

    /// The key id.
    pub fn id(&self) -> [u8; 4] {
        self.id
    }

    /// The raw public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.key
    }

    /// Verifies an Ed25519 signature over `message`.
    pub fn verify_raw(&self, message: &[u8], sig: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.key)
            .verify(message, sig)
            .is_ok()
    }
}

/// One signature line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key id.
    pub key_id: [u8; 4],
    /// The signature bytes after the key id.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The line, without its final newline.
    pub fn to_line(&self) -> String {
        let mut bytes = Vec::with_capacity(4 + self.signature.len());
        bytes.extend_from_slice(&self.key_id);
        bytes.extend_from_slice(&self.signature);
        format!("{DASH}{} {}", self.name, B64.encode(bytes))
    }

    /// Parses a line (without its final newline).
    pub fn parse_line(line: &str) -> Result<Self, TlogError> {
        let rest = line
            .strip_prefix(DASH)
            .ok_or_else(|| note_err("signature line does not start with an em dash and a space"))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| note_err("signature line has no signature"))?;
        check_name(name).map_err(|_| note_err("signature line has a malformed key name"))?;
        let bytes = B64
            .decode(b64)
            .map_err(|_| note_err("signature is not base64"))?;
        if bytes.len() < 5 {
            return Err(note_err("signature is shorter than a key id and one byte"));
        }
        let mut key_id = [0u8; 4];
        key_id.copy_from_slice(&bytes[..4]);
        Ok(Self {
            name: name.to_owned(),
            key_id,
            signature: bytes[4..].to_vec(),
        })
    }
}

/// A parsed note (signatures not yet verified).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The text, ending in a newline.
    pub text: String,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature>,
}

/// Checks note text: non-empty UTF-8 ending in a newline, no control
/// characters other than newline.
pub fn check_text(text: &str) -> Result<(), TlogError> {
    if !text.ends_with('\n') {
        return Err(note_err("text does not end with a newline"));
    }
    if text.chars().any(|c| c != '\n' && c.is_control()) {
        return Err(note_err("text contains control characters"));
    }
    Ok(())
}

/// Parses a signed note's syntax.
pub fn parse(msg: &str) -> Result<Note, TlogError> {
    if msg.len() > MAX_NOTE_LEN {
        return Err(note_err("note too large"));
    }
    let split = msg
        .rfind("\n\n")
        .ok_or_else(|| note_err("no blank line before the signatures"))?;
    let text = &msg[..=split];
    let sigs = &msg[split + 2..];
    check_text(text)?;
    if !sigs.ends_with('\n') {
        return Err(note_err("signature block does not end with a newline"));
    }
    let signatures = sigs[..sigs.len() - 1]
        .split('\n')
        .map(NoteSignature::parse_line)
        .collect::<Result<Vec<_>, _>>()?;
    if signatures.is_empty() {
        return Err(note_err("no signatures"));
    }
    if signatures.len() > MAX_SIGNATURES {
        return Err(note_err(format!("more than {MAX_SIGNATURES} signatures")));
    }
    Ok(Note {
        text: text.to_owned(),
        signatures,
    })
}

impl Note {
    /// The note as text.
    pub fn format(&self) -> String {
        let mut out = self.text.clone();
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.to_line());
            out.push('\n');
        }
        out
    }

    /// The signatures whose name and key id are `key`'s.
    pub fn signatures_of<'a>(
        &'a self,
        key: &'a VerifierKey,
    ) -> impl Iterator<Item = &'a NoteSignature> {
        self.signatures
            .iter()
            .filter(move |s| s.name == key.name() && s.key_id == key.id())
    }

    /// Verifies that a type-0x01 `key` signed the text. Fails if the key
    /// has no signature line or a signature line of it does not verify.
    pub fn verify(&self, key: &VerifierKey) -> Result<(), TlogError> {
        if key.alg() != ALG_ED25519 {
            return Err(TlogError::Key(format!(
                "{} is not an Ed25519 note key",
                key.name()
            )));
        }
        let mut any = false;
        for s in self.signatures_of(key) {
            if !key.verify_raw(self.text.as_bytes(), &s.signature) {
                return Err(TlogError::BadSignature {
                    name: key.name().to_owned(),
                });
            }
            any = true;
        }
        if any {
            Ok(())
        } else {
            Err(note_err(format!("no signature by {key}")))
        }
    }

    /// Adds or replaces the signature line of `sig.name`/`sig.key_id`.
    pub fn add_signature(&mut self, sig: NoteSignature) {
        self.signatures
            .retain(|s| !(s.name == sig.name && s.key_id == sig.key_id));
        self.signatures.push(sig);
    }
}

/// An Ed25519 note signer.
pub struct NoteSigner {
    verifier: VerifierKey,
    pair: Ed25519KeyPair,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("verifier", &self.verifier.to_string())
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// From a name, a signature type and a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, alg: u8, seed: &[u8]) -> Result<Self, TlogError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| TlogError::Key("an Ed25519 seed is 32 bytes".into()))?;
        Self::from_pair(name, alg, pair)
    }

    /// From PKCS#8 (v1 or v2) DER.
    pub fn from_pkcs8(name: &str, alg: u8, der: &[u8]) -> Result<Self, TlogError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| TlogError::Key(format!("not an Ed25519 PKCS#8 key ({e})")))?;
        Self::from_pair(name, alg, pair)
    }

    fn from_pair(name: &str, alg: u8, pair: Ed25519KeyPair) -> Result<Self, TlogError> {
        let mut key = [0u8; 32];
        key.copy_from_slice(pair.public_key().as_ref());
        Ok(Self {
            verifier: VerifierKey::new(name, alg, key)?,
            pair,
        })
    }

    /// Parses golang.org/x/mod/sumdb/note's private key form
    /// `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`.
    pub fn parse_go_private_key(text: &str) -> Result<Self, TlogError> {
        let bad = |m: &str| TlogError::Key(format!("private key: {m}"));
        let rest = text
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("must start with PRIVATE+KEY+"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(material)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected <name>+<key id>+<key>"));
        };
        let material = B64.decode(material).map_err(|_| bad("key is not base64"))?;
        let (alg, seed) = material.split_first().ok_or_else(|| bad("empty key"))?;
        if *alg != ALG_ED25519 || seed.len() != 32 {
            return Err(bad("expected an Ed25519 seed"));
        }
        let signer = Self::from_seed(name, *alg, seed)?;
        if hex8(&signer.verifier.id) != id_hex {
            return Err(bad("key id does not match"));
        }
        Ok(signer)
    }

    /// The verifier key.
    pub fn verifier(&self) -> &VerifierKey {
        &self.verifier
    }

    /// An Ed25519 signature over `message`, as a signature line for this key.
    pub fn sign_raw(&self, message: &[u8], prefix: &[u8]) -> NoteSignature {
        let sig = self.pair.sign(message);
        let mut signature = Vec::with_capacity(prefix.len() + 64);
        signature.extend_from_slice(prefix);
        signature.extend_from_slice(sig.as_ref());
        NoteSignature {
            name: self.verifier.name().to_owned(),
            key_id: self.verifier.id(),
            signature,
        }
    }

    /// Signs note text (type 0x01).
    pub fn sign(&self, text: &str) -> Result<Note, TlogError> {
        check_text(text)?;
        if self.verifier.alg() != ALG_ED25519 {
            return Err(TlogError::Key(
                "a cosigner key cannot sign notes directly".into(),
            ));
        }
        Ok(Note {
            text: text.to_owned(),
            signatures: vec![self.sign_raw(text.as_bytes(), &[])],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // golang.org/x/mod/sumdb/note tests (BSD-3-Clause): keys, text and
    // signatures as published there.
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    #[test]
    fn go_sumdb_note_vectors() {
        let peter = VerifierKey::parse(PETER_VKEY).unwrap();
        assert_eq!(peter.to_string(), PETER_VKEY);
        let signer = NoteSigner::parse_go_private_key(PETER_SKEY).unwrap();
        assert_eq!(signer.verifier(), &peter);
        // Ed25519 is deterministic: signing reproduces the published note.
        let note = signer.sign(TEXT).unwrap();
        assert_eq!(note.format(), format!("{TEXT}\n{PETER_SIG}"));

        let msg = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        let parsed = parse(&msg).unwrap();
        assert_eq!(parsed.text, TEXT);
        parsed.verify(&peter).unwrap();
        let enoch = VerifierKey::parse(ENOCH_VKEY).unwrap();
        parsed.verify(&enoch).unwrap();
        assert_eq!(parsed.format(), msg);

        // A corrupted signature is refused by name.
        let bad = format!("{TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
        assert!(matches!(
            parse(&bad).and_then(|n| n.verify(&peter)),
            Err(TlogError::BadSignature { .. }) | Err(TlogError::Note(_))
        ));
    }

    #[test]
    fn malformed_keys_and_notes() {
        // Every mangling of the verifier key is refused, as in the Go tests.
        let b = PETER_VKEY.as_bytes().to_vec();
        for i in 0..b.len() {
            let mut m = b.clone();
            m[i] = m[i].wrapping_add(1);
            if let Ok(s) = std::str::from_utf8(&m) {
                assert!(VerifierKey::parse(s).is_err(), "{s}");
            }
        }
        assert!(
            VerifierKey::parse(
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
            )
            .is_err()
        );
        assert!(
            VerifierKey::parse(
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .is_err()
        );
        for msg in [
            TEXT.to_owned(),
            format!("{TEXT}\n"),
            format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
            format!("\x01{TEXT}\n{PETER_SIG}"),
            format!(
                "{TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            ),
            format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
            format!("{TEXT}\n{}", PETER_SIG.repeat(101)),
        ] {
            assert!(parse(&msg).is_err(), "{msg:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,200}") {
            let _ = parse(&s);
            let _ = VerifierKey::parse(&s);
            let _ = NoteSigner::parse_go_private_key(&s);
        }
    }
}
