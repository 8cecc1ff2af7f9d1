//! `cairn member init` and `cairn member renew`: a member's credentials
//! made in its own folder ([`crate::layout`]).

use cairn_identity::directory::{KeyDocument, MemberDocument, SigningKeyDocument};
use cairn_identity::{Role, SealingKey, SigningKey};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::MemberError;
use crate::ca::{LeafRequest, MemberCa};
use crate::card::{CARD_VERSION, MemberCard};
use crate::layout::{self, MemberDir, MemberFile, private_dir, write_new};

/// Who the new member is.
#[derive(Clone, Debug)]
pub struct NewMember {
    /// Member id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// ISO 3166-1 alpha-2 or `EU`.
    pub jurisdiction: String,
    /// Roles asked for.
    pub roles: Vec<Role>,
    /// The network's trust domain.
    pub trust_domain: String,
    /// The first certificate: for this program or person…
    pub first: LeafRequest,
}

/// Makes a member's credentials in `dir` (which must not hold a member
/// yet): CA, a certificate for `new.first`, signing and sealing keys, the
/// member file and the card; returns the card.
pub fn init(dir: &MemberDir, new: &NewMember) -> Result<MemberCard, MemberError> {
    if dir.path(layout::MEMBER_FILE).exists() {
        return Err(MemberError::Exists {
            path: dir.path(layout::MEMBER_FILE),
        });
    }
    let now = OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let signing_id = format!("{}-sign-{stamp}", new.id);
    let sealing_id = format!("{}-seal-{stamp}", new.id);
    let valid_from = now
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(&Rfc3339)
        .map_err(|e| MemberError::Request {
            detail: e.to_string(),
        })?;
    let (ca, ca_key) = MemberCa::create(&new.name)?;
    let (signing, signing_pem) = SigningKey::generate(signing_id.clone())?;
    let (sealing, sealing_pem) = SealingKey::generate(sealing_id.clone())?;
    let card = MemberCard {
        card_version: CARD_VERSION,
        trust_domain: new.trust_domain.clone(),
        member: MemberDocument {
            id: new.id.clone(),
            name: new.name.clone(),
            jurisdiction: new.jurisdiction.clone(),
            roles: new.roles.clone(),
            ca_certificate: ca.cert_pem().to_owned(),
            sealing_key: KeyDocument {
                id: sealing_id.clone(),
                public_key: sealing.public_key().to_base64(),
            },
            signing_keys: vec![SigningKeyDocument {
                id: signing_id.clone(),
                public_key: signing.verifying_key().to_base64(),
                valid_from: valid_from.clone(),
                valid_until: None,
                compromised_since: None,
            }],
            revoked_certificates: Vec::new(),
        },
    };
    // Refuse a bad id, name or jurisdiction before writing anything.
    card.check("for the new member")?;
    let mut first = new.first.clone();
    first.member = new.id.clone();
    first.trust_domain = new.trust_domain.clone();
    let leaf = ca.issue(&first)?;
    let member_file = MemberFile {
        id: new.id.clone(),
        trust_domain: new.trust_domain.clone(),
        name: new.name.clone(),
        jurisdiction: new.jurisdiction.clone(),
        roles: new.roles.clone(),
        signing_key_id: signing_id.clone(),
        signing_key_valid_from: valid_from,
        sealing_key_id: sealing_id,
    };
    private_dir(dir.root())?;
    for sub in [layout::CA_OFFLINE, "keys", "tls"] {
        private_dir(&dir.path(sub))?;
    }
    write_new(&dir.ca_key(), ca_key.as_bytes(), true)?;
    write_new(&dir.path(layout::CA_CERT), ca.cert_pem().as_bytes(), false)?;
    write_new(&dir.signing_key(&signing_id), signing_pem.as_bytes(), true)?;
    write_new(&dir.sealing_key(), sealing_pem.as_bytes(), true)?;
    write_leaf(dir, &first.name, &leaf)?;
    let text = toml::to_string_pretty(&member_file).unwrap_or_default();
    write_new(
        &dir.path(layout::CARD_FILE),
        card.to_toml().as_bytes(),
        false,
    )?;
    write_new(&dir.path(layout::MEMBER_FILE), text.as_bytes(), false)?;
    Ok(card)
}

fn write_leaf(dir: &MemberDir, name: &str, leaf: &crate::ca::Issued) -> Result<(), MemberError> {
    let (cert, key) = dir.tls(name);
    if let Some(k) = &leaf.key_pem {
        layout::replace(&key, k.as_bytes(), true)?;
    }
    layout::replace(&cert, leaf.cert_pem.as_bytes(), false)
}

/// The member's CA, when its key is in the folder.
pub fn ca_of(dir: &MemberDir) -> Result<MemberCa, MemberError> {
    let key_path = dir.ca_key();
    let key = std::fs::read_to_string(&key_path).map_err(|_| MemberError::CaOffline {
        path: key_path.clone(),
    })?;
    let cert_path = dir.path(layout::CA_CERT);
    let cert = std::fs::read_to_string(&cert_path).map_err(|e| MemberError::Io {
        path: cert_path,
        source: e,
    })?;
    MemberCa::from_pem(&cert, &key)
}

/// Issues (or renews) the certificate of program or person `request.name`
/// with a fresh key, from the CA key in the folder.
pub fn renew(dir: &MemberDir, request: &LeafRequest) -> Result<crate::ca::Issued, MemberError> {
    let m = dir.member_file()?;
    let ca = ca_of(dir)?;
    let mut request = request.clone();
    request.member = m.id;
    request.trust_domain = m.trust_domain;
    let leaf = ca.issue(&request)?;
    write_leaf(dir, &request.name, &leaf)?;
    Ok(leaf)
}
