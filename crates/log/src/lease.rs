//! One sequencer at a time when audit replicas share a database: a lease
//! in the store, and a fencing epoch that every log commit checks.
//!
//! The lease (holder, expiry, epoch) is taken by compare-and-swap when it
//! is free or expired, and renewed by its holder every third of its
//! lifetime. Taking it increments the *epoch*, a separate key that only
//! changes hands on takeover; the log's every commit expects the epoch it
//! was opened under ([`Lease::fence`] → [`crate::LogConfig::fence`]). So a
//! deposed sequencer — paused past its expiry, partitioned from the
//! database, or simply slow — can never commit again once another has
//! taken over: safety rests on the epoch, not on clocks. The lease's
//! wall-clock expiry only decides *when* a standby takes over, so its
//! lifetime must exceed the clock skew between replicas.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_store::{Store, StoreError, WriteBatch};
use tokio::sync::watch;

use crate::LogError;

/// The namespace of the lease and the epoch.
pub const NS_LEASE: &str = "log_lease";
const LEASE_KEY: &[u8] = b"sequencer";
const EPOCH_KEY: &[u8] = b"epoch";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The stored lease: epoch, expiry (Unix ms), holder.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Held {
    epoch: u64,
    expires_ms: u64,
    holder: String,
}

impl Held {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16 + self.holder.len());
        v.extend_from_slice(&self.epoch.to_be_bytes());
        v.extend_from_slice(&self.expires_ms.to_be_bytes());
        v.extend_from_slice(self.holder.as_bytes());
        v
    }

    fn decode(b: &[u8]) -> Result<Self, LogError> {
        let bad = || LogError::corrupt("the sequencer lease is malformed");
        let epoch = b.get(..8).ok_or_else(bad)?;
        let expires = b.get(8..16).ok_or_else(bad)?;
        Ok(Self {
            epoch: u64::from_be_bytes(epoch.try_into().map_err(|_| bad())?),
            expires_ms: u64::from_be_bytes(expires.try_into().map_err(|_| bad())?),
            holder: String::from_utf8_lossy(&b[16..]).into_owned(),
        })
    }
}

