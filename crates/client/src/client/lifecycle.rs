//! A record's life after it is published: corrections that supersede it,
//! retractions, and erasure of its body under a signed order, for both
//! incidents (cairn-intake) and evaluation results (cairn-evals).

use cairn_proto::evals::v1 as evals;
use cairn_proto::intake::v1 as intake;
use cairn_record::pb;

use super::{Client, Submitted};
use crate::error::ClientError;
use crate::prepare::{self, Prepared, Share};
use crate::verify;

/// The answer to an erasure order.
#[derive(Clone, Debug)]
pub struct Erased {
    /// The erased record.
    pub record_id: String,
    /// The log receipt of the order (absent while pending).
    pub receipt: Option<pb::Receipt>,
    /// The tree size of the verified receipt's checkpoint.
    pub verified_in_tree_of: Option<u64>,
    /// The order is durable, but not yet in the audit log.
    pub receipt_pending: bool,
}

impl Client {
    /// Validates, seals and signs an evaluation result that supersedes
    /// `supersedes` (an earlier result of this member's).
    pub fn prepare_result_correction(
        &self,
        result: &evals::EvaluationResult,
        share: &Share,
        supersedes: &str,
    ) -> Result<Prepared, ClientError> {
        prepare::result_with(
            &self.directory,
            &self.creds.member,
            &self.creds.signing,
            result,
            share,
            Some(supersedes),
        )
    }

    /// A signed retraction of `target` (a record of this member's, as
    /// fetched), with `reason`, shared as the target is.
    pub fn prepare_retraction(
        &self,
        target: &pb::StoredRecord,
        reason: &str,
    ) -> Result<Prepared, ClientError> {
        let header = verify::stored_header(target)?;
        prepare::retraction(
            &self.directory,
            &self.creds.member,
            &self.creds.signing,
            &header,
            reason,
        )
    }

    /// A signed order to erase `record_id`'s body, with `reason`, dated now.
    pub fn prepare_erasure(&self, record_id: &str, reason: &str) -> Result<Vec<u8>, ClientError> {
        prepare::erasure_order(&self.creds.member, &self.creds.signing, record_id, reason)
    }

    /// Sends a prepared retraction of an incident.
    pub async fn retract_incident(&self, prepared: &Prepared) -> Result<Submitted, ClientError> {
        let out = self
            .intake
            .clone()
            .retract_incident(intake::RetractIncidentRequest {
                record: Some(prepared.record.clone()),
            })
            .await?
            .into_inner();
        self.submitted(prepared, out.receipt, out.duplicate, out.receipt_pending)
    }

    /// Publishes a prepared correction of an evaluation result.
    pub async fn supersede_result(&self, prepared: &Prepared) -> Result<Submitted, ClientError> {
        let out = self
            .evals
            .clone()
            .supersede_result(evals::SupersedeResultRequest {
                record: Some(prepared.record.clone()),
            })
            .await?
            .into_inner();
        self.submitted(prepared, out.receipt, out.duplicate, out.receipt_pending)
    }

    /// Sends a prepared retraction of an evaluation result (or baseline,
    /// assessment).
    pub async fn retract_result(&self, prepared: &Prepared) -> Result<Submitted, ClientError> {
        let out = self
            .evals
            .clone()
            .retract_result(evals::RetractResultRequest {
                record: Some(prepared.record.clone()),
            })
            .await?
            .into_inner();
        self.submitted(prepared, out.receipt, out.duplicate, out.receipt_pending)
    }

    /// Sends an erasure order for an incident.
    pub async fn erase_incident(
        &self,
        record_id: &str,
        order: &[u8],
    ) -> Result<Erased, ClientError> {
        let out = self
            .intake
            .clone()
            .erase_incident(intake::EraseIncidentRequest {
                order: order.to_vec(),
            })
            .await?
            .into_inner();
        self.erased(record_id, order, out.receipt, out.receipt_pending)
    }

    /// Sends an erasure order for an evaluation result (or baseline,
    /// assessment).
    pub async fn erase_result(&self, record_id: &str, order: &[u8]) -> Result<Erased, ClientError> {
        let out = self
            .evals
            .clone()
            .erase_result(evals::EraseResultRequest {
                order: order.to_vec(),
            })
            .await?
            .into_inner();
        self.erased(record_id, order, out.receipt, out.receipt_pending)
    }

    /// A submission's answer, its receipt verified when the log key is known.
    pub(super) fn submitted(
        &self,
        prepared: &Prepared,
        receipt: Option<pb::Receipt>,
        duplicate: bool,
        receipt_pending: bool,
    ) -> Result<Submitted, ClientError> {
        let verified_in_tree_of = self.check(&prepared.record, &receipt)?;
        Ok(Submitted {
            record_id: prepared.record_id.clone(),
            receipt,
            verified_in_tree_of,
            duplicate,
            receipt_pending,
            reporting_deadline: prepared.reporting_deadline,
        })
    }

    /// An erasure's answer, its receipt verified (it names the order's
    /// exact bytes) when the log key is known.
    fn erased(
        &self,
        record_id: &str,
        order: &[u8],
        receipt: Option<pb::Receipt>,
        receipt_pending: bool,
    ) -> Result<Erased, ClientError> {
        let verified_in_tree_of = match (&receipt, &self.log_key) {
            (Some(r), Some(k)) => Some(verify::verify_receipt_of_bytes(r, order, k)?.0.size),
            _ => None,
        };
        Ok(Erased {
            record_id: record_id.to_owned(),
            receipt,
            verified_in_tree_of,
            receipt_pending,
        })
    }
}
