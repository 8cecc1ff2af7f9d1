//! The gRPC handlers of `cairn.audit.v1`.

use std::sync::Arc;

use cairn_identity::{DirectoryHandle, PeerIdentity, ServiceRight};
use cairn_log::witness::Witness;
use cairn_log::{Log, Receipt};
use cairn_mtls::peer_info;
use cairn_proto::audit::v1 as pb;
use cairn_proto::audit::v1::audit_log_server::AuditLog;
use cairn_proto::audit::v1::witness_server::Witness as WitnessApi;
use cairn_proto::common::v1 as common;
use cairn_tlog::note::NoteSigner;
use tonic::{Request, Response, Status};

use crate::error::AuditError;
use crate::guard::Gate;

/// Most leaves in one AppendBatch.
pub const MAX_BATCH_LEAVES: usize = 1000;
/// How long an append waits for the witnesses to confirm the log's state
/// after a start (see [`crate::guard`]) before it is answered UNAVAILABLE.
pub const ADMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Most entries in one GetEntries page.
pub const MAX_ENTRIES_PAGE: u32 = 1000;

/// The `cairn.audit.v1.AuditLog` service.
#[derive(Clone)]
pub struct AuditService {
    log: Log,
    directory: DirectoryHandle,
    gate: Gate,
    signer: Arc<NoteSigner>,
}

impl AuditService {
    /// Serves `log`, authorising appends against `directory` and
    /// admitting them through the fork guard's `gate`; `signer` (the log's
    /// key) signs COSE Receipts.
    pub fn new(log: Log, directory: DirectoryHandle, gate: Gate, signer: Arc<NoteSigner>) -> Self {
        Self {
            log,
            directory,
            gate,
            signer,
        }
    }

    /// The appending service's name, if the peer may append.
    fn require_append<T>(&self, request: &Request<T>) -> Result<String, AuditError> {
        let peer = peer_info(request).ok_or(AuditError::NoPeer)?;
        match &peer.identity {
            PeerIdentity::Service { name } => {
                let dir = self.directory.current();
                match dir.service(name) {
                    Some(s) if s.rights.contains(&ServiceRight::Append) => Ok(name.clone()),
                    _ => Err(AuditError::NoAppendRight {
                        service: name.clone(),
                    }),
                }
            }
            other => Err(AuditError::NotAService {
                peer: other.to_string(),
            }),
        }
    }
}

/// Every leaf parses as a `LogLeaf` and names `appender` as the service
/// that accepted it; the first that does not refuses the whole request.
fn check_leaves<'a>(
    leaves: impl IntoIterator<Item = &'a Vec<u8>>,
    appender: &str,
) -> Result<(), AuditError> {
    for (index, bytes) in leaves.into_iter().enumerate() {
        let leaf = cairn_record::leaf::check_leaf(bytes)
            .map_err(|problem| AuditError::BadLeaf { index, problem })?;
        if leaf.service != appender {
            return Err(AuditError::OtherService {
                index,
                named: leaf.service.chars().take(32).collect(),
                appender: appender.to_owned(),
            });
        }
    }
    Ok(())
}

pub(crate) fn receipt(leaf: Vec<u8>, r: Receipt) -> common::Receipt {
    common::Receipt {
        leaf,
        leaf_index: r.leaf_index,
        checkpoint: r.checkpoint.to_string(),
        inclusion_proof: r.inclusion_proof.iter().map(|h| h.to_vec()).collect(),
    }
}

#[tonic::async_trait]
impl AuditLog for AuditService {
    async fn append(
        &self,
        request: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        let appender = self.require_append(&request)?;
        let leaf = request.into_inner().leaf;
        let leaves = [leaf];
        self.log.check_sizes(&leaves).map_err(AuditError::from)?;
        check_leaves(&leaves, &appender)?;
        self.gate.admit(ADMIT_WAIT).await?;
        let [leaf] = leaves;
        let r = self
            .log
            .append(leaf.clone())
            .await
            .map_err(AuditError::from)?;
        Ok(Response::new(pb::AppendResponse {
            receipt: Some(receipt(leaf, r)),
        }))
    }

