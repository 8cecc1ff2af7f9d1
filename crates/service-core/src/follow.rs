//! Following the directory from the log. A record service founded by a
//! genesis watches the audit service's accepted `directory_change`
//! records (`Governance/WatchDirectory`), checks each one itself from the
//! genesis (`cairn_record::governance::Governed`: signatures, governance
//! role, quorum; the leaf names the record), keeps it in its own store, and
//! puts each new version in force in its `DirectoryHandle` at once: new
//! handshakes and requests see it, and the TLS layer closes open
//! connections it no longer admits. A restart replays the kept records
//! before serving, so a removed member is not readmitted while the audit
//! service is out of reach.
//!
//! It must not accept a record that does not check: a change the audit
//! service sends that does not replay is logged and not applied.

use std::sync::Arc;
use std::time::Duration;

use cairn_identity::DirectoryHandle;
use cairn_proto::audit::v1 as audit;
use cairn_proto::audit::v1::governance_client::GovernanceClient;
use cairn_record::governance::{Governed, check_entry_leaf};
use cairn_store::{Store, WriteBatch};
use prost::Message as _;
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::error::ServiceError;

/// The namespace of the change records this service has followed.
pub const NS_FOLLOWED: &str = "directory_followed";
/// The longest wait between attempts to reach the audit service.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A running follower; stops when dropped.
pub struct Follower {
    version: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Follower {
    /// The directory version in force, updated as changes take effect.
    pub fn version(&self) -> watch::Receiver<u64> {
        self.version.clone()
    }
}

struct Following {
    governed: Governed,
    store: Arc<dyn Store>,
    directory: DirectoryHandle,
    gauge: prometheus::IntGauge,
    version: watch::Sender<u64>,
}

fn corrupt(ordinal: usize, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Corrupt {
        what: "followed directory change",
        detail: format!("change {ordinal}: {e}"),
    }
}

impl Following {
    /// Checks `entry` against the history, without applying it.
    fn check(
        &self,
        entry: &audit::DirectoryChangeEntry,
    ) -> Result<cairn_record::governance::Checked, String> {
        let record = entry.record.as_ref().ok_or("no record")?;
        check_entry_leaf(&entry.leaf, record).map_err(|e| e.to_string())?;
        self.governed.check(record).map_err(|e| e.to_string())
    }

    /// Applies a checked entry; whether a new version took effect.
    fn apply(&mut self, checked: cairn_record::governance::Checked, leaf_index: u64) -> bool {
        let before = self.governed.current().version;
        self.governed.apply(checked, leaf_index);
        self.governed.current().version != before
    }

    fn put_in_force(&self) -> Result<(), ServiceError> {
        let now = self.governed.current();
        self.directory
            .replace((*now.directory).clone())
            .map_err(|e| corrupt(self.governed.len(), e))?;
        self.gauge
            .set(i64::try_from(now.version).unwrap_or(i64::MAX));
        self.version.send_replace(now.version);
        tracing::info!(
            version = now.version,
            effective_at = now.effective_at,
            "directory version in force"
        );
        Ok(())
    }

    async fn keep(&self, entry: &audit::DirectoryChangeEntry) -> Result<(), ServiceError> {
        let ordinal = self.governed.len() as u64;
        let mut batch = WriteBatch::new();
        batch.put(NS_FOLLOWED, ordinal.to_be_bytes(), entry.encode_to_vec());
        self.store.commit(batch).await?;
        Ok(())
    }

    /// Follows one watch stream until it ends or fails.
    async fn follow(&mut self, channel: &Channel) -> Result<(), String> {
        let mut stream = GovernanceClient::new(channel.clone())
            .watch_directory(audit::WatchDirectoryRequest {
                from: self.governed.len() as u64,
            })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        while let Some(entry) = stream.message().await.map_err(|e| e.to_string())? {
            let checked = match self.check(&entry) {
                Ok(checked) => checked,
                Err(problem) => {
                    tracing::error!(
                        ordinal = self.governed.len(),
                        %problem,
                        "the audit service sent a directory change that does not check; not applied"
                    );
                    // An error, so that retries back off.
                    return Err(problem);
                }
            };
            // Kept before it is in force: a restart applies it too.
            self.keep(&entry).await.map_err(|e| e.to_string())?;
            if self.apply(checked, entry.leaf_index) {
                self.put_in_force().map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

/// Starts following when `genesis` (the directory file's text) is a
/// genesis: replays the changes kept in `store`, puts the version they
/// reach in force, then watches the audit service on `channel`.
pub async fn start(
    genesis: &str,
    store: Arc<dyn Store>,
    directory: DirectoryHandle,
    channel: Channel,
    gauge: prometheus::IntGauge,
) -> Result<Option<Follower>, ServiceError> {
    if !cairn_identity::genesis::is_genesis(genesis) {
        return Ok(None);
    }
    let governed = Governed::from_genesis(genesis, "genesis").map_err(|e| corrupt(0, e))?;
    let (version, rx) = watch::channel(0);
    let mut f = Following {
        governed,
        store,
        directory,
        gauge,
        version,
    };
    let rows = f.store.scan(NS_FOLLOWED, &[], None, usize::MAX).await?;
    for (i, (_, bytes)) in rows.iter().enumerate() {
        let entry =
            audit::DirectoryChangeEntry::decode(bytes.as_slice()).map_err(|e| corrupt(i, e))?;
        let checked = f.check(&entry).map_err(|e| corrupt(i, e))?;
        f.apply(checked, entry.leaf_index);
    }
    f.put_in_force()?;
    let task = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match f.follow(&channel).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(error) => tracing::debug!(%error, "directory watch interrupted"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    });
    Ok(Some(Follower { version: rx, task }))
}
