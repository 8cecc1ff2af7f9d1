//! Key continuity across directory versions: what a change may and may not
//! do to a signing key that the directory in force already lists, and to a
//! revoked TLS certificate (the revocation stays while its CA does). Rotation
//! ends a window (what the key signed inside it stays valid); revocation
//! for compromise is permanent. A key id names one key for ever, so that a
//! signature checked once checks the same way against any later version.

use cairn_identity::Directory;
use cairn_identity::directory::SigningKeyEntry;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::ChangeProblem;

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Checks what `proposed` does to every signing key of `in_force`, for a
/// proposal created at `at`.
pub(super) fn check_continuity(
    in_force: &Directory,
    proposed: &Directory,
    at: OffsetDateTime,
) -> Result<(), ChangeProblem> {
    for old_member in in_force.members() {
        let Some(new_member) = proposed.member(old_member.id.as_str()) else {
            continue; // removing a member is a membership change
        };
        for old in &old_member.signing_keys {
            let new = new_member.signing_keys.iter().find(|k| k.id == old.id);
            check_key(old_member.id.as_str(), old, new, at)?;
        }
        if new_member.ca_certificate == old_member.ca_certificate
            && let Some(serial) = old_member
                .revoked_certificates
                .difference(&new_member.revoked_certificates)
                .next()
        {
            return Err(ChangeProblem::Certificate {
                member: old_member.id.to_string(),
                serial: serial.clone(),
            });
        }
    }
    for member in proposed.members() {
        let known = in_force.member(member.id.as_str());
        for key in &member.signing_keys {
            let listed = known.is_some_and(|m| m.signing_keys.iter().any(|k| k.id == key.id));
            if let (false, Some(since)) = (listed, key.compromised_since) {
                return Err(ChangeProblem::Key {
                    member: member.id.to_string(),
                    key_id: key.id.clone(),
                    detail: format!(
                        "is new and already compromised (since {}): a key the directory never listed cannot be revoked",
                        rfc3339(since)
                    ),
                });
            }
        }
    }
    Ok(())
}

fn check_key(
    member: &str,
    old: &SigningKeyEntry,
    new: Option<&SigningKeyEntry>,
    at: OffsetDateTime,
) -> Result<(), ChangeProblem> {
    let refuse = |detail: String| ChangeProblem::Key {
        member: member.to_owned(),
        key_id: old.id.clone(),
        detail,
    };
    let Some(new) = new else {
        return match old.compromised_since {
            Some(_) => Err(refuse(
                "is revoked and must stay listed while its member is: the revocation is evidence for every reader".into(),
            )),
            None => Ok(()),
        };
    };
    if new.key != old.key || new.valid_from != old.valid_from {
        return Err(refuse(
            "names another public key or window start than in the directory in force: a key id names one key for ever; add a new key id instead".into(),
        ));
    }
    match (old.compromised_since, new.compromised_since) {
        (Some(was), now) if now != Some(was) => {
            return Err(refuse(format!(
                "is revoked (compromised since {}); a revocation cannot be withdrawn or moved",
                rfc3339(was)
            )));
        }
        (None, Some(since)) if since > at => {
            return Err(refuse(format!(
                "compromised_since {} is after the proposal's created-at {}: a compromise is in the past; to stop using a key later, end its window (valid_until)",
                rfc3339(since),
                rfc3339(at)
            )));
        }
        _ => {}
    }
    if new.valid_until != old.valid_until
        && let Some(until) = new.valid_until
        && until < at
    {
        return Err(refuse(format!(
            "valid_until {} is before the proposal's created-at {}: rotation ends a window now or later; to disown what the key signed, revoke it for compromise (compromised_since)",
            rfc3339(until),
            rfc3339(at)
        )));
    }
    Ok(())
}
