//! Member key material: Ed25519 signing keys and X25519 sealing keys.
//!
//! Private keys live in PKCS#8 PEM files (`-----BEGIN PRIVATE KEY-----`), the
//! format `openssl genpkey -algorithm ed25519|x25519` writes and reads:
//! Ed25519 through ring (v1 and v2 PKCS#8), X25519 as RFC 8410
//! `id-X25519` (1.3.101.110). Public keys are raw 32-byte values, written in
//! the directory as standard base64.

use std::fmt;

use base64::Engine as _;
use hpke::{Deserializable as _, Kem as _, Serializable as _, kem::X25519HkdfSha256};
use pkcs8::der::Encode as _;
use ring::rand::SecureRandom as _;
use ring::signature::{self, Ed25519KeyPair, KeyPair as _};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject as _;
use zeroize::Zeroizing;

use crate::error::{Error, KeyProblem};

/// OID of X25519 keys (RFC 8410).
const ID_X25519: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.110");
/// OID of Ed25519 keys (RFC 8410).
const ID_ED25519: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.112");

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

fn pkcs8_from_pem(what: &str, pem: &[u8]) -> Result<PrivatePkcs8KeyDer<'static>, Error> {
    PrivatePkcs8KeyDer::from_pem_slice(pem)
        .map_err(|_| Error::key(what, KeyProblem::NoPemBlock("PRIVATE KEY")))
}

/// Reads the PKCS#8 DER of a `PRIVATE KEY` PEM file (any algorithm), for
/// keys other crates parse themselves (e.g. a log's note-signing key).
pub fn load_pkcs8_der(path: &std::path::Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| Error::io(path, e))?);
    let der = pkcs8_from_pem(&path.display().to_string(), &bytes)?;
    Ok(Zeroizing::new(der.secret_pkcs8_der().to_vec()))
}

fn random_bytes<const N: usize>() -> Zeroizing<[u8; N]> {
    let mut out = Zeroizing::new([0u8; N]);
    // The system RNG failing is an unrecoverable environment fault, not
    // something input can cause.
    #[allow(clippy::expect_used)]
    ring::rand::SystemRandom::new()
        .fill(out.as_mut())
        .expect("the operating system's random number generator failed");
    out
}

/// An Ed25519 signing key of a member, with the key id the directory lists
/// it under.
pub struct SigningKey {
    key_id: String,
    pair: Ed25519KeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .field("public", &self.verifying_key())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a new key; returns it and its PKCS#8 PEM encoding — the
    /// RFC 8410 v1 form `openssl genpkey -algorithm ed25519` writes, which
    /// every PKCS#8 reader accepts (ring's own v2 form is not).
    pub fn generate(key_id: impl Into<String>) -> Result<(Self, Zeroizing<String>), Error> {
        let key_id = key_id.into();
        let seed = random_bytes::<32>();
        let der = Zeroizing::new(
            rfc8410_pkcs8_der(ID_ED25519, &seed).map_err(|p| Error::key(&key_id, p))?,
        );
        let pem = Zeroizing::new(crate::pem::encode("PRIVATE KEY", &der));
        let key = Self::from_pkcs8_der(key_id, &der)?;
        Ok((key, pem))
    }

    /// Reads a key from PKCS#8 DER.
    pub fn from_pkcs8_der(key_id: impl Into<String>, der: &[u8]) -> Result<Self, Error> {
        let key_id = key_id.into();
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| Error::key(&key_id, KeyProblem::Rejected(e.to_string())))?;
        Ok(Self { key_id, pair })
    }

    /// Reads a key from a PKCS#8 PEM file's bytes.
    pub fn from_pem(key_id: impl Into<String>, pem: &[u8]) -> Result<Self, Error> {
        let key_id = key_id.into();
        let der = pkcs8_from_pem(&key_id, pem)?;
        Self::from_pkcs8_der(key_id, der.secret_pkcs8_der())
    }

    /// Reads a key from a PEM file.
    pub fn load(key_id: impl Into<String>, path: &std::path::Path) -> Result<Self, Error> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| Error::io(path, e))?);
        let key_id = key_id.into();
        Self::from_pem(key_id, &bytes).map_err(|e| match e {
            Error::Key { problem, .. } => Error::key(path.display().to_string(), problem),
            other => other,
        })
    }

    /// The directory key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(self.pair.public_key().as_ref());
        VerifyingKey(bytes)
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerifyingKey([u8; 32]);

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.to_base64())
    }
}

