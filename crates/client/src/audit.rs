//! Verifying the audit log without trusting its operator (DESIGN.md
//! section 4): a checkpoint's log signature and witness quorum, consistency
//! with a checkpoint trusted earlier, inclusion of receipts, and the full
//! recomputation of the tree from its entries. Used by `cairn audit
//! verify`, and meant for any other program that follows a log (a
//! monitor, a member's gateway).
//!
//! A check that runs and says no is [`ClientError::LogFailed`] with a
//! typed [`LogFailure`]; anything that keeps a check from running (no
//! server to ask, the server refused) is another [`ClientError`].

use cairn_proto::audit::v1 as pb;
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_proto::common::v1 as common;
use cairn_record::leaf::check_leaf;
use cairn_tlog::checkpoint::{self, Checkpoint};
use cairn_tlog::hash::{Hash, leaf_hash};
use cairn_tlog::note::VerifierKey;
use cairn_tlog::{TlogError, proof};
use tonic::transport::Channel;

use crate::error::ClientError;

mod records;
mod tiles;
pub use records::{Flagged, RecordsChecked};
pub use tiles::{TileSource, TilesVerified};

/// How a log failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogFailure {
    /// The checkpoint's signature or witness quorum does not verify.
    #[error("checkpoint: {0}")]
    Checkpoint(TlogError),
    /// The trusted checkpoint does not open with the log's key.
    #[error("trusted checkpoint: {0}")]
    Trusted(TlogError),
    /// The log is smaller than a size it showed before.
    #[error("the log rewound: trusted size {trusted} is larger than the new size {size}")]
    Rewound {
        /// The trusted size.
        trusted: u64,
        /// The new checkpoint's size.
        size: u64,
    },
    /// Two checkpoints of one size with different roots.
    #[error("fork: two checkpoints of size {size} with different roots")]
    Fork {
        /// The size.
        size: u64,
    },
    /// The consistency proof from the trusted checkpoint does not verify.
    #[error("not consistent with the trusted checkpoint of size {trusted}: {detail}")]
    NotExtending {
        /// The trusted size.
        trusted: u64,
        /// What the verifier said.
        detail: TlogError,
    },
    /// A consistency proof from an older checkpoint does not verify.
    #[error("not consistent with the checkpoint of size {from}: {detail}")]
    Inconsistent {
        /// The older size.
        from: u64,
        /// What the verifier said.
        detail: TlogError,
    },
    /// A receipt's checkpoint does not open with the log's key.
    #[error("its checkpoint: {0}")]
    ReceiptCheckpoint(TlogError),
    /// A receipt's leaf is not in its own checkpoint.
    #[error("leaf {leaf_index} is not in its checkpoint: {detail}")]
    NotIncluded {
        /// The leaf index.
        leaf_index: u64,
        /// What the verifier said.
        detail: TlogError,
    },
    /// A receipt from a larger tree than the checkpoint verified.
    #[error("it is from a larger tree ({receipt}) than the checkpoint ({size})")]
    ReceiptAhead {
        /// The receipt's tree size.
        receipt: u64,
        /// The checkpoint's.
        size: u64,
    },
    /// The server returned no entries where the tree has some.
    #[error("the server returned no entries from {from}")]
    NoEntries {
        /// The first index asked for.
        from: u64,
    },
    /// An entry arrived with the wrong index.
    #[error("entry {index} arrived out of order")]
    OutOfOrder {
        /// Its index.
        index: u64,
    },
    /// An entry is not a well-formed log leaf.
    #[error("entry {index}: {problem}")]
    BadLeaf {
        /// Its index.
        index: u64,
        /// What is wrong with it.
        problem: cairn_record::RecordError,
    },
    /// A record the auditor fetched is not the one its leaf logged: the
    /// digest of neither its envelope nor its erasure order is the leaf's.
    #[error(
        "entry {index}: record {record} as served is not the one logged (envelope digest differs)"
    )]
    OtherEnvelope {
        /// The leaf's index.
        index: u64,
        /// The record id.
        record: String,
    },
    /// The directory's history and the log disagree: a directory change
    /// leaf the history lacks, or a history entry the log does not hold at
    /// its index.
    #[error("entry {index}: {problem}")]
    HistoryMismatch {
        /// The leaf's index.
        index: u64,
        /// What disagrees.
        problem: &'static str,
    },
    /// A fetched record's envelope does not verify, or names another
    /// record or author than its leaf.
    #[error("entry {index}: record {record}: {problem}")]
    BadRecord {
        /// The leaf's index.
        index: u64,
        /// The record id.
        record: String,
        /// What does not verify.
        problem: cairn_record::RecordError,
    },
    /// A fetched record's header names another record or author than its
    /// leaf.
    #[error(
        "entry {index}: record {record}: its header names another record or author than its leaf"
    )]
    OtherSubject {
        /// The leaf's index.
        index: u64,
        /// The record id.
        record: String,
    },
    /// A tile, bundle or checkpoint the log should have is not there.
    #[error("{path} is missing")]
    TileMissing {
        /// Its path in the log.
        path: String,
    },
    /// A tile or bundle is malformed or has the wrong width.
    #[error("{path}: {problem}")]
    BadTile {
        /// Its path in the log.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A hash tile is not what the tiles below it hash to.
    #[error("{path} does not match the tiles below it")]
    TileMismatch {
        /// Its path in the log.
        path: String,
    },
    /// An entry whose leaf hash is not its level-0 tile's hash.
    #[error("entry {index} does not hash to its tile's leaf hash")]
    EntryMismatch {
        /// Its index.
        index: u64,
    },
    /// The first leaves do not hash to the trusted checkpoint's root.
    #[error("the log's first {trusted} leaves do not hash to the trusted checkpoint's root")]
    TilesInconsistent {
        /// The trusted size.
        trusted: u64,
    },
    /// The entries do not hash to the checkpoint's root.
    #[error("the {size} entries do not hash to the checkpoint's root")]
    RootMismatch {
        /// The tree size.
        size: u64,
    },
}

