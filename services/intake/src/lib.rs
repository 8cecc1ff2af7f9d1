//! `cairn-intake`: incident records. Thin wiring of the record-service core
//! (`cairn-service-core`) behind `cairn.intake.v1.IncidentIntake`: members
//! with the `submitter` role submit incidents (and corrections that
//! supersede them) and retract their own; authors or governance members
//! who may see an incident erase its body; every member reads what its
//! labels allow; any member that may read a report acknowledges it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::pin::Pin;
use std::sync::Arc;

use cairn_identity::Role;
use cairn_proto::common::v1 as common;
use cairn_proto::intake::v1 as pb;
use cairn_proto::intake::v1::incident_intake_server::{IncidentIntake, IncidentIntakeServer};
use cairn_service_core::bulk;
use cairn_service_core::serve::{self, Running, ServeConfig, ServeError, peer};
use cairn_service_core::{
    RecordCore, ServiceError, ServicePolicy, ServiceSchema, SubmitKind, SubmitOutcome,
};
use prost::Message as _;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Every role: what any member may send.
const ANY_MEMBER: [Role; 5] = [
    Role::Submitter,
    Role::Evaluator,
    Role::Auditor,
    Role::Witness,
    Role::Governance,
];

/// What cairn-intake accepts.
pub fn policy() -> ServicePolicy {
    ServicePolicy {
        service: "intake",
        kinds: vec![
            (common::RecordKind::Incident, vec![Role::Submitter]),
            // Any member that may read a report acknowledges it, and any
            // member reports sightings and mitigations.
            (common::RecordKind::Acknowledgement, ANY_MEMBER.to_vec()),
            (common::RecordKind::Sighting, ANY_MEMBER.to_vec()),
            (common::RecordKind::Mitigation, ANY_MEMBER.to_vec()),
        ],
        schema: Arc::new(IncidentSchema),
    }
}

/// What the core needs of the incident schema: a TLP:CLEAR serious
/// incident's Art. 73 reporting deadline.
#[derive(Debug)]
pub struct IncidentSchema;

impl ServiceSchema for IncidentSchema {
    fn reporting_deadline(
        &self,
        kind: common::RecordKind,
        content: &[u8],
    ) -> Option<time::OffsetDateTime> {
        if kind != common::RecordKind::Incident {
            return None;
        }
        pb::Incident::decode(content)
            .ok()
            .as_ref()
            .and_then(cairn_record::content::art73_deadline)
    }
}

/// The gRPC service.
pub struct IntakeService {
    core: Arc<RecordCore>,
}

fn submitted(out: SubmitOutcome) -> Response<pb::SubmitIncidentResponse> {
    Response::new(pb::SubmitIncidentResponse {
        record_id: Some(common::RecordId {
            uuid: out.record_id,
        }),
        receipt: out.receipt,
        duplicate: out.duplicate,
        receipt_pending: out.receipt_pending,
        reporting_deadline: out.reporting_deadline.map(|t| prost_types::Timestamp {
            seconds: t.unix_timestamp(),
            nanos: t.nanosecond() as i32,
        }),
    })
}

impl IntakeService {
    async fn submit(
        &self,
        peer: &cairn_identity::PeerIdentity,
        record: Option<common::SignedRecord>,
        kind: SubmitKind,
    ) -> Result<Response<pb::SubmitIncidentResponse>, Status> {
        let record = record.ok_or(ServiceError::Missing { field: "record" })?;
        Ok(submitted(self.core.submit(peer, record, kind).await?))
    }
}

#[tonic::async_trait]
impl IncidentIntake for IntakeService {
    async fn submit_incident(
        &self,
        request: Request<pb::SubmitIncidentRequest>,
    ) -> Result<Response<pb::SubmitIncidentResponse>, Status> {
        let peer = peer(&request)?;
        self.submit(
            &peer,
            request.into_inner().record,
            SubmitKind::SubmitOrCorrect,
        )
        .await
    }

    type SubmitIncidentsStream =
        Pin<Box<dyn Stream<Item = Result<pb::SubmitIncidentsResult, Status>> + Send>>;

    async fn submit_incidents(
        &self,
        request: Request<tonic::Streaming<pb::SubmitIncidentRequest>>,
    ) -> Result<Response<Self::SubmitIncidentsStream>, Status> {
        use pb::submit_incidents_result::Outcome;
        let peer = peer(&request)?;
        let answers = bulk::submit_stream(
            self.core.clone(),
            peer,
            SubmitKind::SubmitOrCorrect,
            request.into_inner(),
            |r| r.record,
            |index, outcome| pb::SubmitIncidentsResult {
                index,
                outcome: Some(match outcome {
                    Ok(o) => Outcome::Accepted(submitted(o).into_inner()),
                    Err(s) => Outcome::Refused(bulk::refusal(&s)),
                }),
            },
        );
        Ok(Response::new(Box::pin(answers)))
    }

    async fn retract_incident(
        &self,
        request: Request<pb::RetractIncidentRequest>,
    ) -> Result<Response<pb::SubmitIncidentResponse>, Status> {
        let peer = peer(&request)?;
        self.submit(&peer, request.into_inner().record, SubmitKind::Retract)
            .await
    }

    async fn erase_incident(
        &self,
        request: Request<pb::EraseIncidentRequest>,
    ) -> Result<Response<pb::EraseIncidentResponse>, Status> {
        let peer = peer(&request)?;
        let (receipt, receipt_pending) =
            self.core.erase(&peer, &request.into_inner().order).await?;
        Ok(Response::new(pb::EraseIncidentResponse {
            receipt,
            receipt_pending,
        }))
    }

    async fn get_incident(
        &self,
        request: Request<pb::GetIncidentRequest>,
    ) -> Result<Response<pb::GetIncidentResponse>, Status> {
        let peer = peer(&request)?;
        let req = request.into_inner();
        let span = tracing::info_span!("get", member = %peer, record_id = ?req.record_id.as_ref().map(|r| r.uuid.clone()));
        let _e = span.enter();
        let record = self
            .core
            .get(&peer, req.record_id.as_ref(), req.include_latest_proof)
            .await?;
        Ok(Response::new(pb::GetIncidentResponse {
            record: Some(record),
        }))
    }

    async fn list_incidents(
        &self,
        request: Request<pb::ListIncidentsRequest>,
    ) -> Result<Response<pb::ListIncidentsResponse>, Status> {
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
        Ok(Response::new(pb::ListIncidentsResponse {
            records,
            next_page_token,
        }))
    }

    type WatchIncidentsStream =
        Pin<Box<dyn Stream<Item = Result<common::WatchEvent, Status>> + Send>>;

    async fn watch_incidents(
        &self,
        request: Request<pb::WatchIncidentsRequest>,
    ) -> Result<Response<Self::WatchIncidentsStream>, Status> {
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

/// Starts cairn-intake.
pub async fn start(config: ServeConfig) -> Result<Running, ServeError> {
    serve::start(config, policy(), "cairn.intake.v1.IncidentIntake", |core| {
        tonic::service::Routes::new(
            IncidentIntakeServer::new(IntakeService { core: core.clone() })
                .max_decoding_message_size(core.max_message_len()),
        )
    })
    .await
}