impl VerifyingKey {
    /// From the raw 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyProblem> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyProblem::WrongLength {
            expected: 32,
            found: bytes.len(),
        })?;
        Ok(Self(arr))
    }

    /// From standard base64 of the raw 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, KeyProblem> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| KeyProblem::Base64)?;
        Self::from_bytes(&bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Standard base64 of the raw bytes.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// Verifies an Ed25519 signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), KeyProblem> {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(message, signature)
            .map_err(|_| KeyProblem::BadSignature)
    }
}

/// The hpke private-key type of cairn's sealing KEM.
pub type HpkePrivateKey = <X25519HkdfSha256 as hpke::Kem>::PrivateKey;
/// The hpke public-key type of cairn's sealing KEM.
pub type HpkePublicKey = <X25519HkdfSha256 as hpke::Kem>::PublicKey;

/// An X25519 private key for opening sealed records, with its directory key
/// id.
pub struct SealingKey {
    key_id: String,
    secret: Zeroizing<[u8; 32]>,
    public: SealingPublicKey,
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey")
            .field("key_id", &self.key_id)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl SealingKey {
    /// Generates a new key (RFC 9180 DeriveKeyPair from 32 random bytes);
    /// returns it and its PKCS#8 PEM encoding.
    pub fn generate(key_id: impl Into<String>) -> Result<(Self, Zeroizing<String>), Error> {
        let ikm = random_bytes::<32>();
        let (sk, _) = X25519HkdfSha256::derive_keypair(ikm.as_ref());
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&sk.to_bytes());
        let key_id = key_id.into();
        let der = rfc8410_pkcs8_der(ID_X25519, &secret)
            .map_err(|problem| Error::key(&key_id, problem))?;
        let pem = Zeroizing::new(crate::pem::encode("PRIVATE KEY", &der));
        let key =
            Self::from_secret(key_id, secret.as_ref()).map_err(|p| Error::key("generated", p))?;
        Ok((key, pem))
    }

    /// From the raw 32-byte X25519 secret.
    pub fn from_secret(key_id: impl Into<String>, secret: &[u8]) -> Result<Self, KeyProblem> {
        let sk = HpkePrivateKey::from_bytes(secret).map_err(|_| KeyProblem::WrongLength {
            expected: 32,
            found: secret.len(),
        })?;
        let public = SealingPublicKey::from_bytes(&X25519HkdfSha256::sk_to_pk(&sk).to_bytes())?;
        let mut stored = Zeroizing::new([0u8; 32]);
        stored.copy_from_slice(secret);
        Ok(Self {
            key_id: key_id.into(),
            secret: stored,
            public,
        })
    }

    /// Reads a key from PKCS#8 DER (RFC 8410 `id-X25519`).
    pub fn from_pkcs8_der(key_id: impl Into<String>, der: &[u8]) -> Result<Self, Error> {
        let key_id = key_id.into();
        let info = pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|_| Error::key(&key_id, KeyProblem::NotPkcs8))?;
        if info.algorithm.oid != ID_X25519 {
            return Err(Error::key(
                &key_id,
                KeyProblem::WrongAlgorithm {
                    expected: "X25519 (1.3.101.110)",
                    found: info.algorithm.oid.to_string(),
                },
            ));
        }
        // RFC 8410: the privateKey OCTET STRING holds CurvePrivateKey, itself
        // an OCTET STRING of 32 bytes.
        let inner = info.private_key;
        let secret = match inner {
            [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest,
            _ => {
                return Err(Error::key(
                    &key_id,
                    KeyProblem::WrongLength {
                        expected: 34,
                        found: inner.len(),
                    },
                ));
            }
        };
        Self::from_secret(key_id.clone(), secret).map_err(|p| Error::key(key_id, p))
    }

    /// Reads a key from a PKCS#8 PEM file's bytes.
    pub fn from_pem(key_id: impl Into<String>, pem: &[u8]) -> Result<Self, Error> {
        let key_id = key_id.into();
        let der = pkcs8_from_pem(&key_id, pem)?;
        Self::from_pkcs8_der(key_id, der.secret_pkcs8_der())
    }

