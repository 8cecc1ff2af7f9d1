//! Following the network: each feed (incidents, evaluation results) is
//! watched from its durable cursor; every record is verified and opened
//! with the member's keys (a record that does not verify is logged and
//! skipped, never served), mapped to STIX and stored with the cursor in
//! one transaction, so a restart neither misses nor repeats a record.

use std::sync::Arc;
use std::time::Duration;

use cairn_record::pb;
use serde_json::Value;
use uuid::Uuid;

use crate::{Gateway, TaxiiError};

/// One watched feed.
#[derive(Clone, Copy, Debug)]
pub enum Feed {
    /// cairn-intake's WatchIncidents.
    Incidents,
    /// cairn-evals' WatchResults.
    Results,
}

impl Feed {
    fn cursor_key(self) -> &'static str {
        match self {
            Feed::Incidents => "cursor:incidents",
            Feed::Results => "cursor:results",
        }
    }
}

/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Follows `feed` for as long as the task runs.
pub async fn run(gw: Arc<Gateway>, feed: Feed) {
    let mut backoff = Duration::from_millis(250);
    loop {
        match watch(&gw, feed).await {
            Ok(()) => backoff = Duration::from_millis(250),
            Err(e) => {
                tracing::warn!(error = %e, ?feed, "following the network failed; reconnecting");
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

async fn watch(gw: &Gateway, feed: Feed) -> Result<(), TaxiiError> {
    let cursor = gw.store.meta(feed.cursor_key())?.unwrap_or_default();
    // Superseded and retracted records too: they are earlier versions.
    let filter = pb::RecordFilter {
        include_inactive: true,
        ..pb::RecordFilter::default()
    };
    let mut stream = match feed {
        Feed::Incidents => gw.client.watch_incidents(filter, cursor).await?,
        Feed::Results => gw.client.watch_results(filter, cursor).await?,
    };
    while let Some(event) = stream
        .message()
        .await
        .map_err(cairn_client::ClientError::from)?
    {
        take(gw, feed, &event)?;
    }
    Ok(())
}

/// Stores what one event's record becomes, with the event's cursor.
fn take(gw: &Gateway, feed: Feed, event: &pb::WatchEvent) -> Result<(), TaxiiError> {
    let cursor = Some((feed.cursor_key(), event.cursor.as_str()));
    let Some(stored) = &event.record else {
        return gw.store.add("", &[], None, cursor);
    };
    let opened = match gw.client.open(stored) {
        Ok(o) => o,
        Err(e) => {
            // Erased bodies and records that do not verify are not served.
            tracing::warn!(error = %e, "a watched record was not opened; it is not served");
            return gw.store.add("", &[], None, cursor);
        }
    };
    let h = &opened.header;
    let lookup = |r: Uuid| gw.store.latest_of_record(r).ok().flatten();
    let mut exported = cairn_stix::objects_of(&opened, &lookup)?;
    let (Some(primary), Some(collection)) = (
        exported.primary.clone(),
        gw.collections.for_record(h.kind, h.label),
    ) else {
        tracing::debug!(record = %h.record_id, why = exported.skipped, "no STIX form");
        return gw.store.add("", &[], None, cursor);
    };
    // A record this gateway submitted keeps the id the tool gave it.
    let primary = match gw.store.object_id_of(h.record_id)? {
        Some(own) if own != primary => {
            for obj in &mut exported.objects {
                rename(obj, &primary, &own);
            }
            own
        }
        _ => primary,
    };
    let collection = collection.id.clone();
    gw.store.add(
        &collection,
        &exported.objects,
        Some((h.record_id, &primary)),
        cursor,
    )
}

/// Replaces the id `from` by `to` wherever it occurs in `v`.
fn rename(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s == from => *s = to.to_owned(),
        Value::Array(items) => items.iter_mut().for_each(|i| rename(i, from, to)),
        Value::Object(map) => map.values_mut().for_each(|i| rename(i, from, to)),
        _ => {}
    }
}
