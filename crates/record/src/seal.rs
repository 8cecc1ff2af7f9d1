//! Sealing a record body for its recipients.
//!
//! A fresh 32-byte content key encrypts `salt || content` with AES-256-GCM
//! (ring) under a random 96-bit nonce. The associated data binds the
//! ciphertext to the record:
//!
//! ```text
//! aad = "cairn.record.body.v1" 0x00
//!       || lp(record id text) || u32be(kind) || lp(author id)
//!       || u32be(number of recipients) || lp(recipient id)...   (sorted)
//! lp(x) = u32be(len(x)) || x
//! ```
//!
//! The content key is wrapped for each recipient with HPKE base mode
//! (RFC 9180) using DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM,
//! `info = "cairn.record.content-key.v1"` and `aad = body aad ||
//! lp(recipient id)`, so a wrapped key cannot be moved to another record or
//! recipient.

use cairn_identity::{Directory, SealingKey, SealingPublicKey};
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable as _, OpModeR, OpModeS, Serializable as _};
use ring::aead;
use ring::rand::SecureRandom as _;
use zeroize::Zeroizing;

use crate::commitment::SALT_LEN;
use crate::error::RecordError;
use crate::pb;

/// Length of a content key.
pub const CONTENT_KEY_LEN: usize = 32;
/// Length of the content AEAD nonce.
pub const NONCE_LEN: usize = 12;
/// Length of the content AEAD tag.
pub const TAG_LEN: usize = 16;
/// HPKE KEM id of DHKEM(X25519, HKDF-SHA256).
pub const KEM_X25519_HKDF_SHA256: u32 = 0x0020;
/// HPKE KDF id of HKDF-SHA256.
pub const KDF_HKDF_SHA256: u32 = 0x0001;
/// HPKE AEAD id of AES-256-GCM.
pub const AEAD_AES_256_GCM: u32 = 0x0002;
/// HPKE `info` for wrapping content keys.
pub const HPKE_INFO: &[u8] = b"cairn.record.content-key.v1";

const BODY_AAD_DOMAIN: &[u8] = b"cairn.record.body.v1\x00";

/// `N` random bytes from the operating system.
pub(crate) fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // An RNG failure is an environment fault that no input can cause.
    #[allow(clippy::expect_used)]
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .expect("the operating system's random number generator failed");
    out
}

/// The suite cairn v1 wraps keys with.
pub fn v1_suite() -> pb::HpkeSuite {
    pb::HpkeSuite {
        kem_id: KEM_X25519_HKDF_SHA256,
        kdf_id: KDF_HKDF_SHA256,
        aead_id: AEAD_AES_256_GCM,
    }
}

/// A member a record is sealed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// Member id.
    pub member: String,
    /// The member's sealing key id.
    pub key_id: String,
    /// The member's sealing public key.
    pub key: SealingPublicKey,
}

impl Recipient {
    /// The recipient entry for `member` from the directory.
    pub fn from_directory(directory: &Directory, member: &str) -> Result<Self, RecordError> {
        let m = directory.member(member).ok_or_else(|| {
            RecordError::field(
                "header.recipients",
                format!("{member:?} is not a member of the directory"),
            )
        })?;
        Ok(Self {
            member: m.id.to_string(),
            key_id: m.sealing_key.id.clone(),
            key: m.sealing_key.key,
        })
    }
}

/// What the body's ciphertext is bound to.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    /// The record id (canonical UUID text).
    pub record_id: &'a str,
    /// The record kind (`RecordKind` as i32).
    pub kind: i32,
    /// The author's member id.
    pub author: &'a str,
    /// The recipients' member ids, sorted.
    pub recipients: &'a [String],
}

fn push_lp(out: &mut Vec<u8>, bytes: &[u8]) {
    // Fields are bounded far below 4 GiB by the message size limits.
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

impl Binding<'_> {
    /// The content AEAD's associated data.
    pub fn body_aad(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 16 * self.recipients.len());
        out.extend_from_slice(BODY_AAD_DOMAIN);
        push_lp(&mut out, self.record_id.as_bytes());
        out.extend_from_slice(&(self.kind as u32).to_be_bytes());
        push_lp(&mut out, self.author.as_bytes());
        out.extend_from_slice(
            &u32::try_from(self.recipients.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        for r in self.recipients {
            push_lp(&mut out, r.as_bytes());
        }
        out
    }

    /// The associated data of the key wrapped for `recipient`.
    pub fn wrap_aad(&self, recipient: &str) -> Vec<u8> {
        let mut out = self.body_aad();
        push_lp(&mut out, recipient.as_bytes());
        out
    }
}

/// A record's content key.
pub struct ContentKey(Zeroizing<[u8; CONTENT_KEY_LEN]>);

impl ContentKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(Zeroizing::new(random_array()))
    }

    /// From raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        let arr: [u8; CONTENT_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| RecordError::Decrypt("wrapped key"))?;
        Ok(Self(Zeroizing::new(arr)))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; CONTENT_KEY_LEN] {
        &self.0
    }

    fn aead_key(&self) -> aead::LessSafeKey {
        // A 32-byte key is always accepted by AES-256-GCM.
        #[allow(clippy::expect_used)]
        aead::LessSafeKey::new(
            aead::UnboundKey::new(&aead::AES_256_GCM, self.0.as_ref())
                .expect("32-byte AES-256 key"),
        )
    }
}

