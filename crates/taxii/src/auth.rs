//! The gateway's local users: HTTP basic authentication against a users
//! file (`name:password[:highest-label]` per line, `#` comments, mode
//! 0600). A user reads the collections up to its highest label (default
//! TLP:RED, everything the member may open). Without a file the gateway
//! writes one with a user `taxii` and a random password.

use std::path::Path;

use base64::Engine as _;
use cairn_record::pb::SharingLabel;

use crate::TaxiiError;

/// One local user.
#[derive(Clone, Debug)]
pub struct User {
    /// Name.
    pub name: String,
    /// The highest label it may read.
    pub max_label: SharingLabel,
}

struct Account {
    user: User,
    password_digest: [u8; 32],
}

/// The local users.
pub struct Users {
    accounts: Vec<Account>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users")
            .field("count", &self.accounts.len())
            .finish()
    }
}

fn digest(password: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, password);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A TLP label by name (`green`, `TLP:AMBER+STRICT`).
fn label(name: &str) -> Option<SharingLabel> {
    let l = name.trim().to_ascii_lowercase();
    match l.strip_prefix("tlp:").unwrap_or(&l) {
        "clear" => Some(SharingLabel::TlpClear),
        "green" => Some(SharingLabel::TlpGreen),
        "amber" => Some(SharingLabel::TlpAmber),
        "amber+strict" => Some(SharingLabel::TlpAmberStrict),
        "red" => Some(SharingLabel::TlpRed),
        _ => None,
    }
}

impl Users {
    /// Reads `path`, or creates it with one user `taxii` and a random
    /// password (returned, to be shown once).
    pub fn load_or_create(path: &Path) -> Result<(Self, Option<String>), TaxiiError> {
        if !path.exists() {
            let mut bytes = [0u8; 18];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(
                |_| TaxiiError::Tls {
                    detail: "no system randomness".into(),
                },
            )?;
            let password = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            let text = format!(
                "# cairn TAXII gateway users: name:password[:highest label]\ntaxii:{password}:red\n"
            );
            crate::tls::write_file(path, text.as_bytes(), true)?;
            return Ok((Self::parse(path, &text)?, Some(password)));
        }
        let text = std::fs::read_to_string(path).map_err(|e| TaxiiError::Io {
            path: path.to_owned(),
            source: e,
        })?;
        Ok((Self::parse(path, &text)?, None))
    }

    /// Parses a users file's text.
    pub fn parse(path: &Path, text: &str) -> Result<Self, TaxiiError> {
        let mut accounts = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |detail: &str| TaxiiError::Users {
                path: path.to_owned(),
                line: n + 1,
                detail: detail.to_owned(),
            };
            let mut parts = line.splitn(3, ':');
            let name = parts.next().unwrap_or_default();
            let password = parts.next().ok_or_else(|| bad("expected name:password"))?;
            if name.is_empty() || password.len() < 12 {
                return Err(bad("a name and a password of at least 12 characters"));
            }
            let max_label = match parts.next() {
                None => SharingLabel::TlpRed,
                Some(l) => label(l).ok_or_else(|| {
                    bad("the label must be clear, green, amber, amber+strict or red")
                })?,
            };
            accounts.push(Account {
                user: User {
                    name: name.to_owned(),
                    max_label,
                },
                password_digest: digest(password.as_bytes()),
            });
        }
        if accounts.is_empty() {
            return Err(TaxiiError::Users {
                path: path.to_owned(),
                line: 0,
                detail: "no users".into(),
            });
        }
        Ok(Self { accounts })
    }

    /// The user an `Authorization: Basic …` header authenticates.
    pub fn authenticate(&self, header: Option<&str>) -> Option<&User> {
        let encoded = header?.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (name, password) = text.split_once(':')?;
        let given = digest(password.as_bytes());
        // Compare every account's digest (no early exit on the name).
        let mut found = None;
        for a in &self.accounts {
            let same = a.password_digest == given;
            if a.user.name == name && same {
                found = Some(&a.user);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_authenticate_with_their_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let (users, password) = Users::load_or_create(&path).unwrap();
        let password = password.unwrap();
        let basic = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        let user = users
            .authenticate(Some(&basic("taxii", &password)))
            .unwrap();
        assert_eq!(user.max_label, SharingLabel::TlpRed);
        assert!(
            users
                .authenticate(Some(&basic("taxii", "wrong password!")))
                .is_none()
        );
        assert!(users.authenticate(None).is_none());
        assert!(users.authenticate(Some("Bearer x")).is_none());
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (again, shown) = Users::load_or_create(&path).unwrap();
        assert!(
            shown.is_none()
                && again
                    .authenticate(Some(&basic("taxii", &password)))
                    .is_some()
        );
        let users = Users::parse(&path, "misp:a-long-password:green\n").unwrap();
        let misp = users
            .authenticate(Some(&basic("misp", "a-long-password")))
            .unwrap();
        assert_eq!(misp.max_label, SharingLabel::TlpGreen);
        assert!(Users::parse(&path, "x:short\n").is_err());
        assert!(Users::parse(&path, "x:a-long-password:purple\n").is_err());
        assert!(Users::parse(&path, "# nobody\n").is_err());
    }
}
