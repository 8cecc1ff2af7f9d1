//! TAXII 2.1 URL query parameters (section 3.4): `added_after`, `limit`,
//! `next` and the `match[id|type|version|spec_version]` filters, and
//! which stored versions they select.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::store::{Entry, Store};
use crate::{MAX_PAGE, PAGE};

/// Parsed query parameters.
#[derive(Clone, Debug)]
pub struct Filter {
    /// Only entries added after this.
    pub added_after: Option<OffsetDateTime>,
    /// Page size.
    pub limit: usize,
    /// Resume after this entry (the `next` of the previous page).
    pub next: u64,
    /// `match[id]`.
    pub ids: Vec<String>,
    /// `match[type]`.
    pub types: Vec<String>,
    /// `match[version]`: `last` (the default), `first`, `all` or
    /// timestamps.
    pub versions: Vec<String>,
    /// `match[spec_version]`.
    pub spec_versions: Vec<String>,
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Filter {
    /// From the query's pairs; a malformed value is refused (HTTP 400)
    /// with a message naming the parameter. Parameters TAXII does not
    /// define are ignored, as the specification allows servers to.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, String> {
        let mut f = Filter {
            added_after: None,
            limit: PAGE,
            next: 0,
            ids: Vec::new(),
            types: Vec::new(),
            versions: Vec::new(),
            spec_versions: Vec::new(),
        };
        for (k, v) in pairs {
            match k.as_str() {
                "added_after" => {
                    let t = OffsetDateTime::parse(v, &Rfc3339).map_err(|e| {
                        format!("added_after {v:?} is not an RFC 3339 timestamp: {e}")
                    })?;
                    f.added_after = Some(t);
                }
                "limit" => {
                    let n: usize = v
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("limit {v:?} is not a positive integer"))?;
                    f.limit = n.min(MAX_PAGE);
                }
                "next" => {
                    f.next = v
                        .parse()
                        .map_err(|_| format!("next {v:?} is not a value this server gave"))?;
                }
                "match[id]" => f.ids.extend(list(v)),
                "match[type]" => f.types.extend(list(v)),
                "match[version]" => {
                    for item in list(v) {
                        let keyword = matches!(item.as_str(), "first" | "last" | "all");
                        if !keyword && OffsetDateTime::parse(&item, &Rfc3339).is_err() {
                            return Err(format!(
                                "match[version] {item:?} is not first, last, all or a timestamp"
                            ));
                        }
                        f.versions.push(item);
                    }
                }
                "match[spec_version]" => f.spec_versions.extend(list(v)),
                _ => {}
            }
        }
        if f.versions.is_empty() {
            f.versions.push("last".into());
        }
        Ok(f)
    }

    /// Whether entry `e` is selected (`store` tells first and last
    /// versions apart).
    pub fn keeps(&self, store: &Store, e: &Entry) -> bool {
        let obj = &e.object;
        let id = obj["id"].as_str().unwrap_or_default();
        let ty = obj["type"].as_str().unwrap_or_default();
        let spec = obj["spec_version"].as_str().unwrap_or("2.1");
        if self.added_after.is_some_and(|after| e.date_added <= after)
            || (!self.ids.is_empty() && !self.ids.iter().any(|i| i == id))
            || (!self.types.is_empty() && !self.types.iter().any(|t| t == ty))
            || (!self.spec_versions.is_empty() && !self.spec_versions.iter().any(|s| s == spec))
        {
            return false;
        }
        if self.versions.iter().any(|v| v == "all") {
            return true;
        }
        let version = version_of(obj);
        let versions = store.versions(id).unwrap_or_default();
        self.versions.iter().any(|v| match v.as_str() {
            "last" => versions.last().is_some_and(|l| l.seq == e.seq),
            "first" => versions.first().is_some_and(|f| f.seq == e.seq),
            at => same_time(at, version),
        })
    }
}

/// An object's version: `modified`, else `created` (marking definitions).
pub fn version_of(obj: &Value) -> &str {
    obj["modified"]
        .as_str()
        .or_else(|| obj["created"].as_str())
        .unwrap_or_default()
}

fn same_time(a: &str, b: &str) -> bool {
    match (
        OffsetDateTime::parse(a, &Rfc3339),
        OffsetDateTime::parse(b, &Rfc3339),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parameters_parse_and_bad_values_are_named() {
        let f = Filter::parse(&pairs(&[
            ("limit", "5000"),
            ("match[type]", "incident,sighting"),
            ("added_after", "2026-12-01T00:00:00Z"),
        ]))
        .unwrap();
        assert_eq!(f.limit, MAX_PAGE);
        assert_eq!(f.types, ["incident", "sighting"]);
        assert_eq!(f.versions, ["last"]);
        for (k, v) in [
            ("limit", "0"),
            ("limit", "ten"),
            ("added_after", "yesterday"),
            ("next", "abc"),
            ("match[version]", "latest"),
        ] {
            let e = Filter::parse(&pairs(&[(k, v)])).unwrap_err();
            assert!(e.starts_with(k.split('[').next().unwrap()), "{e}");
        }
        assert!(Filter::parse(&pairs(&[("unknown", "x")])).is_ok());
    }
}