/// Encrypts `salt || content`; returns ciphertext with the tag appended.
pub fn encrypt_content(
    key: &ContentKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    salt: &[u8; SALT_LEN],
    content: &[u8],
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(SALT_LEN + content.len() + TAG_LEN);
    buf.extend_from_slice(salt);
    buf.extend_from_slice(content);
    // Sealing only fails for inputs beyond AES-GCM's 64 GiB limit.
    #[allow(clippy::expect_used)]
    key.aead_key()
        .seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad),
            &mut buf,
        )
        .expect("record bodies are far below the AES-GCM limit");
    buf
}

/// Decrypts a body ciphertext; returns `salt || content`.
pub fn decrypt_content(
    key: &ContentKey,
    nonce: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, RecordError> {
    let nonce = aead::Nonce::try_assume_unique_for_key(nonce)
        .map_err(|_| RecordError::Decrypt("body.sealed.nonce"))?;
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = key
        .aead_key()
        .open_in_place(nonce, aead::Aad::from(aad), &mut buf)
        .map_err(|_| RecordError::Decrypt("body.sealed.ciphertext"))?
        .len();
    buf.truncate(len);
    if buf.len() < SALT_LEN {
        return Err(RecordError::BodyForm(
            "sealed plaintext is shorter than the salt".into(),
        ));
    }
    Ok(buf)
}

fn rng() -> rand_core::UnwrapErr<rand_core::OsRng> {
    rand_core::UnwrapErr(rand_core::OsRng)
}

/// Wraps `key` for one recipient.
pub fn wrap_key(
    key: &ContentKey,
    recipient: &Recipient,
    binding: &Binding<'_>,
) -> Result<pb::WrappedKey, RecordError> {
    let (enc, ciphertext) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, X25519HkdfSha256, _>(
        &OpModeS::Base,
        &recipient.key.to_hpke(),
        HPKE_INFO,
        key.as_bytes(),
        &binding.wrap_aad(&recipient.member),
        &mut rng(),
    )
    .map_err(|e| RecordError::Unsupported(format!("hpke seal for {}: {e}", recipient.member)))?;
    Ok(pb::WrappedKey {
        recipient: Some(pb::MemberId {
            id: recipient.member.clone(),
        }),
        recipient_key_id: recipient.key_id.clone(),
        suite: Some(v1_suite()),
        enc: enc.to_bytes().to_vec(),
        ciphertext,
    })
}

/// Unwraps the content key from `wrapped` with the recipient's key.
pub fn unwrap_key(
    wrapped: &pb::WrappedKey,
    key: &SealingKey,
    binding: &Binding<'_>,
) -> Result<ContentKey, RecordError> {
    if wrapped.suite.as_ref() != Some(&v1_suite()) {
        return Err(RecordError::Unsupported(format!(
            "unsupported HPKE suite {:?}",
            wrapped.suite
        )));
    }
    let recipient = wrapped
        .recipient
        .as_ref()
        .map(|m| m.id.as_str())
        .unwrap_or_default();
    let enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&wrapped.enc)
        .map_err(|_| RecordError::Decrypt("body.sealed.wrapped_keys.enc"))?;
    let bytes = Zeroizing::new(
        hpke::single_shot_open::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            &key.to_hpke(),
            &enc,
            HPKE_INFO,
            &wrapped.ciphertext,
            &binding.wrap_aad(recipient),
        )
        .map_err(|_| RecordError::Decrypt("body.sealed.wrapped_keys"))?,
    );
    ContentKey::from_bytes(&bytes)
}

/// Seals `content` (with its commitment `salt`) for `recipients`, in the
/// order given (which must be the binding's order).
pub fn seal(
    content: &[u8],
    salt: &[u8; SALT_LEN],
    binding: &Binding<'_>,
    recipients: &[Recipient],
) -> Result<pb::SealedBody, RecordError> {
    let key = ContentKey::generate();
    let nonce = random_array::<NONCE_LEN>();
    let ciphertext = encrypt_content(&key, nonce, &binding.body_aad(), salt, content);
    let wrapped_keys = recipients
        .iter()
        .map(|r| wrap_key(&key, r, binding))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(pb::SealedBody {
        aead: pb::ContentAead::Aes256Gcm as i32,
        nonce: nonce.to_vec(),
        ciphertext,
        wrapped_keys,
    })
}

