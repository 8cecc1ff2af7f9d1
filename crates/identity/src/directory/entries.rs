//! From the document's entries to checked ones: every problem names the
//! field (`members[1].signing_keys[0].valid_from`).

use std::collections::BTreeSet;

use super::{
    Member, MemberDocument, SealingKeyEntry, ServiceDocument, ServiceEntry, SigningKeyDocument,
    SigningKeyEntry, is_valid_jurisdiction, parse_ca, parse_time,
};
use crate::keys::{SealingPublicKey, VerifyingKey};
use crate::spiffe::{MemberId, is_valid_name};

/// A field of the directory document and what is wrong with it.
pub(super) type Problem = (String, String);

/// Member `i` of the document, checked.
pub(super) fn member_from(i: usize, m: MemberDocument) -> Result<Member, Problem> {
    let at = |f: &str| format!("members[{i}].{f}");
    let id = MemberId::parse(&m.id).map_err(|e| (at("id"), format!("{:?}: {e}", m.id)))?;
    if m.name.trim().is_empty() {
        return Err((at("name"), "must not be empty".into()));
    }
    if !is_valid_jurisdiction(&m.jurisdiction) {
        return Err((
            at("jurisdiction"),
            format!(
                "{:?} is not an ISO 3166-1 alpha-2 code or EU",
                m.jurisdiction
            ),
        ));
    }
    if m.roles.is_empty() {
        return Err((at("roles"), "a member needs at least one role".into()));
    }
    let ca_certificate = parse_ca(&m.ca_certificate).map_err(|d| (at("ca_certificate"), d))?;
    let sealing = SealingPublicKey::from_base64(&m.sealing_key.public_key)
        .map_err(|p| (at("sealing_key.public_key"), p.to_string()))?;
    if m.sealing_key.id.is_empty() {
        return Err((at("sealing_key.id"), "must not be empty".into()));
    }
    if m.signing_keys.is_empty() {
        return Err((
            at("signing_keys"),
            "a member needs at least one signing key".into(),
        ));
    }
    Ok(Member {
        id,
        name: m.name,
        jurisdiction: m.jurisdiction,
        roles: m.roles.into_iter().collect(),
        ca_certificate,
        signing_keys: signing_keys_from(i, m.signing_keys)?,
        sealing_key: SealingKeyEntry {
            id: m.sealing_key.id,
            key: sealing,
        },
        revoked_certificates: revoked_from(i, &m.revoked_certificates)?,
    })
}

/// Member `i`'s signing keys, checked: ids present and unique, windows
/// that end after they start.
fn signing_keys_from(
    i: usize,
    keys: Vec<SigningKeyDocument>,
) -> Result<Vec<SigningKeyEntry>, Problem> {
    let mut out: Vec<SigningKeyEntry> = Vec::with_capacity(keys.len());
    for (j, k) in keys.into_iter().enumerate() {
        let at = |f: &str| format!("members[{i}].signing_keys[{j}].{f}");
        if k.id.is_empty() {
            return Err((at("id"), "must not be empty".into()));
        }
        if out.iter().any(|e| e.id == k.id) {
            return Err((at("id"), format!("duplicate key id {:?}", k.id)));
        }
        let key = VerifyingKey::from_base64(&k.public_key)
            .map_err(|p| (at("public_key"), p.to_string()))?;
        let valid_from = parse_time(&k.valid_from).map_err(|d| (at("valid_from"), d))?;
        let valid_until = k
            .valid_until
            .as_deref()
            .map(parse_time)
            .transpose()
            .map_err(|d| (at("valid_until"), d))?;
        if valid_until.is_some_and(|u| u <= valid_from) {
            return Err((at("valid_until"), "must be after valid_from".into()));
        }
        let compromised_since = k
            .compromised_since
            .as_deref()
            .map(parse_time)
            .transpose()
            .map_err(|d| (at("compromised_since"), d))?;
        if compromised_since.is_some_and(|c| c < valid_from) {
            return Err((
                at("compromised_since"),
                "is before valid_from: a key cannot be compromised before it exists".into(),
            ));
        }
        out.push(SigningKeyEntry {
            id: k.id,
            key,
            valid_from,
            valid_until,
            compromised_since,
        });
    }
    Ok(out)
}

/// Service `i` of the document, checked.
pub(super) fn service_from(i: usize, s: ServiceDocument) -> Result<ServiceEntry, Problem> {
    let at = |f: &str| format!("services[{i}].{f}");
    if !is_valid_name(&s.name) {
        return Err((
            at("name"),
            format!("{:?} is not a valid service name", s.name),
        ));
    }
    let ca_certificate = parse_ca(&s.ca_certificate).map_err(|d| (at("ca_certificate"), d))?;
    Ok(ServiceEntry {
        name: s.name,
        ca_certificate,
        rights: s.rights.into_iter().collect(),
    })
}

/// A certificate serial number as the directory lists it: lowercase hex of
/// the DER INTEGER's content octets without leading zero octets (`raw` as
/// `x509_parser`'s `raw_serial` gives it).
pub fn serial_hex(raw: &[u8]) -> String {
    let first = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    let digits: String = raw[first..].iter().map(|b| format!("{b:02x}")).collect();
    if digits.is_empty() {
        "00".into()
    } else {
        digits
    }
}

/// Member `i`'s revoked certificate serials: hex (colons allowed, as
/// `openssl x509 -serial` and browsers print them), at most 20 octets
/// (RFC 5280, 4.1.2.2), each listed once; kept as [`serial_hex`] writes them.
fn revoked_from(i: usize, serials: &[String]) -> Result<BTreeSet<String>, Problem> {
    let mut out = BTreeSet::new();
    for (j, text) in serials.iter().enumerate() {
        let at = format!("members[{i}].revoked_certificates[{j}]");
        let digits: String = text.chars().filter(|c| *c != ':').collect();
        if digits.is_empty()
            || !digits.len().is_multiple_of(2)
            || !digits.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err((
                at,
                format!("{text:?} is not a certificate serial number in hex"),
            ));
        }
        let raw: Vec<u8> = (0..digits.len())
            .step_by(2)
            .filter_map(|k| u8::from_str_radix(&digits[k..k + 2], 16).ok())
            .collect();
        let serial = serial_hex(&raw);
        if serial.len() > 40 {
            return Err((at, format!("{text:?} is longer than 20 octets (RFC 5280)")));
        }
        if !out.insert(serial) {
            return Err((at, format!("{text:?} is listed twice")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_kept_in_one_form() {
        assert_eq!(serial_hex(&[0x00, 0x8f, 0x01]), "8f01");
        assert_eq!(serial_hex(&[0, 0]), "00");
        let list = ["00:8F:01".to_owned(), "7a".to_owned()];
        let kept = revoked_from(2, &list).unwrap();
        assert_eq!(kept.into_iter().collect::<Vec<_>>(), ["7a", "8f01"]);
    }

    #[test]
    fn a_bad_serial_is_refused_naming_its_field() {
        for (list, says) in [
            (vec!["xyz"], "not a certificate serial number"),
            (vec!["abc"], "not a certificate serial number"),
            (vec![""], "not a certificate serial number"),
            (vec!["8f01", "00:8f:01"], "listed twice"),
            (vec![&"ab".repeat(21)[..]], "longer than 20 octets"),
        ] {
            let list: Vec<String> = list.into_iter().map(str::to_owned).collect();
            let (field, detail) = revoked_from(3, &list).unwrap_err();
            assert!(
                field.starts_with("members[3].revoked_certificates["),
                "{field}"
            );
            assert!(detail.contains(says), "{list:?}: {detail}");
        }
    }
}
