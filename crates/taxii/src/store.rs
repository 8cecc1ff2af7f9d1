//! The gateway's own durable state, in one redb file under the state
//! directory (mode 0600: it holds the plaintext the member opened): every
//! STIX object version it serves with its collection and date added, the
//! object each record became, the follow cursors, the STIX versions it
//! has shared, and the status resources of add-objects requests.

use std::path::Path;

use redb::{
    Database, ReadableDatabase as _, ReadableTable as _, TableDefinition, TableError,
    WriteTransaction,
};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::TaxiiError;

/// seq → {"collection", "date_added", "object"}.
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
/// (collection, seq).
const BY_COLLECTION: TableDefinition<(&str, u64), ()> = TableDefinition::new("by_collection");
/// (STIX id, seq): every version of an object, oldest first.
const VERSIONS: TableDefinition<(&str, u64), ()> = TableDefinition::new("versions");
/// record id → STIX id of the object it became (or, for a record this
/// gateway submitted, the id the tool gave it).
const RECORDS: TableDefinition<&str, &str> = TableDefinition::new("records");
/// (STIX id, modified) → record id, for objects this gateway shared.
const SHARED: TableDefinition<(&str, &str), &str> = TableDefinition::new("shared");
/// Cursors and counters.
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
/// status id → status resource.
const STATUS: TableDefinition<&str, &[u8]> = TableDefinition::new("status");

/// One stored object version.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Its position (the order of date added).
    pub seq: u64,
    /// When the gateway added it.
    pub date_added: OffsetDateTime,
    /// The STIX object.
    pub object: Value,
}

/// The gateway's database.
pub struct Store {
    db: Database,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn db_err(e: impl Into<redb::Error>) -> TaxiiError {
    TaxiiError::Store {
        detail: e.into().to_string(),
    }
}

/// A TAXII timestamp with microseconds (date added is unique per entry).
pub fn micros(t: OffsetDateTime) -> String {
    let ms = cairn_stix::vocab::timestamp(t);
    format!("{}{:03}Z", ms.trim_end_matches('Z'), t.microsecond() % 1000)
}

impl Store {
    /// Opens (creating) `state/gateway.redb`, private to its owner.
    pub fn open(state: &Path) -> Result<Self, TaxiiError> {
        crate::tls::private_dir(state)?;
        let path = state.join("gateway.redb");
        let db = Database::create(&path).map_err(db_err)?;
        crate::tls::restrict(&path)?;
        let tx = db.begin_write().map_err(db_err)?;
        tx.open_table(ENTRIES).map_err(db_err)?;
        tx.open_table(BY_COLLECTION).map_err(db_err)?;
        tx.open_table(VERSIONS).map_err(db_err)?;
        tx.open_table(RECORDS).map_err(db_err)?;
        tx.open_table(SHARED).map_err(db_err)?;
        tx.open_table(META).map_err(db_err)?;
        tx.open_table(STATUS).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(Self { db })
    }

    /// A meta value (a cursor).
    pub fn meta(&self, key: &str) -> Result<Option<String>, TaxiiError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(META).map_err(db_err)?;
        Ok(t.get(key).map_err(db_err)?.map(|v| v.value().to_owned()))
    }