/// Opens a sealed body as `member` with its sealing key; returns
/// `salt || content`. Does not check the commitment: that is
/// [`crate::record::VerifiedRecord::open`]'s job.
pub fn open(
    sealed: &pb::SealedBody,
    binding: &Binding<'_>,
    member: &str,
    key: &SealingKey,
) -> Result<Zeroizing<Vec<u8>>, RecordError> {
    if sealed.aead != pb::ContentAead::Aes256Gcm as i32 {
        return Err(RecordError::Unsupported(format!(
            "unsupported content AEAD {}",
            sealed.aead
        )));
    }
    let wrapped = sealed
        .wrapped_keys
        .iter()
        .find(|w| w.recipient.as_ref().is_some_and(|r| r.id == member))
        .ok_or_else(|| RecordError::NotARecipient(member.to_owned()))?;
    let content_key = unwrap_key(wrapped, key, binding)?;
    decrypt_content(
        &content_key,
        &sealed.nonce,
        &binding.body_aad(),
        &sealed.ciphertext,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Vec<SealingKey>, Vec<Recipient>, Vec<String>) {
        let keys: Vec<SealingKey> = (0..3)
            .map(|i| SealingKey::generate(format!("s{i}")).unwrap().0)
            .collect();
        let names: Vec<String> = (0..3).map(|i| format!("m{i}")).collect();
        let recipients = keys
            .iter()
            .zip(&names)
            .map(|(k, n)| Recipient {
                member: n.clone(),
                key_id: k.key_id().into(),
                key: k.public_key(),
            })
            .collect();
        (keys, recipients, names)
    }

    #[test]
    fn every_recipient_opens_and_tampering_is_detected() {
        let (keys, recipients, names) = setup();
        let binding = Binding {
            record_id: "r",
            kind: 1,
            author: "a",
            recipients: &names,
        };
        let salt = [7u8; SALT_LEN];
        let sealed = seal(b"secret content", &salt, &binding, &recipients).unwrap();
        for (k, n) in keys.iter().zip(&names) {
            let pt = open(&sealed, &binding, n, k).unwrap();
            assert_eq!(&pt[..SALT_LEN], &salt);
            assert_eq!(&pt[SALT_LEN..], b"secret content");
        }
        // Another member's key does not open m0's wrapped key.
        assert!(open(&sealed, &binding, "m0", &keys[1]).is_err());

        // Flip every byte of the ciphertext, nonce, enc and wrapped key.
        let n = sealed.ciphertext.len();
        for i in 0..n {
            let mut t = sealed.clone();
            t.ciphertext[i] ^= 0x01;
            assert_eq!(
                open(&t, &binding, "m0", &keys[0]).unwrap_err(),
                RecordError::Decrypt("body.sealed.ciphertext")
            );
        }
        for i in 0..NONCE_LEN {
            let mut t = sealed.clone();
            t.nonce[i] ^= 0x80;
            assert!(open(&t, &binding, "m0", &keys[0]).is_err());
        }
        for i in 0..sealed.wrapped_keys[0].ciphertext.len() {
            let mut t = sealed.clone();
            t.wrapped_keys[0].ciphertext[i] ^= 0x01;
            assert_eq!(
                open(&t, &binding, "m0", &keys[0]).unwrap_err(),
                RecordError::Decrypt("body.sealed.wrapped_keys")
            );
        }
        for i in 0..sealed.wrapped_keys[0].enc.len() {
            let mut t = sealed.clone();
            t.wrapped_keys[0].enc[i] ^= 0x01;
            assert!(open(&t, &binding, "m0", &keys[0]).is_err());
        }
    }

    #[test]
    fn the_binding_is_enforced() {
        let (keys, recipients, names) = setup();
        let binding = Binding {
            record_id: "r1",
            kind: 1,
            author: "a",
            recipients: &names,
        };
        let sealed = seal(b"x", &[0; SALT_LEN], &binding, &recipients).unwrap();
        let fewer = names[..2].to_vec();
        for other in [
            Binding {
                record_id: "r2",
                ..binding
            },
            Binding { kind: 2, ..binding },
            Binding {
                author: "b",
                ..binding
            },
            Binding {
                recipients: &fewer,
                ..binding
            },
        ] {
            assert!(open(&sealed, &other, "m0", &keys[0]).is_err());
        }
        // A wrapped key moved to another recipient's slot does not open.
        let mut moved = sealed.clone();
        moved.wrapped_keys[1].recipient = Some(pb::MemberId { id: "m0".into() });
        moved.wrapped_keys.remove(0);
        assert!(open(&moved, &binding, "m0", &keys[0]).is_err());
    }
}
