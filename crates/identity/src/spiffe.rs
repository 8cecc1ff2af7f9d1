//! Identities as carried in certificates: SPIFFE-style URI SANs.
//!
//! Members: `spiffe://<trust-domain>/member/<id>` (a member's people and
//! programs may add path segments below it). Services:
//! `spiffe://<trust-domain>/service/<name>`.

use std::fmt;

use crate::error::Error;

/// A member id: `[a-z0-9][a-z0-9-]{1,31}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(String);

impl MemberId {
    /// Checks the format and wraps `id`.
    pub fn parse(id: &str) -> Result<Self, &'static str> {
        if is_valid_name(id) {
            Ok(Self(id.to_owned()))
        } else {
            Err(
                "a member id is 2 to 32 characters of a-z, 0-9 and '-', starting with a letter or digit",
            )
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `s` matches `[a-z0-9][a-z0-9-]{1,31}` (member ids, service names).
pub fn is_valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    (2..=32).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Whether `s` is a plausible DNS-style trust domain (`cairn.example`).
pub fn is_valid_trust_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        })
}

/// The authenticated identity of a TLS peer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerIdentity {
    /// A member of the network (a person or program of that member).
    Member {
        /// The member.
        id: MemberId,
        /// The path below `member/<id>`, if any (e.g. `/ci/uploader`).
        subpath: String,
    },
    /// One of the network's services (`intake`, `evals`, `audit`).
    Service {
        /// The service name.
        name: String,
    },
}

impl PeerIdentity {
    /// The SPIFFE URI for this identity in `trust_domain`.
    pub fn to_uri(&self, trust_domain: &str) -> String {
        match self {
            PeerIdentity::Member { id, subpath } => {
                format!("spiffe://{trust_domain}/member/{id}{subpath}")
            }
            PeerIdentity::Service { name } => format!("spiffe://{trust_domain}/service/{name}"),
        }
    }

    /// Parses a URI SAN, which must belong to `trust_domain`.
    pub fn parse_uri(uri: &str, trust_domain: &str) -> Result<Self, Error> {
        let bad = |detail| Error::Identity {
            uri: uri.chars().take(300).collect(),
            detail,
        };
        let rest = uri
            .strip_prefix("spiffe://")
            .ok_or_else(|| bad("not a spiffe:// URI"))?;
        let (domain, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("no path after the trust domain"))?;
        if domain != trust_domain {
            return Err(bad("belongs to another trust domain"));
        }
        if path.contains(['?', '#', '%'])
            || path
                .split('/')
                .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(bad(
                "path has empty, dot or encoded segments, a query or a fragment",
            ));
        }
        let mut segments = path.splitn(3, '/');
        let kind = segments.next().unwrap_or_default();
        let name = segments
            .next()
            .ok_or_else(|| bad("no member or service name"))?;
        let below = segments.next();
        match kind {
            "member" => {
                let id = MemberId::parse(name).map_err(|_| bad("malformed member id"))?;
                let subpath = below.map(|b| format!("/{b}")).unwrap_or_default();
                Ok(PeerIdentity::Member { id, subpath })
            }
            "service" => {
                if below.is_some() {
                    return Err(bad("a service identity has no path below its name"));
                }
                if !is_valid_name(name) {
                    return Err(bad("malformed service name"));
                }
                Ok(PeerIdentity::Service {
                    name: name.to_owned(),
                })
            }
            _ => Err(bad("path must start with member/ or service/")),
        }
    }

    /// The member, if this is a member identity.
    pub fn member(&self) -> Option<&MemberId> {
        match self {
            PeerIdentity::Member { id, .. } => Some(id),
            PeerIdentity::Service { .. } => None,
        }
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerIdentity::Member { id, subpath } => write!(f, "member {id}{subpath}"),
            PeerIdentity::Service { name } => write!(f, "service {name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TD: &str = "cairn.example";

    #[test]
    fn parses_members_and_services() {
        assert_eq!(
            PeerIdentity::parse_uri("spiffe://cairn.example/member/uk-aisi", TD).unwrap(),
            PeerIdentity::Member {
                id: MemberId::parse("uk-aisi").unwrap(),
                subpath: String::new()
            }
        );
        assert_eq!(
            PeerIdentity::parse_uri("spiffe://cairn.example/member/uk-aisi/ci/bot", TD).unwrap(),
            PeerIdentity::Member {
                id: MemberId::parse("uk-aisi").unwrap(),
                subpath: "/ci/bot".into()
            }
        );
        assert_eq!(
            PeerIdentity::parse_uri("spiffe://cairn.example/service/audit", TD).unwrap(),
            PeerIdentity::Service {
                name: "audit".into()
            }
        );
    }

    #[test]
    fn refuses_what_is_not_ours() {
        for (uri, why) in [
            ("https://cairn.example/member/uk-aisi", "not a spiffe"),
            (
                "spiffe://other.example/member/uk-aisi",
                "another trust domain",
            ),
            ("spiffe://cairn.example", "no path"),
            ("spiffe://cairn.example/member/UK", "malformed member id"),
            ("spiffe://cairn.example/member/", "empty"),
            ("spiffe://cairn.example/member/uk-aisi/../jp-aisi", "dot"),
            ("spiffe://cairn.example/member/uk%2Daisi", "encoded"),
            ("spiffe://cairn.example/service/audit/x", "no path below"),
            ("spiffe://cairn.example/admin/root", "member/ or service/"),
        ] {
            let err = PeerIdentity::parse_uri(uri, TD).unwrap_err().to_string();
            assert!(err.contains(why), "{uri}: {err}");
        }
    }

    #[test]
    fn member_id_format() {
        assert!(MemberId::parse("uk-aisi").is_ok());
        assert!(MemberId::parse("a1").is_ok());
        assert!(MemberId::parse("a").is_err());
        assert!(MemberId::parse("-ab").is_err());
        assert!(MemberId::parse("Ab").is_err());
        assert!(MemberId::parse(&"a".repeat(33)).is_err());
        assert!(MemberId::parse(&"a".repeat(32)).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn round_trips(id in "[a-z0-9][a-z0-9-]{1,31}", sub in proptest::option::of("(/[a-z]{1,8}){1,3}")) {
            let identity = PeerIdentity::Member { id: MemberId::parse(&id).unwrap(), subpath: sub.unwrap_or_default() };
            proptest::prop_assert_eq!(PeerIdentity::parse_uri(&identity.to_uri(TD), TD).unwrap(), identity);
        }

        #[test]
        fn never_panics(uri in ".{0,80}") {
            let _ = PeerIdentity::parse_uri(&uri, TD);
        }
    }
}