    /// Stores `objects` in `collection` (new versions of objects already
    /// held are added beside the old ones), maps `record` to `primary`,
    /// and sets the meta `cursor` — all in one durable transaction, so a
    /// crash never loses an object whose cursor moved on.
    pub fn add(
        &self,
        collection: &str,
        objects: &[Value],
        record: Option<(Uuid, &str)>,
        cursor: Option<(&str, &str)>,
    ) -> Result<(), TaxiiError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        for obj in objects {
            if !self.holds(&tx, obj)? {
                insert(&tx, collection, obj)?;
            }
        }
        if let Some((record_id, stix_id)) = record {
            let mut t = tx.open_table(RECORDS).map_err(db_err)?;
            let key = record_id.to_string();
            if t.get(key.as_str()).map_err(db_err)?.is_none() {
                t.insert(key.as_str(), stix_id).map_err(db_err)?;
            }
        }
        if let Some((key, value)) = cursor {
            tx.open_table(META)
                .map_err(db_err)?
                .insert(key, value)
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// Whether this exact version (id and `modified`) is already stored.
    fn holds(&self, tx: &WriteTransaction, obj: &Value) -> Result<bool, TaxiiError> {
        let id = obj["id"].as_str().unwrap_or_default();
        let versions = tx.open_table(VERSIONS).map_err(db_err)?;
        let entries = tx.open_table(ENTRIES).map_err(db_err)?;
        for item in versions.range((id, 0)..=(id, u64::MAX)).map_err(db_err)? {
            let (k, _) = item.map_err(db_err)?;
            if let Some(e) = entries.get(k.value().1).map_err(db_err)? {
                let held: Value = serde_json::from_slice(e.value()).unwrap_or_default();
                if held["object"]["modified"] == obj["modified"] {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// The STIX id record `record_id` became.
    pub fn object_id_of(&self, record_id: Uuid) -> Result<Option<String>, TaxiiError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(RECORDS).map_err(db_err)?;
        let key = record_id.to_string();
        Ok(t.get(key.as_str())
            .map_err(db_err)?
            .map(|v| v.value().to_owned()))
    }

    /// Names the object record `record_id` will become (a tool's own id
    /// for an object it added), before the record is submitted.
    pub fn name_record(&self, record_id: &str, stix_id: &str) -> Result<(), TaxiiError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        tx.open_table(RECORDS)
            .map_err(db_err)?
            .insert(record_id, stix_id)
            .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    /// Every version of object `id`, oldest first.
    pub fn versions(&self, id: &str) -> Result<Vec<Entry>, TaxiiError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let versions = tx.open_table(VERSIONS).map_err(db_err)?;
        let entries = tx.open_table(ENTRIES).map_err(db_err)?;
        let mut out = Vec::new();
        for item in versions.range((id, 0)..=(id, u64::MAX)).map_err(db_err)? {
            let (k, _) = item.map_err(db_err)?;
            if let Some(e) = entries.get(k.value().1).map_err(db_err)? {
                out.push(decode(k.value().1, e.value())?);
            }
        }
        Ok(out)
    }

    /// The latest version of the object a record became.
    pub fn latest_of_record(&self, record_id: Uuid) -> Result<Option<Value>, TaxiiError> {
        let Some(id) = self.object_id_of(record_id)? else {
            return Ok(None);
        };
        Ok(self.versions(&id)?.pop().map(|e| e.object))
    }

    /// Entries of `collection` after position `after`, at most `limit`
    /// that pass `keep`; the bool says whether more would pass.
    pub fn scan(
        &self,
        collection: &str,
        after: u64,
        limit: usize,
        keep: &dyn Fn(&Entry) -> bool,
    ) -> Result<(Vec<Entry>, bool), TaxiiError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let index = tx.open_table(BY_COLLECTION).map_err(db_err)?;
        let entries = tx.open_table(ENTRIES).map_err(db_err)?;
        let mut out = Vec::new();
        let start = (collection, after.saturating_add(1));
        for item in index
            .range(start..=(collection, u64::MAX))
            .map_err(db_err)?
        {
            let seq = item.map_err(db_err)?.0.value().1;
            let Some(raw) = entries.get(seq).map_err(db_err)? else {
                continue;
            };
            let entry = decode(seq, raw.value())?;
            if keep(&entry) {
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push(entry);
            }
        }
        Ok((out, false))
    }

    /// The record a shared STIX version became.
    pub fn shared(&self, stix_id: &str, modified: &str) -> Result<Option<String>, TaxiiError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(SHARED).map_err(db_err)?;
        Ok(t.get((stix_id, modified))
            .map_err(db_err)?
            .map(|v| v.value().to_owned()))
    }

    /// The latest record this gateway shared for object `stix_id`.
    pub fn last_shared(&self, stix_id: &str) -> Result<Option<(String, String)>, TaxiiError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(SHARED).map_err(db_err)?;
        let last = t
            .range((stix_id, "")..=(stix_id, "\u{10FFFF}"))
            .map_err(db_err)?
            .last()
            .transpose()
            .map_err(db_err)?;
        Ok(last.map(|(k, v)| (k.value().1.to_owned(), v.value().to_owned())))
    }

    /// Remembers that STIX version (`stix_id`, `modified`) was shared as
    /// `record_id`.
    pub fn record_shared(
        &self,
        stix_id: &str,
        modified: &str,
        record_id: &str,
    ) -> Result<(), TaxiiError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        tx.open_table(SHARED)
            .map_err(db_err)?
            .insert((stix_id, modified), record_id)
            .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    /// Stores a status resource.
    pub fn put_status(&self, id: &str, status: &Value) -> Result<(), TaxiiError> {
        let bytes = serde_json::to_vec(status).map_err(|e| TaxiiError::Store {
            detail: e.to_string(),
        })?;
        let tx = self.db.begin_write().map_err(db_err)?;
        tx.open_table(STATUS)
            .map_err(db_err)?
            .insert(id, bytes.as_slice())
            .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    /// A status resource.
    pub fn status(&self, id: &str) -> Result<Option<Value>, TaxiiError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = match tx.open_table(STATUS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_err(e)),
        };
        Ok(t.get(id)
            .map_err(db_err)?
            .and_then(|v| serde_json::from_slice(v.value()).ok()))
    }
}

