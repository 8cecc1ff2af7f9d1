//! The member card: what a member sends the network's governance members
//! to be admitted — its CA certificate, its public keys with their ids and
//! windows, its display name, jurisdiction and the roles it asks for.
//! Public: it holds no secret.

use cairn_identity::directory::{DirectoryDocument, MemberDocument};
use serde::{Deserialize, Serialize};

use crate::MemberError;

/// The card's format version.
pub const CARD_VERSION: u32 = 1;

/// A member card (`card.toml`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberCard {
    /// Must be [`CARD_VERSION`].
    pub card_version: u32,
    /// The network it is for.
    pub trust_domain: String,
    /// The entry the directory would hold.
    pub member: MemberDocument,
}

impl MemberCard {
    /// Parses and checks a card (TOML); a malformed one is refused naming
    /// the field at fault.
    pub fn parse(text: &str, source: &str) -> Result<Self, MemberError> {
        let card: MemberCard = toml::from_str(text).map_err(|e| MemberError::Card {
            source_name: source.to_owned(),
            detail: e.message().to_owned(),
        })?;
        card.check(source)?;
        Ok(card)
    }

    /// Checks the card the way the directory checks a member: id, name,
    /// jurisdiction, roles, the CA certificate, key encodings and windows.
    pub fn check(&self, source: &str) -> Result<(), MemberError> {
        let bad = |detail: String| MemberError::Card {
            source_name: source.to_owned(),
            detail,
        };
        if self.card_version != CARD_VERSION {
            return Err(bad(format!(
                "card_version {} (this cairn reads {CARD_VERSION})",
                self.card_version
            )));
        }
        let doc = DirectoryDocument {
            version: 1,
            trust_domain: self.trust_domain.clone(),
            members: vec![self.member.clone()],
            services: Vec::new(),
        };
        cairn_identity::Directory::from_document(doc, source)
            .map(|_| ())
            .map_err(|e| {
                let text = e.to_string().replace("members[0].", "member.");
                let prefix = format!("{source}: ");
                bad(text.strip_prefix(&prefix).unwrap_or(&text).to_owned())
            })
    }

    /// The card as TOML.
    pub fn to_toml(&self) -> String {
        // Plain structs: serializing cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }
}