/// A checkpoint that verified: signed by the log, cosigned by a quorum.
#[derive(Clone, Debug)]
pub struct Head {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The witnesses whose cosignatures verified, with their timestamps.
    pub cosigned_by: Vec<(String, u64)>,
    /// The note as received (to be trusted next time).
    pub text: String,
}

/// Verifies one log: its key, the witnesses it must be cosigned by, and
/// optionally the audit service to fetch proofs and entries from.
#[derive(Debug, Clone)]
pub struct LogVerifier {
    key: VerifierKey,
    witnesses: Vec<VerifierKey>,
    quorum: usize,
    log: Option<AuditLogClient<Channel>>,
}

fn failed(f: LogFailure) -> ClientError {
    ClientError::LogFailed(f)
}

impl LogVerifier {
    /// A verifier of the log signed by `key`, requiring `quorum` of
    /// `witnesses` to have cosigned a checkpoint.
    pub fn new(
        key: VerifierKey,
        witnesses: Vec<VerifierKey>,
        quorum: usize,
    ) -> Result<Self, ClientError> {
        if quorum > witnesses.len() {
            return Err(ClientError::Quorum {
                quorum,
                witnesses: witnesses.len(),
            });
        }
        Ok(Self {
            key,
            witnesses,
            quorum,
            log: None,
        })
    }

    /// How many witness cosignatures a checkpoint needs.
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    /// Fetches proofs and entries from this audit service.
    pub fn with_log(mut self, log: AuditLogClient<Channel>) -> Self {
        self.log = Some(log);
        self
    }

    fn log(&mut self, why: &'static str) -> Result<&mut AuditLogClient<Channel>, ClientError> {
        self.log.as_mut().ok_or(ClientError::ServerNeeded { why })
    }

    /// The audit service's latest checkpoint note (not yet verified).
    pub async fn latest(&mut self) -> Result<String, ClientError> {
        Ok(self
            .log("to fetch the checkpoint")?
            .get_checkpoint(pb::GetCheckpointRequest {})
            .await?
            .into_inner()
            .checkpoint)
    }

