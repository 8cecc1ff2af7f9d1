//! Witness mode (C2SP tlog-witness semantics): for each log it follows, the
//! witness keeps the last checkpoint it cosigned and cosigns a new one only
//! if it is consistent with it.
//!
//! Rules, in order: the log must be one this witness follows (by origin);
//! the checkpoint must carry a valid signature of that log; `old_size` must
//! be the size the witness holds (0 before the first checkpoint); a
//! checkpoint of the held size must have the held root; a larger one needs
//! a valid RFC 9162 consistency proof from the held checkpoint — except
//! from size 0, where the proof must be empty. The check and the store of
//! the new state are one atomic conditional commit, so two concurrent
//! requests cannot both advance from the same state.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_store::{Store, StoreError, WriteBatch};
use cairn_tlog::checkpoint;
use cairn_tlog::cosignature;
use cairn_tlog::note::{NoteSigner, VerifierKey};
use cairn_tlog::proof;
use cairn_tlog::{Hash, TlogError};

const NS_WITNESS: &str = "witness_state";

/// Why a checkpoint was not cosigned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The origin is not a log this witness follows.
    #[error("this witness does not follow the log {0:?}")]
    UnknownLog(String),
    /// The note is malformed or the log's signature does not verify.
    #[error("checkpoint refused: {0}")]
    BadCheckpoint(TlogError),
    /// `old_size` is not the size the witness holds.
    #[error("old size {given} does not match the size this witness holds for the log ({held})")]
    OldSizeMismatch {
        /// The size in the request.
        given: u64,
        /// The size the witness holds.
        held: u64,
    },
    /// `old_size` is larger than the checkpoint's size.
    #[error("old size {old} is larger than the checkpoint's size {size}")]
    OldSizeAboveCheckpoint {
        /// The size in the request.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// A checkpoint of size 0 whose root is not the empty tree's.
    #[error("a checkpoint of size 0 must have the empty tree's root (SHA-256 of nothing)")]
    NotEmptyTree,
    /// The checkpoint contradicts the one the witness cosigned.
    #[error("fork detected: {0}")]
    Fork(String),
    /// The consistency proof is malformed or does not verify.
    #[error("consistency proof refused: {0}")]
    BadProof(TlogError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Held {
    size: u64,
    root: Hash,
}

impl Held {
    fn encode(&self) -> Vec<u8> {
        let mut out = self.size.to_be_bytes().to_vec();
        out.extend_from_slice(&self.root);
        out
    }

    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != 40 {
            return None;
        }
        let mut s = [0u8; 8];
        s.copy_from_slice(&b[..8]);
        let mut root = [0u8; 32];
        root.copy_from_slice(&b[8..]);
        Some(Self {
            size: u64::from_be_bytes(s),
            root,
        })
    }
}

/// A witness over a store.
pub struct Witness {
    store: Arc<dyn Store>,
    cosigner: Arc<NoteSigner>,
    logs: HashMap<String, VerifierKey>,
    locks: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("cosigner", &self.cosigner.verifier().to_string())
            .field("logs", &self.logs.keys())
            .finish()
    }
}

