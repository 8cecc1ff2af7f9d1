//! The bulk path: many records on one stream (SubmitIncidents,
//! PublishResults), each answered in order with its response or its exact
//! refusal.

use cairn_proto::evals::v1 as evals;
use cairn_proto::intake::v1 as intake;
use cairn_record::pb;

use super::{Client, Submitted};
use crate::error::ClientError;
use crate::prepare::Prepared;

impl Client {
    /// The bulk path: `records` on one stream (SubmitIncidents), each
    /// answered in order with its response or its exact refusal. Receipts
    /// are not verified here: check them with [`Client::check_receipt`].
    pub async fn submit_incidents(
        &self,
        records: Vec<pb::SignedRecord>,
    ) -> Result<tonic::Streaming<intake::SubmitIncidentsResult>, ClientError> {
        let requests = tokio_stream::iter(
            records
                .into_iter()
                .map(|r| intake::SubmitIncidentRequest { record: Some(r) }),
        );
        Ok(self
            .intake
            .clone()
            .submit_incidents(requests)
            .await?
            .into_inner())
    }

    /// The bulk path for evaluation results (PublishResults).
    pub async fn publish_results(
        &self,
        records: Vec<pb::SignedRecord>,
    ) -> Result<tonic::Streaming<evals::PublishResultsResult>, ClientError> {
        let requests = tokio_stream::iter(
            records
                .into_iter()
                .map(|r| evals::PublishResultRequest { record: Some(r) }),
        );
        Ok(self
            .evals
            .clone()
            .publish_results(requests)
            .await?
            .into_inner())
    }

    /// What a bulk answer for `prepared` means: its receipt verified
    /// (when the log key is known), as [`Client::submit_incident`] does.
    pub fn incident_submitted(
        &self,
        prepared: &Prepared,
        response: intake::SubmitIncidentResponse,
    ) -> Result<Submitted, ClientError> {
        self.submitted(
            prepared,
            response.receipt,
            response.duplicate,
            response.receipt_pending,
        )
    }

    /// [`Client::incident_submitted`] for a published result.
    pub fn result_published(
        &self,
        prepared: &Prepared,
        response: evals::PublishResultResponse,
    ) -> Result<Submitted, ClientError> {
        self.submitted(
            prepared,
            response.receipt,
            response.duplicate,
            response.receipt_pending,
        )
    }
}