fn insert(tx: &WriteTransaction, collection: &str, obj: &Value) -> Result<(), TaxiiError> {
    let mut meta = tx.open_table(META).map_err(db_err)?;
    let last_seq: u64 = meta
        .get("seq")
        .map_err(db_err)?
        .and_then(|v| v.value().parse().ok())
        .unwrap_or(0);
    let last_added = meta
        .get("date_added")
        .map_err(db_err)?
        .and_then(|v| v.value().parse::<i128>().ok())
        .unwrap_or(0);
    let seq = last_seq + 1;
    // Date added grows strictly, by at least a microsecond.
    let now = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000;
    let added_us = now.max(last_added + 1);
    let date_added = OffsetDateTime::from_unix_timestamp_nanos(added_us * 1000).map_err(|e| {
        TaxiiError::Store {
            detail: e.to_string(),
        }
    })?;
    meta.insert("seq", seq.to_string().as_str())
        .map_err(db_err)?;
    meta.insert("date_added", added_us.to_string().as_str())
        .map_err(db_err)?;
    let stored = serde_json::json!({
        "collection": collection,
        "date_added": micros(date_added),
        "object": obj,
    });
    let bytes = serde_json::to_vec(&stored).map_err(|e| TaxiiError::Store {
        detail: e.to_string(),
    })?;
    tx.open_table(ENTRIES)
        .map_err(db_err)?
        .insert(seq, bytes.as_slice())
        .map_err(db_err)?;
    tx.open_table(BY_COLLECTION)
        .map_err(db_err)?
        .insert((collection, seq), ())
        .map_err(db_err)?;
    let id = obj["id"].as_str().unwrap_or_default();
    tx.open_table(VERSIONS)
        .map_err(db_err)?
        .insert((id, seq), ())
        .map_err(db_err)?;
    Ok(())
}

fn decode(seq: u64, raw: &[u8]) -> Result<Entry, TaxiiError> {
    let v: Value = serde_json::from_slice(raw).map_err(|e| TaxiiError::Store {
        detail: e.to_string(),
    })?;
    let added = v["date_added"].as_str().unwrap_or_default();
    let date_added = OffsetDateTime::parse(added, &time::format_description::well_known::Rfc3339)
        .map_err(|e| TaxiiError::Store {
        detail: format!("date added {added:?}: {e}"),
    })?;
    Ok(Entry {
        seq,
        date_added,
        object: v["object"].clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_are_kept_in_order_and_scans_page() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let v1 = json!({"id": "incident--a", "modified": "2026-01-01T00:00:00.000Z"});
        let v2 = json!({"id": "incident--a", "modified": "2026-01-02T00:00:00.000Z"});
        let other = json!({"id": "incident--b", "modified": "2026-01-01T00:00:00.000Z"});
        let r = Uuid::now_v7();
        store
            .add(
                "c",
                std::slice::from_ref(&v1),
                Some((r, "incident--a")),
                Some(("cursor", "1")),
            )
            .unwrap();
        store
            .add("c", &[v1.clone(), v2.clone(), other], None, None)
            .unwrap();
        let versions = store.versions("incident--a").unwrap();
        assert_eq!(versions.len(), 2, "the repeated v1 is stored once");
        assert!(versions[0].date_added < versions[1].date_added);
        assert_eq!(store.latest_of_record(r).unwrap(), Some(v2));
        assert_eq!(store.meta("cursor").unwrap().as_deref(), Some("1"));
        let (page, more) = store.scan("c", 0, 2, &|_| true).unwrap();
        assert_eq!((page.len(), more), (2, true));
        let (rest, more) = store.scan("c", page[1].seq, 2, &|_| true).unwrap();
        assert_eq!((rest.len(), more), (1, false));
        assert!(store.scan("other", 0, 10, &|_| true).unwrap().0.is_empty());
        drop(store);
        // Durable: reopened, everything is there.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.versions("incident--b").unwrap().len(), 1);
    }
}
