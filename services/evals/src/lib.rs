//! `cairn-evals`: evaluation results, baselines and assessments. Thin wiring
//! of the record-service core behind `cairn.evals.v1.EvaluationResults`:
//! evaluators publish results, governance members publish baselines,
//! either publishes assessments; authors supersede and retract their own
//! records; authors or governance members erase.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::pin::Pin;
use std::sync::Arc;

use cairn_identity::Role;
use cairn_proto::common::v1 as common;
use cairn_proto::evals::v1 as pb;
use cairn_proto::evals::v1::evaluation_results_server::{
    EvaluationResults, EvaluationResultsServer,
};
use cairn_service_core::bulk;
use cairn_service_core::serve::{self, Running, ServeConfig, ServeError, peer};
use cairn_service_core::{
    RecordCore, ServiceError, ServicePolicy, ServiceSchema, SubmitKind, SubmitOutcome,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// What cairn-evals accepts.
pub fn policy() -> ServicePolicy {
    ServicePolicy {
        service: "evals",
        kinds: vec![
            (common::RecordKind::EvaluationResult, vec![Role::Evaluator]),
            (common::RecordKind::Baseline, vec![Role::Governance]),
            (
                common::RecordKind::Assessment,
                vec![Role::Evaluator, Role::Governance, Role::Auditor],
            ),
        ],
        schema: Arc::new(EvalsSchema),
    }
}

/// What the core needs of the evaluation schema: nothing beyond the shared
/// record (erasure orders are `cairn.common.v1`'s).
#[derive(Debug)]
pub struct EvalsSchema;

impl ServiceSchema for EvalsSchema {}

/// The gRPC service.
pub struct EvalsService {
    core: Arc<RecordCore>,
}

fn published(out: SubmitOutcome) -> Response<pb::PublishResultResponse> {
    Response::new(pb::PublishResultResponse {
        record_id: Some(common::RecordId {
            uuid: out.record_id,
        }),
        receipt: out.receipt,
        duplicate: out.duplicate,
        receipt_pending: out.receipt_pending,
    })
}

impl EvalsService {
    async fn submit(
        &self,
        peer: &cairn_identity::PeerIdentity,
        record: Option<common::SignedRecord>,
        kind: SubmitKind,
    ) -> Result<Response<pb::PublishResultResponse>, Status> {
        let record = record.ok_or(ServiceError::Missing { field: "record" })?;
        Ok(published(self.core.submit(peer, record, kind).await?))
    }
}

#[tonic::async_trait]
impl EvaluationResults for EvalsService {
    async fn publish_result(
        &self,
        request: Request<pb::PublishResultRequest>,
    ) -> Result<Response<pb::PublishResultResponse>, Status> {
        let peer = peer(&request)?;
        self.submit(&peer, request.into_inner().record, SubmitKind::Publish)
            .await
    }

    type PublishResultsStream =
        Pin<Box<dyn Stream<Item = Result<pb::PublishResultsResult, Status>> + Send>>;

    async fn publish_results(
        &self,
        request: Request<tonic::Streaming<pb::PublishResultRequest>>,
    ) -> Result<Response<Self::PublishResultsStream>, Status> {
        use pb::publish_results_result::Outcome;
        let peer = peer(&request)?;
        let answers = bulk::submit_stream(
            self.core.clone(),
            peer,
            SubmitKind::Publish,
            request.into_inner(),
            |r| r.record,
            |index, outcome| pb::PublishResultsResult {
                index,
                outcome: Some(match outcome {
                    Ok(o) => Outcome::Accepted(published(o).into_inner()),
                    Err(s) => Outcome::Refused(bulk::refusal(&s)),
                }),
            },
        );
        Ok(Response::new(Box::pin(answers)))
    }

    async fn supersede_result(
        &self,
        request: Request<pb::SupersedeResultRequest>,
    ) -> Result<Response<pb::PublishResultResponse>, Status> {
        let peer = peer(&request)?;
        self.submit(&peer, request.into_inner().record, SubmitKind::Supersede)
            .await
    }

    async fn retract_result(
        &self,
        request: Request<pb::RetractResultRequest>,
    ) -> Result<Response<pb::PublishResultResponse>, Status> {
        let peer = peer(&request)?;
        self.submit(&peer, request.into_inner().record, SubmitKind::Retract)
            .await
    }

    async fn erase_result(
        &self,
        request: Request<pb::EraseResultRequest>,
    ) -> Result<Response<pb::EraseResultResponse>, Status> {
        let peer = peer(&request)?;
        let (receipt, receipt_pending) =
            self.core.erase(&peer, &request.into_inner().order).await?;
        Ok(Response::new(pb::EraseResultResponse {
            receipt,
            receipt_pending,
        }))
    }

    async fn get_result(
        &self,
        request: Request<pb::GetResultRequest>,
    ) -> Result<Response<pb::GetResultResponse>, Status> {
        let peer = peer(&request)?;
        let req = request.into_inner();
        let span = tracing::info_span!("get", member = %peer, record_id = ?req.record_id.as_ref().map(|r| r.uuid.clone()));
        let _e = span.enter();
        let record = self
            .core
            .get(&peer, req.record_id.as_ref(), req.include_latest_proof)
            .await?;
        Ok(Response::new(pb::GetResultResponse {
            record: Some(record),
        }))
    }

    async fn list_results(
        &self,
        request: Request<pb::ListResultsRequest>,
    ) -> Result<Response<pb::ListResultsResponse>, Status> {
        let peer = peer(&request)?;
        let req = request.into_inner();
        let (records, next_page_token) = self
            .core
            .list(
                &peer,
                &req.filter.unwrap_or_default(),
                req.page_size,
                &req.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListResultsResponse {
            records,
            next_page_token,
        }))
    }

    type WatchResultsStream =
        Pin<Box<dyn Stream<Item = Result<common::WatchEvent, Status>> + Send>>;

    async fn watch_results(
        &self,
        request: Request<pb::WatchResultsRequest>,
    ) -> Result<Response<Self::WatchResultsStream>, Status> {
        let peer = peer(&request)?;
        let req = request.into_inner();
        let rx = self
            .core
            .watch(&peer, req.filter.unwrap_or_default(), &req.cursor)?;
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(tokio_stream::StreamExt::map(
            stream,
            |r| r.map_err(Status::from),
        ))))
    }
}

/// Starts cairn-evals.
pub async fn start(config: ServeConfig) -> Result<Running, ServeError> {
    serve::start(
        config,
        policy(),
        "cairn.evals.v1.EvaluationResults",
        |core| {
            tonic::service::Routes::new(
                EvaluationResultsServer::new(EvalsService { core: core.clone() })
                    .max_decoding_message_size(core.max_message_len()),
            )
        },
    )
    .await
}