    async fn append_batch(
        &self,
        request: Request<pb::AppendBatchRequest>,
    ) -> Result<Response<pb::AppendBatchResponse>, Status> {
        let appender = self.require_append(&request)?;
        let leaves = request.into_inner().leaves;
        if leaves.is_empty() || leaves.len() > MAX_BATCH_LEAVES {
            return Err(AuditError::BatchSize {
                count: leaves.len(),
                max: MAX_BATCH_LEAVES,
            }
            .into());
        }
        self.log.check_sizes(&leaves).map_err(AuditError::from)?;
        check_leaves(&leaves, &appender)?;
        self.gate.admit(ADMIT_WAIT).await?;
        let receipts = self
            .log
            .append_batch(leaves.clone())
            .await
            .map_err(AuditError::from)?;
        Ok(Response::new(pb::AppendBatchResponse {
            receipts: leaves
                .into_iter()
                .zip(receipts)
                .map(|(l, r)| receipt(l, r))
                .collect(),
        }))
    }

    async fn get_checkpoint(
        &self,
        _request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        let checkpoint = self.log.checkpoint_note().await.map_err(AuditError::from)?;
        Ok(Response::new(pb::GetCheckpointResponse { checkpoint }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        let req = request.into_inner();
        let index = match req.leaf {
            Some(pb::get_inclusion_proof_request::Leaf::LeafIndex(i)) => i,
            Some(pb::get_inclusion_proof_request::Leaf::LeafHash(h)) => {
                self.log.index_of(&h).await.map_err(AuditError::from)?
            }
            None => return Err(AuditError::NoLeaf.into()),
        };
        let (tree_size, proof) = self
            .log
            .inclusion_proof(index, req.tree_size)
            .await
            .map_err(AuditError::from)?;
        Ok(Response::new(pb::GetInclusionProofResponse {
            leaf_index: index,
            tree_size,
            proof: proof.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    async fn get_cose_receipt(
        &self,
        request: Request<pb::GetCoseReceiptRequest>,
    ) -> Result<Response<pb::GetCoseReceiptResponse>, Status> {
        let req = request.into_inner();
        let (tree_size, path) = self
            .log
            .inclusion_proof(req.leaf_index, req.tree_size)
            .await
            .map_err(AuditError::from)?;
        let root = self
            .log
            .root_at(tree_size)
            .await
            .map_err(AuditError::from)?;
        let receipt = cairn_tlog::cose::inclusion_receipt(
            &self.signer,
            tree_size,
            req.leaf_index,
            &path,
            &root,
        )
        .map_err(AuditError::from)?;
        Ok(Response::new(pb::GetCoseReceiptResponse {
            receipt,
            tree_size,
            root: root.to_vec(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let req = request.into_inner();
        let (to_size, proof) = self
            .log
            .consistency_proof(req.from_size, req.to_size)
            .await
            .map_err(AuditError::from)?;
        Ok(Response::new(pb::GetConsistencyProofResponse {
            from_size: req.from_size,
            to_size,
            proof: proof.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    async fn get_entries(
        &self,
        request: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        let req = request.into_inner();
        let page = match req.page_size {
            0 => MAX_ENTRIES_PAGE,
            n if n > MAX_ENTRIES_PAGE => {
                return Err(AuditError::PageSize {
                    max: MAX_ENTRIES_PAGE,
                }
                .into());
            }
            n => n,
        };
        let (entries, next_index) = self
            .log
            .entries(req.start, req.end, page as usize)
            .await
            .map_err(AuditError::from)?;
        Ok(Response::new(pb::GetEntriesResponse {
            entries: entries
                .into_iter()
                .map(|(index, leaf)| pb::Entry { index, leaf })
                .collect(),
            next_index,
        }))
    }
}

/// The `cairn.audit.v1.Witness` service.
#[derive(Clone)]
pub struct WitnessService {
    witness: Arc<Witness>,
}

impl WitnessService {
    /// Serves `witness`.
    pub fn new(witness: Arc<Witness>) -> Self {
        Self { witness }
    }
}

#[tonic::async_trait]
impl WitnessApi for WitnessService {
    async fn add_checkpoint(
        &self,
        request: Request<pb::AddCheckpointRequest>,
    ) -> Result<Response<pb::AddCheckpointResponse>, Status> {
        let req = request.into_inner();
        let line = self
            .witness
            .add_checkpoint(req.old_size, &req.consistency_proof, &req.checkpoint)
            .await
            .map_err(AuditError::from)?;
        Ok(Response::new(pb::AddCheckpointResponse {
            cosignatures: vec![line],
        }))
    }
}