/// A held sequencer lease. Renewed in the background until dropped or
/// lost; [`Lease::lost`] says when it is lost.
pub struct Lease {
    epoch: u64,
    holder: String,
    store: Arc<dyn Store>,
    current: Arc<std::sync::Mutex<Vec<u8>>>,
    lost: watch::Receiver<bool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("epoch", &self.epoch)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

impl Lease {
    /// Waits until the lease is free or expired, takes it for `holder`
    /// with a new epoch, and keeps renewing it. While another holds it,
    /// checks again every quarter of `ttl`, and at least every second.
    pub async fn acquire(
        store: Arc<dyn Store>,
        holder: &str,
        ttl: Duration,
    ) -> Result<Self, LogError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(100);
        let mut waiting_on = None;
        loop {
            let current = store.get(NS_LEASE, LEASE_KEY).await?;
            let held = current.as_deref().map(Held::decode).transpose()?;
            let now = now_ms();
            let free = match &held {
                None => true,
                Some(h) => h.expires_ms <= now || h.holder == holder,
            };
            if free {
                let epoch_now = store.get(NS_LEASE, EPOCH_KEY).await?;
                let epoch = epoch_now
                    .as_deref()
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0)
                    .max(held.as_ref().map_or(0, |h| h.epoch))
                    + 1;
                let mine = Held {
                    epoch,
                    expires_ms: now + ttl_ms,
                    holder: holder.to_owned(),
                };
                let mut b = WriteBatch::new();
                b.expect(NS_LEASE, LEASE_KEY.to_vec(), current)
                    .expect(NS_LEASE, EPOCH_KEY.to_vec(), epoch_now)
                    .put(NS_LEASE, LEASE_KEY.to_vec(), mine.encode())
                    .put(NS_LEASE, EPOCH_KEY.to_vec(), epoch.to_be_bytes().to_vec());
                match store.commit(b).await {
                    Ok(()) => {
                        tracing::info!(epoch, holder, "took the sequencer lease");
                        let (lost_tx, lost) = watch::channel(false);
                        let current = Arc::new(std::sync::Mutex::new(mine.encode()));
                        let renewer = tokio::spawn(renew(
                            store.clone(),
                            mine,
                            Duration::from_millis(ttl_ms),
                            lost_tx,
                            current.clone(),
                        ));
                        return Ok(Self {
                            epoch,
                            holder: holder.to_owned(),
                            store,
                            current,
                            lost,
                            renewer,
                        });
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            if let Some(h) = &held
                && waiting_on.as_ref() != Some(&h.holder)
            {
                tracing::info!(holder = %h.holder, epoch = h.epoch, "standby: another replica holds the sequencer lease");
                waiting_on = Some(h.holder.clone());
            }
            let remaining = held.map_or(0, |h| h.expires_ms.saturating_sub(now));
            // At least once a second, so that a released lease is seen
            // at once whatever its lifetime.
            let pause = remaining.clamp(10, (ttl_ms / 4).min(1000));
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    /// The epoch this lease was taken under.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The precondition every log commit must carry: the epoch is still
    /// ours (namespace, key, value).
    pub fn fence(&self) -> (&'static str, Vec<u8>, Vec<u8>) {
        (
            NS_LEASE,
            EPOCH_KEY.to_vec(),
            self.epoch.to_be_bytes().to_vec(),
        )
    }

    /// Gives the lease up (on a graceful stop, after the log is closed): a
    /// standby takes over at once instead of waiting for it to expire. The
    /// epoch stays, so nothing of ours can commit after the next holder's
    /// takeover.
    pub async fn release(self) -> Result<(), LogError> {
        self.renewer.abort();
        let current = self
            .current
            .lock()
            .map(|c| c.clone())
            .map_err(|_| LogError::Stopped)?;
        let mut released = Held::decode(&current)?;
        released.expires_ms = 0;
        let mut b = WriteBatch::new();
        b.expect(NS_LEASE, LEASE_KEY.to_vec(), Some(current)).put(
            NS_LEASE,
            LEASE_KEY.to_vec(),
            released.encode(),
        );
        match self.store.commit(b).await {
            // Taken over meanwhile: nothing to give up.
            Ok(()) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Resolves once the lease is lost (taken over, or not renewable before
    /// it expired).
    pub async fn lost(&self) {
        let mut rx = self.lost.clone();
        let _ = rx.wait_for(|lost| *lost).await;
    }
}

/// Renews every third of `ttl`; says `lost` when another holder took over
/// or the lease expired without a successful renewal.
async fn renew(
    store: Arc<dyn Store>,
    mut mine: Held,
    ttl: Duration,
    lost: watch::Sender<bool>,
    current: Arc<std::sync::Mutex<Vec<u8>>>,
) {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    loop {
        tokio::time::sleep(ttl / 3).await;
        let next = Held {
            expires_ms: now_ms() + ttl_ms,
            ..mine.clone()
        };
        let mut b = WriteBatch::new();
        b.expect(NS_LEASE, LEASE_KEY.to_vec(), Some(mine.encode()))
            .put(NS_LEASE, LEASE_KEY.to_vec(), next.encode());
        match store.commit(b).await {
            Ok(()) => {
                if let Ok(mut c) = current.lock() {
                    *c = next.encode();
                }
                mine = next;
            }
            Err(StoreError::Conflict { .. }) => {
                tracing::error!(epoch = mine.epoch, "the sequencer lease was taken over");
                let _ = lost.send(true);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing the sequencer lease failed");
                if now_ms() >= mine.expires_ms {
                    tracing::error!(epoch = mine.epoch, "the sequencer lease expired unrenewed");
                    let _ = lost.send(true);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_store::{EmbeddedStore, EmbeddedStoreConfig};

    #[test]
    fn the_lease_round_trips() {
        let h = Held {
            epoch: 7,
            expires_ms: 1_700_000_000_000,
            holder: "audit-0".into(),
        };
        assert_eq!(Held::decode(&h.encode()).unwrap(), h);
        assert!(Held::decode(b"short").is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_standby_takes_over_after_expiry_with_a_new_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(EmbeddedStoreConfig::new(dir.path())).unwrap());
        // A lifetime far beyond the test: whether "a" keeps it never
        // depends on how fast this machine renews.
        let ttl = Duration::from_secs(600);
        let first = Lease::acquire(store.clone(), "a", ttl).await.unwrap();
        assert_eq!(first.epoch(), 1);
        // While "a" holds it, "b" waits (it looks once a second).
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { Lease::acquire(store, "b", ttl).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!waiting.is_finished(), "b took a lease that a holds");
        // "a" dies and its lease runs out: what the store holds after its
        // lifetime has passed, written directly rather than waited for.
        drop(first);
        let held = Held::decode(&store.get(NS_LEASE, LEASE_KEY).await.unwrap().unwrap()).unwrap();
        let mut expire = WriteBatch::new();
        expire.put(
            NS_LEASE,
            LEASE_KEY.to_vec(),
            Held {
                expires_ms: now_ms() - 1,
                ..held
            }
            .encode(),
        );
        store.commit(expire).await.unwrap();
        let second = tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("b never took over")
            .unwrap();
        assert_eq!(second.epoch(), 2);
        // "a"'s fence no longer holds.
        let mut b = WriteBatch::new();
        b.expect(
            NS_LEASE,
            EPOCH_KEY.to_vec(),
            Some(1u64.to_be_bytes().to_vec()),
        );
        assert!(matches!(
            store.commit(b).await,
            Err(StoreError::Conflict { .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deposed_sequencer_cannot_commit_and_its_successor_can() {
        use cairn_tlog::note::{ALG_ED25519, NoteSigner};
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(EmbeddedStoreConfig::new(dir.path())).unwrap());
        let signer =
            Arc::new(NoteSigner::from_seed("test.example/log", ALG_ED25519, &[5; 32]).unwrap());
        let ttl = Duration::from_millis(200);
        let a = Lease::acquire(store.clone(), "a", ttl).await.unwrap();
        let mut config = crate::LogConfig::new(signer.clone());
        config.fence = Some(a.fence());
        let old = crate::Log::open(store.clone(), config).await.unwrap();
        old.append(b"by a".to_vec()).await.unwrap();
        // "a" stalls past its expiry (its renewer stopped); "b" takes over
        // and opens the log where "a" left it.
        drop(a);
        let b = Lease::acquire(store.clone(), "b", ttl).await.unwrap();
        let mut config = crate::LogConfig::new(signer);
        config.fence = Some(b.fence());
        let new = crate::Log::open(store.clone(), config).await.unwrap();
        // "a" wakes up and tries to append: fenced, nothing written.
        assert!(matches!(
            old.append(b"late, by a".to_vec()).await,
            Err(LogError::Fenced)
        ));
        let r = new.append(b"by b".to_vec()).await.unwrap();
        assert_eq!(r.leaf_index, 1);
        assert_eq!(new.snapshot().size, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_released_lease_is_taken_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(EmbeddedStoreConfig::new(dir.path())).unwrap());
        // A lifetime far longer than the test: only the release lets b in.
        let ttl = Duration::from_secs(600);
        let a = Lease::acquire(store.clone(), "a", ttl).await.unwrap();
        a.release().await.unwrap();
        let b = tokio::time::timeout(
            Duration::from_secs(10),
            Lease::acquire(store.clone(), "b", ttl),
        )
        .await
        .expect("b waited for a released lease")
        .unwrap();
        assert_eq!(b.epoch(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_holder_that_was_taken_over_learns_it() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(EmbeddedStoreConfig::new(dir.path())).unwrap());
        let ttl = Duration::from_millis(300);
        let a = Lease::acquire(store.clone(), "a", ttl).await.unwrap();
        // Someone forces the lease (as a standby would after a long pause
        // of a's renewer).
        let forced = Held {
            epoch: 2,
            expires_ms: now_ms() + 60_000,
            holder: "b".into(),
        };
        let mut b = WriteBatch::new();
        b.put(NS_LEASE, LEASE_KEY.to_vec(), forced.encode()).put(
            NS_LEASE,
            EPOCH_KEY.to_vec(),
            2u64.to_be_bytes().to_vec(),
        );
        store.commit(b).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), a.lost())
            .await
            .expect("a never learned it lost the lease");
    }
}
