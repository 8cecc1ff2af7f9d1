//! `cairn member rotate-key`: a new signing key for the member, and the
//! card that says so. The old key's window ends after an overlap (what it
//! signed inside its window stays valid for ever); the new key is valid
//! from now. The card goes to the governance members, who propose it
//! (`cairn directory propose --update-keys <card>`). The tools sign with
//! the new key from now on; the services accept it once that change is in
//! force.

use cairn_identity::SigningKey;
use cairn_identity::directory::SigningKeyDocument;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::MemberError;
use crate::card::MemberCard;
use crate::layout::{self, MemberDir};

/// What a rotation made.
#[derive(Clone, Debug)]
pub struct Rotated {
    /// The key that signed until now.
    pub old_key_id: String,
    /// When its window ends (RFC 3339).
    pub old_valid_until: String,
    /// The new key.
    pub new_key_id: String,
    /// The updated card.
    pub card: MemberCard,
}

fn rfc3339(t: OffsetDateTime) -> Result<String, MemberError> {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .map_err(|e| MemberError::Request {
            detail: e.to_string(),
        })
}

/// Makes a new signing key in `dir`, ends the current one's window
/// `overlap` from now, and rewrites `member.toml` and `card.toml`.
pub fn rotate_key(dir: &MemberDir, overlap: Duration) -> Result<Rotated, MemberError> {
    let mut m = dir.member_file()?;
    let card_path = dir.path(layout::CARD_FILE);
    let text = std::fs::read_to_string(&card_path).map_err(|e| MemberError::Io {
        path: card_path.clone(),
        source: e,
    })?;
    let mut card = MemberCard::parse(&text, &card_path.display().to_string())?;
    let now = OffsetDateTime::now_utc();
    let keys = &mut card.member.signing_keys;
    let old_id = m.signing_key_id.clone();
    let new_id = (1..)
        .map(|n| format!("{}-sign-{}-{n}", m.id, now.unix_timestamp()))
        .find(|id| !keys.iter().any(|k| &k.id == id))
        .unwrap_or_default();
    let old_until = rfc3339(now + overlap)?;
    let old = keys
        .iter_mut()
        .find(|k| k.id == old_id)
        .ok_or_else(|| MemberError::Card {
            source_name: card_path.display().to_string(),
            detail: format!("lists no key {old_id:?}, the one member.toml signs with"),
        })?;
    old.valid_until = Some(old_until.clone());
    let (key, pem) = SigningKey::generate(new_id.clone())?;
    let valid_from = rfc3339(now)?;
    keys.push(SigningKeyDocument {
        id: new_id.clone(),
        public_key: key.verifying_key().to_base64(),
        valid_from: valid_from.clone(),
        valid_until: None,
        compromised_since: None,
    });
    card.check("the rotated card")?;
    layout::write_new(&dir.signing_key(&new_id), pem.as_bytes(), true)?;
    layout::replace(&card_path, card.to_toml().as_bytes(), false)?;
    m.signing_key_id = new_id.clone();
    m.signing_key_valid_from = valid_from;
    let member_toml = toml::to_string_pretty(&m).unwrap_or_default();
    layout::replace(
        &dir.path(layout::MEMBER_FILE),
        member_toml.as_bytes(),
        false,
    )?;
    Ok(Rotated {
        old_key_id: old_id,
        old_valid_until: old_until,
        new_key_id: new_id,
        card,
    })
}