    /// The latest checkpoint once it verifies with the quorum: a new
    /// checkpoint is served at once and its cosignatures follow within
    /// moments, so a checkpoint the log signed but the witnesses have not
    /// cosigned yet is fetched again (every 200 ms, for at most `wait`).
    pub async fn latest_witnessed(
        &mut self,
        wait: std::time::Duration,
    ) -> Result<Head, ClientError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let text = self.latest().await?;
            match self.head(&text) {
                Err(_)
                    if self.quorum > 0
                        && checkpoint::open(&text, &self.key).is_ok()
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                other => return other,
            }
        }
    }

    /// Verifies a checkpoint note: the log's signature and the quorum.
    pub fn head(&self, text: &str) -> Result<Head, ClientError> {
        let w = checkpoint::verify_witnessed(text, &self.key, &self.witnesses, self.quorum)
            .map_err(|e| failed(LogFailure::Checkpoint(e)))?;
        Ok(Head {
            checkpoint: w.checkpoint,
            cosigned_by: w.cosigned_by,
            text: text.to_owned(),
        })
    }

    /// `head` extends the checkpoint `trusted` (a note signed by the log):
    /// never smaller, the same root at the same size, otherwise a
    /// consistency proof that verifies. Returns the trusted size.
    pub async fn extends(&mut self, trusted: &str, head: &Head) -> Result<u64, ClientError> {
        let old = checkpoint::open(trusted, &self.key)
            .map_err(|e| failed(LogFailure::Trusted(e)))?
            .checkpoint;
        match self.consistent(old.size, &old.root, &head.checkpoint).await {
            Err(ClientError::LogFailed(LogFailure::Inconsistent { from, detail })) => {
                Err(failed(LogFailure::NotExtending {
                    trusted: from,
                    detail,
                }))
            }
            other => other.map(|()| old.size),
        }
    }

    /// The tree of `size` and `root` is a prefix of `to`.
    async fn consistent(
        &mut self,
        size: u64,
        root: &Hash,
        to: &Checkpoint,
    ) -> Result<(), ClientError> {
        if size > to.size {
            return Err(failed(LogFailure::Rewound {
                trusted: size,
                size: to.size,
            }));
        }
        if size == to.size {
            return if *root == to.root {
                Ok(())
            } else {
                Err(failed(LogFailure::Fork { size }))
            };
        }
        if size == 0 {
            return Ok(());
        }
        let p = self
            .log("to fetch a consistency proof")?
            .get_consistency_proof(pb::GetConsistencyProofRequest {
                from_size: size,
                to_size: to.size,
            })
            .await?
            .into_inner();
        proof::verify_consistency(size, to.size, &p.proof, root, &to.root)
            .map_err(|detail| failed(LogFailure::Inconsistent { from: size, detail }))
    }

    /// `receipt` proves its leaf in its own checkpoint, and that checkpoint
    /// is consistent with `head`.
    pub async fn includes(
        &mut self,
        receipt: &common::Receipt,
        head: &Head,
    ) -> Result<(), ClientError> {
        let rc = checkpoint::open(&receipt.checkpoint, &self.key)
            .map_err(|e| failed(LogFailure::ReceiptCheckpoint(e)))?
            .checkpoint;
        proof::verify_inclusion(
            receipt.leaf_index,
            rc.size,
            &leaf_hash(&receipt.leaf),
            &receipt.inclusion_proof,
            &rc.root,
        )
        .map_err(|detail| {
            failed(LogFailure::NotIncluded {
                leaf_index: receipt.leaf_index,
                detail,
            })
        })?;
        if rc.size > head.checkpoint.size {
            return Err(failed(LogFailure::ReceiptAhead {
                receipt: rc.size,
                size: head.checkpoint.size,
            }));
        }
        self.consistent(rc.size, &rc.root, &head.checkpoint).await
    }

    /// Every entry of the tree of `head`, fetched, parsed as a log leaf and
    /// hashed, gives its root. `progress` is told how many entries have
    /// been read. Returns the parsed leaves, in order (about 120 bytes
    /// each), for [`LogVerifier::check_records`].
    pub async fn recompute(
        &mut self,
        head: &Head,
        mut progress: impl FnMut(u64),
    ) -> Result<Vec<common::LogLeaf>, ClientError> {
        let size = head.checkpoint.size;
        let log = self.log("to read the entries")?;
        let capacity = usize::try_from(size).unwrap_or(0);
        let mut hashes: Vec<Hash> = Vec::with_capacity(capacity);
        let mut leaves = Vec::with_capacity(capacity);
        while (hashes.len() as u64) < size {
            let from = hashes.len() as u64;
            let page = log
                .get_entries(pb::GetEntriesRequest {
                    start: from,
                    end: size,
                    page_size: 1000,
                })
                .await?
                .into_inner();
            if page.entries.is_empty() {
                return Err(failed(LogFailure::NoEntries { from }));
            }
            for e in page.entries {
                if e.index != hashes.len() as u64 {
                    return Err(failed(LogFailure::OutOfOrder { index: e.index }));
                }
                let leaf = check_leaf(&e.leaf).map_err(|problem| {
                    failed(LogFailure::BadLeaf {
                        index: e.index,
                        problem,
                    })
                })?;
                hashes.push(leaf_hash(&e.leaf));
                leaves.push(leaf);
            }
            progress(hashes.len() as u64);
        }
        if cairn_tlog::hash::naive_root(&hashes) != head.checkpoint.root {
            return Err(failed(LogFailure::RootMismatch { size }));
        }
        Ok(leaves)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cairn_tlog::note::{ALG_ED25519, NoteSigner};

    fn signer() -> NoteSigner {
        NoteSigner::from_seed("test.example/log", ALG_ED25519, &[7; 32]).unwrap()
    }

    fn checkpoint_of(leaves: &[&[u8]]) -> (String, Checkpoint) {
        let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
        let cp = Checkpoint {
            origin: "test.example/log".into(),
            size: leaves.len() as u64,
            root: cairn_tlog::hash::naive_root(&hashes),
            extensions: vec![],
        };
        (cp.sign(&signer()).unwrap(), cp)
    }

    #[tokio::test]
    async fn checks_that_need_no_server() {
        let v = LogVerifier::new(signer().verifier().clone(), vec![], 0).unwrap();
        let (text, cp) = checkpoint_of(&[b"a", b"b"]);
        let mut v2 = v.clone();
        let head = v.head(&text).unwrap();
        assert_eq!(head.checkpoint, cp);
        // The same checkpoint is consistent with itself; a larger trusted
        // one is a rewind; another root at the same size a fork.
        assert_eq!(v2.extends(&text, &head).await.unwrap(), 2);
        let (bigger, _) = checkpoint_of(&[b"a", b"b", b"c"]);
        assert!(matches!(
            v2.extends(&bigger, &head).await,
            Err(ClientError::LogFailed(LogFailure::Rewound {
                trusted: 3,
                size: 2
            }))
        ));
        let (other, _) = checkpoint_of(&[b"a", b"x"]);
        assert!(matches!(
            v2.extends(&other, &head).await,
            Err(ClientError::LogFailed(LogFailure::Fork { size: 2 }))
        ));
        // A receipt of leaf 0 of this very tree.
        let receipt = common::Receipt {
            leaf: b"a".to_vec(),
            leaf_index: 0,
            checkpoint: text.clone(),
            inclusion_proof: vec![leaf_hash(b"b").to_vec()],
        };
        v2.includes(&receipt, &head).await.unwrap();
        let wrong = common::Receipt {
            leaf: b"z".to_vec(),
            ..receipt
        };
        assert!(matches!(
            v2.includes(&wrong, &head).await,
            Err(ClientError::LogFailed(LogFailure::NotIncluded {
                leaf_index: 0,
                ..
            }))
        ));
        // What needs the server says so.
        let (older, _) = checkpoint_of(&[b"a"]);
        assert!(matches!(
            v2.extends(&older, &head).await,
            Err(ClientError::ServerNeeded { .. })
        ));
        // A quorum beyond the witnesses given is refused up front.
        assert!(LogVerifier::new(signer().verifier().clone(), vec![], 1).is_err());
    }
}
