//! A network's genesis: its first directory, the quorum rule for later
//! changes, and the signatures of its founders (the members of that
//! directory holding the `governance` role). The directory is carried as
//! its exact bytes, so what is signed is what is loaded:
//!
//! ```toml
//! genesis_version = 1
//! quorum = 2                # k of the governance members, for changes
//! directory = """…the directory TOML…"""
//! [[signatures]]
//! member = "uk-aisi"
//! key_id = "uk-aisi-sign-1"
//! signature = "<base64 Ed25519>"
//! ```
//!
//! Each founder signs `"cairn.genesis.v1\0" || SHA-256(directory) ||
//! quorum (8 bytes, big-endian)` with a signing key the directory lists
//! for it. A genesis is in force only when every founder has signed it;
//! [`Directory::load`] refuses one that is not, naming who is missing.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::directory::Role;
use crate::{Directory, Error, SigningKey};

/// The genesis format's version.
pub const GENESIS_VERSION: u32 = 1;

/// A genesis document.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Must be [`GENESIS_VERSION`].
    pub genesis_version: u32,
    /// How many governance members must sign a later change.
    pub quorum: u32,
    /// The directory document, exactly as signed.
    pub directory: String,
    /// The founders' signatures.
    #[serde(default)]
    pub signatures: Vec<GenesisSignature>,
}

/// One founder's signature.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GenesisSignature {
    /// The founder.
    pub member: String,
    /// Its signing key's id in the directory.
    pub key_id: String,
    /// Base64 of the 64-byte Ed25519 signature.
    pub signature: String,
}

/// Whether `text` is a genesis document rather than a bare directory.
pub fn is_genesis(text: &str) -> bool {
    text.lines()
        .any(|l| l.trim_start().starts_with("genesis_version"))
}

impl Genesis {
    /// A genesis for `directory` (TOML text) with `quorum`, unsigned;
    /// checks the directory and the quorum rule.
    pub fn new(directory: String, quorum: u32, source: &str) -> Result<Self, Error> {
        let g = Self {
            genesis_version: GENESIS_VERSION,
            quorum,
            directory,
            signatures: Vec::new(),
        };
        g.founders_and_directory(source)?;
        Ok(g)
    }

    fn bad(source: &str, field: &str, detail: impl Into<String>) -> Error {
        Error::Directory {
            source_name: source.to_owned(),
            field: field.to_owned(),
            detail: detail.into(),
        }
    }

    /// Parses a genesis document (TOML).
    pub fn parse(text: &str, source: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Self::bad(source, "genesis", e.message().to_owned()))
    }

    /// The document as TOML.
    pub fn to_toml(&self) -> String {
        // Plain structs: serializing cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// What each founder signs.
    pub fn signed_message(&self) -> Vec<u8> {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.directory.as_bytes());
        let mut m = b"cairn.genesis.v1\0".to_vec();
        m.extend_from_slice(digest.as_ref());
        m.extend_from_slice(&u64::from(self.quorum).to_be_bytes());
        m
    }

    /// The embedded directory and its founders, with the quorum checked.
    fn founders_and_directory(&self, source: &str) -> Result<(Directory, Vec<String>), Error> {
        if self.genesis_version != GENESIS_VERSION {
            return Err(Self::bad(
                source,
                "genesis_version",
                format!(
                    "{} (this cairn reads {GENESIS_VERSION})",
                    self.genesis_version
                ),
            ));
        }
        let directory =
            Directory::parse_plain(self.directory.as_bytes(), &format!("{source}: directory"))?;
        let founders: Vec<String> = directory
            .members()
            .filter(|m| m.roles.contains(&Role::Governance))
            .map(|m| m.id.to_string())
            .collect();
        if founders.is_empty() {
            return Err(Self::bad(
                source,
                "directory",
                "no member holds the governance role: nobody could ever change it",
            ));
        }
        if self.quorum == 0 || self.quorum as usize > founders.len() {
            return Err(Self::bad(
                source,
                "quorum",
                format!(
                    "{}: must be 1 to the {} governance members",
                    self.quorum,
                    founders.len()
                ),
            ));
        }
        Ok((directory, founders))
    }

    /// Adds `member`'s signature with `key` (replacing an earlier one by
    /// the same member).
    pub fn sign(&mut self, member: &str, key: &SigningKey, source: &str) -> Result<(), Error> {
        let (directory, founders) = self.founders_and_directory(source)?;
        if !founders.iter().any(|f| f == member) {
            return Err(Self::bad(
                source,
                "signatures",
                format!("{member} is not a founder (a governance member of this directory)"),
            ));
        }
        let listed = directory
            .member(member)
            .and_then(|m| {
                m.signing_key_at(key.key_id(), OffsetDateTime::now_utc())
                    .ok()
            })
            .is_some_and(|k| *k == key.verifying_key());
        if !listed {
            return Err(Self::bad(
                source,
                "signatures",
                format!(
                    "key {} is not a signing key of {member} valid now in this directory",
                    key.key_id()
                ),
            ));
        }
        let sig = key.sign(&self.signed_message());
        self.signatures.retain(|s| s.member != member);
        self.signatures.push(GenesisSignature {
            member: member.to_owned(),
            key_id: key.key_id().to_owned(),
            signature: base64::engine::general_purpose::STANDARD.encode(sig),
        });
        self.signatures.sort_by(|a, b| a.member.cmp(&b.member));
        Ok(())
    }

    /// The founders whose signature is missing; an error for a signature
    /// that is not a founder's, is doubled, or does not verify.
    pub fn missing(&self, source: &str) -> Result<Vec<String>, Error> {
        let (directory, founders) = self.founders_and_directory(source)?;
        let message = self.signed_message();
        let mut seen = Vec::new();
        for (i, s) in self.signatures.iter().enumerate() {
            let field = format!("signatures[{i}]");
            if !founders.contains(&s.member) {
                return Err(Self::bad(
                    source,
                    &field,
                    format!("{} is not a founder", s.member),
                ));
            }
            if seen.contains(&s.member) {
                return Err(Self::bad(
                    source,
                    &field,
                    format!("{} signed twice", s.member),
                ));
            }
            let key = directory
                .member(&s.member)
                .and_then(|m| m.signing_keys.iter().find(|k| k.id == s.key_id))
                .ok_or_else(|| {
                    Self::bad(
                        source,
                        &field,
                        format!("{} has no signing key {:?}", s.member, s.key_id),
                    )
                })?;
            let sig = base64::engine::general_purpose::STANDARD
                .decode(&s.signature)
                .map_err(|e| Self::bad(source, &field, format!("signature is not base64 ({e})")))?;
            key.key.verify(&message, &sig).map_err(|_| {
                Self::bad(
                    source,
                    &field,
                    format!("the signature of {} does not verify", s.member),
                )
            })?;
            seen.push(s.member.clone());
        }
        Ok(founders.into_iter().filter(|f| !seen.contains(f)).collect())
    }

    /// The directory, once every founder has signed.
    pub fn directory_in_force(&self, source: &str) -> Result<Directory, Error> {
        let missing = self.missing(source)?;
        if !missing.is_empty() {
            return Err(Self::bad(
                source,
                "signatures",
                format!(
                    "not signed by every founder: {} missing (cairn directory sign)",
                    missing.join(", ")
                ),
            ));
        }
        Ok(Directory::parse_plain(self.directory.as_bytes(), source)?.with_quorum(self.quorum))
    }
}