    /// Reads a key from a PEM file.
    pub fn load(key_id: impl Into<String>, path: &std::path::Path) -> Result<Self, Error> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| Error::io(path, e))?);
        Self::from_pem(key_id, &bytes).map_err(|e| match e {
            Error::Key { problem, .. } => Error::key(path.display().to_string(), problem),
            other => other,
        })
    }

    /// The directory key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public half.
    pub fn public_key(&self) -> SealingPublicKey {
        self.public
    }

    /// The key in the form the `hpke` crate uses.
    pub fn to_hpke(&self) -> HpkePrivateKey {
        // Length checked at construction; X25519 accepts every 32-byte value.
        #[allow(clippy::expect_used)]
        HpkePrivateKey::from_bytes(self.secret.as_ref()).expect("32-byte X25519 secret")
    }
}

/// PKCS#8 v1 of an RFC 8410 key (`CurvePrivateKey` in the privateKey
/// OCTET STRING).
fn rfc8410_pkcs8_der(
    oid: pkcs8::ObjectIdentifier,
    secret: &[u8; 32],
) -> Result<Vec<u8>, KeyProblem> {
    let mut inner = Zeroizing::new(Vec::with_capacity(34));
    inner.extend_from_slice(&[0x04, 0x20]);
    inner.extend_from_slice(secret);
    let info = pkcs8::PrivateKeyInfo::new(
        pkcs8::AlgorithmIdentifierRef {
            oid,
            parameters: None,
        },
        &inner,
    );
    info.to_der()
        .map_err(|e| KeyProblem::Rejected(e.to_string()))
}

/// An X25519 public key for sealing records to a member.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SealingPublicKey([u8; 32]);

impl fmt::Debug for SealingPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealingPublicKey({})", self.to_base64())
    }
}