impl Witness {
    /// A witness cosigning with `cosigner` (a type 0x04 key) the logs whose
    /// verifier keys are `logs`.
    pub fn new(store: Arc<dyn Store>, cosigner: Arc<NoteSigner>, logs: Vec<VerifierKey>) -> Self {
        Self {
            store,
            cosigner,
            logs: logs.into_iter().map(|k| (k.name().to_owned(), k)).collect(),
            locks: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The cosigner's verifier key.
    pub fn verifier(&self) -> &VerifierKey {
        self.cosigner.verifier()
    }

    /// The size and root this witness holds for `origin`.
    pub async fn held(&self, origin: &str) -> Result<Option<(u64, Hash)>, WitnessError> {
        Ok(self
            .store
            .get(NS_WITNESS, origin.as_bytes())
            .await?
            .and_then(|b| Held::decode(&b))
            .map(|h| (h.size, h.root)))
    }

    /// Checks and cosigns a checkpoint; returns the cosignature line
    /// (`— <name> <base64>`).
    pub async fn add_checkpoint(
        &self,
        old_size: u64,
        consistency_proof: &[Vec<u8>],
        note_text: &str,
    ) -> Result<String, WitnessError> {
        let note = cairn_tlog::note::parse(note_text).map_err(WitnessError::BadCheckpoint)?;
        let body =
            checkpoint::Checkpoint::parse_body(&note.text).map_err(WitnessError::BadCheckpoint)?;
        let log_key = self
            .logs
            .get(&body.origin)
            .ok_or_else(|| WitnessError::UnknownLog(body.origin.clone()))?;
        let opened = checkpoint::open(note_text, log_key).map_err(WitnessError::BadCheckpoint)?;
        let cp = opened.checkpoint;
        if old_size > cp.size {
            return Err(WitnessError::OldSizeAboveCheckpoint {
                old: old_size,
                size: cp.size,
            });
        }
        if cp.size == 0 && cp.root != cairn_tlog::hash::empty_root() {
            return Err(WitnessError::NotEmptyTree);
        }

        let lock = {
            let mut locks = self.locks.lock().await;
            locks.entry(cp.origin.clone()).or_default().clone()
        };
        let _guard = lock.lock().await;

        let stored = self.store.get(NS_WITNESS, cp.origin.as_bytes()).await?;
        let held = stored.as_deref().and_then(Held::decode).unwrap_or(Held {
            size: 0,
            root: [0; 32],
        });
        if old_size != held.size {
            return Err(WitnessError::OldSizeMismatch {
                given: old_size,
                held: held.size,
            });
        }
        check_extends(&held, &cp, consistency_proof)?;
        self.hold(&cp, stored, old_size).await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
        let sig = cosignature::cosign(&self.cosigner, &note.text, now)
            .map_err(WitnessError::BadCheckpoint)?;
        Ok(sig.to_line())
    }

    /// Moves what the witness holds for `cp`'s log from `stored` to `cp`,
    /// unless another call moved it first.
    async fn hold(
        &self,
        cp: &checkpoint::Checkpoint,
        stored: Option<Vec<u8>>,
        old_size: u64,
    ) -> Result<(), WitnessError> {
        let mut batch = WriteBatch::new();
        batch
            .expect(NS_WITNESS, cp.origin.as_bytes().to_vec(), stored)
            .put(
                NS_WITNESS,
                cp.origin.as_bytes().to_vec(),
                Held {
                    size: cp.size,
                    root: cp.root,
                }
                .encode(),
            );
        match self.store.commit(batch).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(WitnessError::OldSizeMismatch {
                given: old_size,
                held: self.held(&cp.origin).await?.map(|h| h.0).unwrap_or(0),
            }),
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether `cp` extends what the witness holds: never smaller, the same
/// root at the same size (with an empty proof), and consistent by
/// `proof` when larger. The first checkpoint of a log needs no proof.
fn check_extends(
    held: &Held,
    cp: &checkpoint::Checkpoint,
    proof: &[Vec<u8>],
) -> Result<(), WitnessError> {
    if cp.size < held.size {
        return Err(WitnessError::Fork(format!(
            "checkpoint size {} is smaller than the cosigned size {}",
            cp.size, held.size
        )));
    }
    let empty_proof = |why: &str| {
        if proof.is_empty() {
            Ok(())
        } else {
            Err(WitnessError::BadProof(TlogError::Proof(why.into())))
        }
    };
    if held.size == 0 {
        return empty_proof("the first checkpoint of a log needs an empty proof");
    }
    if cp.size == held.size {
        if cp.root != held.root {
            return Err(WitnessError::Fork(format!(
                "a checkpoint of size {} with another root than the one cosigned",
                cp.size
            )));
        }
        return empty_proof("sizes are equal but the proof is not empty");
    }
    proof::verify_consistency(held.size, cp.size, proof, &held.root, &cp.root).map_err(|e| {
        WitnessError::Fork(format!(
            "size {} is not consistent with the cosigned size {} ({e})",
            cp.size, held.size
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_store::{EmbeddedStore, EmbeddedStoreConfig};
    use cairn_tlog::checkpoint::Checkpoint;
    use cairn_tlog::hash::{leaf_hash, naive_root};
    use cairn_tlog::note::{ALG_COSIGNATURE_V1, ALG_ED25519};

    struct Fixture {
        _dir: tempfile::TempDir,
        witness: Arc<Witness>,
        log: NoteSigner,
        leaves: Vec<Hash>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(EmbeddedStoreConfig::new(dir.path())).unwrap());
        let log = NoteSigner::from_seed("log.example", ALG_ED25519, &[1; 32]).unwrap();
        let cosigner = Arc::new(
            NoteSigner::from_seed("witness.example/w", ALG_COSIGNATURE_V1, &[2; 32]).unwrap(),
        );
        let witness = Arc::new(Witness::new(store, cosigner, vec![log.verifier().clone()]));
        let leaves = (0..100u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        Fixture {
            _dir: dir,
            witness,
            log,
            leaves,
        }
    }

    impl Fixture {
        fn checkpoint(&self, size: usize) -> String {
            self.checkpoint_with_root(size, naive_root(&self.leaves[..size]))
        }

        fn checkpoint_with_root(&self, size: usize, root: Hash) -> String {
            Checkpoint {
                origin: "log.example".into(),
                size: size as u64,
                root,
                extensions: vec![],
            }
            .sign(&self.log)
            .unwrap()
        }

        fn proof(&self, old: usize, new: usize) -> Vec<Vec<u8>> {
            let plan = proof::consistency_plan(old as u64, new as u64).unwrap();
            plan.assemble(|n| {
                let s = n.first_leaf() as usize;
                Ok::<_, ()>(naive_root(&self.leaves[s..s + (1 << n.level)]))
            })
            .unwrap()
            .into_iter()
            .map(|h| h.to_vec())
            .collect()
        }
    }

    #[tokio::test]
    async fn cosigns_a_consistent_history() {
        let f = fixture();
        let line = f
            .witness
            .add_checkpoint(0, &[], &f.checkpoint(10))
            .await
            .unwrap();
        let mut note = cairn_tlog::note::parse(&f.checkpoint(10)).unwrap();
        note.add_signature(cairn_tlog::note::NoteSignature::parse_line(&line).unwrap());
        cosignature::verify(&note, f.witness.verifier()).unwrap();
        f.witness
            .add_checkpoint(10, &f.proof(10, 50), &f.checkpoint(50))
            .await
            .unwrap();
        // The same checkpoint again is fine (equal size, equal root).
        f.witness
            .add_checkpoint(50, &[], &f.checkpoint(50))
            .await
            .unwrap();
        assert_eq!(f.witness.held("log.example").await.unwrap().unwrap().0, 50);
    }

    #[tokio::test]
    async fn refuses_forks_stale_sizes_bad_proofs_and_strangers() {
        let f = fixture();
        f.witness
            .add_checkpoint(0, &[], &f.checkpoint(20))
            .await
            .unwrap();
        // Two checkpoints of one size with different roots.
        let forked = f.checkpoint_with_root(20, [7; 32]);
        assert!(matches!(
            f.witness.add_checkpoint(20, &[], &forked).await,
            Err(WitnessError::Fork(_))
        ));
        // A larger checkpoint inconsistent with the cosigned one: a tree in
        // which leaf 3 differs, with its own (valid) consistency proof.
        let mut other = f.leaves.clone();
        other[3] = leaf_hash(b"rewritten history");
        let bad_cp = f.checkpoint_with_root(60, naive_root(&other[..60]));
        let bad_proof: Vec<Vec<u8>> = proof::consistency_plan(20, 60)
            .unwrap()
            .assemble(|n| {
                let s = n.first_leaf() as usize;
                Ok::<_, ()>(naive_root(&other[s..s + (1 << n.level)]))
            })
            .unwrap()
            .into_iter()
            .map(|h| h.to_vec())
            .collect();
        assert!(matches!(
            f.witness.add_checkpoint(20, &bad_proof, &bad_cp).await,
            Err(WitnessError::Fork(_))
        ));
        // Stale old size, malformed proof, unknown log, bad signature.
        assert!(matches!(
            f.witness
                .add_checkpoint(10, &f.proof(10, 30), &f.checkpoint(30))
                .await,
            Err(WitnessError::OldSizeMismatch {
                given: 10,
                held: 20
            })
        ));
        assert!(
            f.witness
                .add_checkpoint(20, &[vec![1, 2, 3]], &f.checkpoint(30))
                .await
                .is_err()
        );
        let stranger = NoteSigner::from_seed("other.example", ALG_ED25519, &[3; 32]).unwrap();
        let cp = Checkpoint {
            origin: "other.example".into(),
            size: 1,
            root: [0; 32],
            extensions: vec![],
        }
        .sign(&stranger)
        .unwrap();
        assert!(matches!(
            f.witness.add_checkpoint(0, &[], &cp).await,
            Err(WitnessError::UnknownLog(_))
        ));
        let impostor = NoteSigner::from_seed("log.example", ALG_ED25519, &[4; 32]).unwrap();
        let cp = Checkpoint {
            origin: "log.example".into(),
            size: 30,
            root: naive_root(&f.leaves[..30]),
            extensions: vec![],
        }
        .sign(&impostor)
        .unwrap();
        assert!(matches!(
            f.witness.add_checkpoint(20, &f.proof(20, 30), &cp).await,
            Err(WitnessError::BadCheckpoint(_))
        ));
        // Nothing of the refused requests was stored.
        assert_eq!(
            f.witness.held("log.example").await.unwrap(),
            Some((20, naive_root(&f.leaves[..20])))
        );
        // An old size above the checkpoint's size, and an empty tree with
        // another root (c2sp.org/tlog-witness: 400 and 422).
        assert!(matches!(
            f.witness.add_checkpoint(20, &[], &f.checkpoint(10)).await,
            Err(WitnessError::OldSizeAboveCheckpoint { old: 20, size: 10 })
        ));
        assert!(matches!(
            f.witness
                .add_checkpoint(0, &[], &f.checkpoint_with_root(0, [1; 32]))
                .await,
            Err(WitnessError::NotEmptyTree)
        ));
        // The first checkpoint needs an empty proof.
        let g = fixture();
        assert!(matches!(
            g.witness
                .add_checkpoint(0, &[vec![0; 32]], &g.checkpoint(5))
                .await,
            Err(WitnessError::BadProof(_))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_advances_from_one_state_cosign_one() {
        let f = fixture();
        f.witness
            .add_checkpoint(0, &[], &f.checkpoint(10))
            .await
            .unwrap();
        // Two different successors of size 10, raced: only one can win, the
        // other then finds the held size moved.
        let (a, b) = (f.checkpoint(40), f.checkpoint(70));
        let (pa, pb) = (f.proof(10, 40), f.proof(10, 70));
        let w1 = f.witness.clone();
        let w2 = f.witness.clone();
        let t1 = tokio::spawn(async move { w1.add_checkpoint(10, &pa, &a).await.is_ok() });
        let t2 = tokio::spawn(async move { w2.add_checkpoint(10, &pb, &b).await.is_ok() });
        let ok = [t1.await.unwrap(), t2.await.unwrap()];
        assert_eq!(ok.iter().filter(|x| **x).count(), 1);
    }
}