impl SealingPublicKey {
    /// From the raw 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyProblem> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyProblem::WrongLength {
            expected: 32,
            found: bytes.len(),
        })?;
        Ok(Self(arr))
    }

    /// From standard base64 of the raw 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, KeyProblem> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| KeyProblem::Base64)?;
        Self::from_bytes(&bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Standard base64 of the raw bytes.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// The key in the form the `hpke` crate uses.
    pub fn to_hpke(&self) -> HpkePublicKey {
        // Every 32-byte string is an X25519 public key.
        #[allow(clippy::expect_used)]
        HpkePublicKey::from_bytes(&self.0).expect("32-byte X25519 public key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8410 section 10.3: the Ed25519 private key example, and its
    /// public key from the same section; our generated files have this
    /// exact v1 shape.
    #[test]
    fn signing_keys_are_rfc8410_v1() {
        let pem = b"-----BEGIN PRIVATE KEY-----\n\
MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
-----END PRIVATE KEY-----\n";
        let key = SigningKey::from_pem("k", pem).unwrap();
        assert_eq!(
            key.verifying_key().to_base64(),
            "Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="
        );
        let (_, generated) = SigningKey::generate("k").unwrap();
        let der = pkcs8_from_pem("k", generated.as_bytes()).unwrap();
        assert_eq!(
            der.secret_pkcs8_der().len(),
            48,
            "PKCS#8 v1 without the public key"
        );
    }

    #[test]
    fn signing_key_round_trips_through_pem() {
        let (key, pem) = SigningKey::generate("k1").unwrap();
        let again = SigningKey::from_pem("k1", pem.as_bytes()).unwrap();
        assert_eq!(key.verifying_key(), again.verifying_key());
        let sig = again.sign(b"hello");
        key.verifying_key().verify(b"hello", &sig).unwrap();
        assert_eq!(
            key.verifying_key().verify(b"hellO", &sig),
            Err(KeyProblem::BadSignature)
        );
    }

    #[test]
    fn sealing_key_round_trips_through_pem() {
        let (key, pem) = SealingKey::generate("s1").unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let again = SealingKey::from_pem("s1", pem.as_bytes()).unwrap();
        assert_eq!(key.public_key(), again.public_key());
    }

    /// RFC 7748 section 6.1: Alice's X25519 private key, wrapped in RFC 8410
    /// PKCS#8 form as `openssl genpkey -algorithm x25519` writes it, must give
    /// Alice's public key from the same section.
    #[test]
    fn sealing_key_reads_rfc7748_alice() {
        let pem = b"-----BEGIN PRIVATE KEY-----\n\
MC4CAQAwBQYDK2VuBCIEIHcHbQpzGKV9PBbBclGyZkXfTC+H68CZKrF3+6UduSwq\n\
-----END PRIVATE KEY-----\n";
        let key = SealingKey::from_pem("alice", pem).unwrap();
        assert_eq!(
            key.public_key().as_bytes().as_slice(),
            &[
                0x85, 0x20, 0xf0, 0x09, 0x89, 0x30, 0xa7, 0x54, 0x74, 0x8b, 0x7d, 0xdc, 0xb4, 0x3e,
                0xf7, 0x5a, 0x0d, 0xbf, 0x3a, 0x0d, 0x26, 0x38, 0x1a, 0xf4, 0xeb, 0xa4, 0xa9, 0x8e,
                0xaa, 0x9b, 0x4e, 0x6a
            ]
        );
    }

    #[test]
    fn malformed_keys_name_the_problem() {
        let err = SigningKey::from_pem("k", b"not pem").unwrap_err();
        assert!(err.to_string().contains("no PEM block"), "{err}");
        // An X25519 key is not an Ed25519 key, and vice versa.
        let (_, x_pem) = SealingKey::generate("s").unwrap();
        let err = SigningKey::from_pem("k", x_pem.as_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Key {
                    problem: KeyProblem::Rejected(_),
                    ..
                }
            ),
            "{err}"
        );
        let (_, e_pem) = SigningKey::generate("k").unwrap();
        let err = SealingKey::from_pem("s", e_pem.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("expected X25519"), "{err}");
        assert_eq!(
            VerifyingKey::from_base64("AAAA"),
            Err(KeyProblem::WrongLength {
                expected: 32,
                found: 3
            })
        );
        assert_eq!(VerifyingKey::from_base64("!!"), Err(KeyProblem::Base64));
    }

    proptest::proptest! {
        #[test]
        fn key_parsers_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = SigningKey::from_pkcs8_der("k", &bytes);
            let _ = SealingKey::from_pkcs8_der("k", &bytes);
            let _ = SigningKey::from_pem("k", &bytes);
            let _ = SealingKey::from_pem("k", &bytes);
        }
    }

    /// RFC 8032 allows the cofactored check `[8][S]B = [8]R + [8][k]A`
    /// as well as `[S]B = R + [k]A`; they part on a signature whose `R`
    /// carries a point of small order, which only the key's holder can
    /// make. Every reader's verifier (ring, OpenSSL) makes the second, so
    /// the services must too, or a record could be accepted that every
    /// reader calls forged (why batch verification is not used:
    /// BENCHMARKS.md, "The last round on [M]").
    #[test]
    fn a_signature_with_a_torsioned_r_is_refused() {
        use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
        use curve25519_dalek::scalar::Scalar;

        let secret = Scalar::from_bytes_mod_order([7; 32]);
        let a = (ED25519_BASEPOINT_POINT * secret).compress();
        let key = VerifyingKey::from_bytes(a.as_bytes()).unwrap();
        let nonce = Scalar::from_bytes_mod_order([9; 32]);
        let sign = |torsion: curve25519_dalek::EdwardsPoint| {
            let r = (ED25519_BASEPOINT_POINT * nonce + torsion).compress();
            let mut h = ring::digest::Context::new(&ring::digest::SHA512);
            for part in [r.as_bytes().as_slice(), a.as_bytes(), b"header"] {
                h.update(part);
            }
            let wide: [u8; 64] = h.finish().as_ref().try_into().unwrap();
            let s = nonce + Scalar::from_bytes_mod_order_wide(&wide) * secret;
            [r.to_bytes(), s.to_bytes()].concat()
        };
        // The same construction without torsion is a valid signature.
        assert!(key.verify(b"header", &sign(EIGHT_TORSION[0])).is_ok());
        for torsion in &EIGHT_TORSION[1..] {
            assert!(matches!(
                key.verify(b"header", &sign(*torsion)),
                Err(KeyProblem::BadSignature)
            ));
        }
    }
}
