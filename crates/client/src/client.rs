//! Connecting as a member and calling the services.

use std::net::SocketAddr;
use std::path::Path;

use cairn_devpki::MemberFiles;
use cairn_identity::{Directory, DirectoryHandle, SealingKey, SigningKey};
use cairn_mtls::{self as tls, TlsIdentity};
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_proto::audit::v1::governance_client::GovernanceClient;
use cairn_proto::evals::v1 as evals;
use cairn_proto::evals::v1::evaluation_results_client::EvaluationResultsClient;
use cairn_proto::intake::v1 as intake;
use cairn_proto::intake::v1::incident_intake_client::IncidentIntakeClient;
use cairn_record::pb;
use cairn_tlog::note::VerifierKey;
use time::OffsetDateTime;
use tonic::transport::Channel;

use crate::assess;
use crate::error::ClientError;
use crate::prepare::{self, Prepared, Share};
use crate::verify::{self, Opened};

mod bulk;
mod governance;
mod lifecycle;
mod related;
mod settings;
mod threads;
pub use governance::{ChangeSubmitted, DirectoryHistory};
pub use lifecycle::Erased;
pub use related::Related;
pub use settings::{CredentialFiles, Settings};

/// A member's identity and keys.
pub struct Credentials {
    /// Member id.
    pub member: String,
    /// TLS client certificate and key.
    pub tls: TlsIdentity,
    /// Ed25519 signing key.
    pub signing: SigningKey,
    /// X25519 sealing key.
    pub sealing: SealingKey,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// A member's files in a development PKI (`cairn dev pki`).
    pub fn from_dev_pki(pki: &Path, member: &str) -> Result<Self, ClientError> {
        let files = MemberFiles::new(pki, member);
        Ok(Self {
            member: member.to_owned(),
            tls: files.tls_identity()?,
            signing: files.signing_key()?,
            sealing: files.sealing_key()?,
        })
    }
}

/// Where the services are.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints {
    /// cairn-intake.
    pub intake: SocketAddr,
    /// cairn-evals.
    pub evals: SocketAddr,
    /// cairn-audit.
    pub audit: SocketAddr,
    /// The local address to connect from (on a host with several); the
    /// system chooses when `None`.
    pub source: Option<std::net::IpAddr>,
}

/// What a submission returned, with the receipt verified when the log key
/// is known.
#[derive(Clone, Debug)]
pub struct Submitted {
    /// Record id.
    pub record_id: String,
    /// The receipt (absent while pending).
    pub receipt: Option<pb::Receipt>,
    /// The tree size of the verified receipt's checkpoint.
    pub verified_in_tree_of: Option<u64>,
    /// A repeat of an earlier identical submission.
    pub duplicate: bool,
    /// Durable, but not yet in the audit log.
    pub receipt_pending: bool,
    /// For a serious incident: the Art. 73 deadline.
    pub reporting_deadline: Option<OffsetDateTime>,
}

/// A connected member.
pub struct Client {
    creds: Credentials,
    directory: Directory,
    log_key: Option<VerifierKey>,
    intake: IncidentIntakeClient<Channel>,
    evals: EvaluationResultsClient<Channel>,
    audit: AuditLogClient<Channel>,
    governance: GovernanceClient<Channel>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("member", &self.creds.member)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects (lazily) to the services as `creds`; with `log_key`, every
    /// receipt is verified on arrival.
    pub fn connect(
        creds: Credentials,
        directory: Directory,
        endpoints: Endpoints,
        log_key: Option<VerifierKey>,
    ) -> Result<Self, ClientError> {
        let handle = DirectoryHandle::new(directory.clone());
        let chan = |addr: SocketAddr, service: &str| -> Result<Channel, ClientError> {
            Ok(tls::channel_from(
                &addr.to_string(),
                endpoints.source,
                tls::client_config(&creds.tls, handle.clone(), service)?,
            )?)
        };
        let audit = chan(endpoints.audit, "audit")?;
        Ok(Self {
            intake: IncidentIntakeClient::new(chan(endpoints.intake, "intake")?),
            evals: EvaluationResultsClient::new(chan(endpoints.evals, "evals")?),
            audit: AuditLogClient::new(audit.clone()),
            governance: GovernanceClient::new(audit),
            creds,
            directory,
            log_key,
        })
    }

    /// The member this client acts as.
    pub fn member(&self) -> &str {
        &self.creds.member
    }

    /// The directory.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Validates, seals and signs an incident.
    pub fn prepare_incident(
        &self,
        incident: &intake::Incident,
        share: &Share,
    ) -> Result<Prepared, ClientError> {
        prepare::incident(
            &self.directory,
            &self.creds.member,
            &self.creds.signing,
            incident,
            share,
        )
    }

    /// Validates, seals and signs a correction superseding `supersedes`.
    pub fn prepare_incident_correction(
        &self,
        incident: &intake::Incident,
        share: &Share,
        supersedes: &str,
    ) -> Result<Prepared, ClientError> {
        prepare::incident_with(
            &self.directory,
            &self.creds.member,
            &self.creds.signing,
            incident,
            share,
            Some(supersedes),
        )
    }

    /// Validates, seals and signs an evaluation result.
    pub fn prepare_result(
        &self,
        result: &evals::EvaluationResult,
        share: &Share,
    ) -> Result<Prepared, ClientError> {
        prepare::result(
            &self.directory,
            &self.creds.member,
            &self.creds.signing,
            result,
            share,
        )
    }

    fn check(
        &self,
        record: &pb::SignedRecord,
        receipt: &Option<pb::Receipt>,
    ) -> Result<Option<u64>, ClientError> {
        match (receipt, &self.log_key) {
            (Some(r), Some(k)) => Ok(Some(
                verify::verify_receipt(r, &record.envelope, k, None)?.size,
            )),
            _ => Ok(None),
        }
    }

    /// Submits a prepared incident.
    pub async fn submit_incident(&self, prepared: &Prepared) -> Result<Submitted, ClientError> {
        let out = self
            .intake
            .clone()
            .submit_incident(intake::SubmitIncidentRequest {
                record: Some(prepared.record.clone()),
            })
            .await?
            .into_inner();
        self.submitted(prepared, out.receipt, out.duplicate, out.receipt_pending)
    }

    /// Publishes a prepared evaluation result (or baseline, assessment).
    pub async fn publish_result(&self, prepared: &Prepared) -> Result<Submitted, ClientError> {
        let out = self
            .evals
            .clone()
            .publish_result(evals::PublishResultRequest {
                record: Some(prepared.record.clone()),
            })
            .await?
            .into_inner();
        self.submitted(prepared, out.receipt, out.duplicate, out.receipt_pending)
    }

    fn id(record_id: &str) -> Option<pb::RecordId> {
        Some(pb::RecordId {
            uuid: record_id.to_owned(),
        })
    }

    /// Fetches an incident.
    pub async fn get_incident(
        &self,
        record_id: &str,
        latest_proof: bool,
    ) -> Result<pb::StoredRecord, ClientError> {
        let r = self
            .intake
            .clone()
            .get_incident(intake::GetIncidentRequest {
                record_id: Self::id(record_id),
                include_latest_proof: latest_proof,
            })
            .await?;
        r.into_inner()
            .record
            .ok_or_else(|| ClientError::NoRecord("GetIncident"))
    }

    /// Fetches an evaluation result.
    pub async fn get_result(
        &self,
        record_id: &str,
        latest_proof: bool,
    ) -> Result<pb::StoredRecord, ClientError> {
        let r = self
            .evals
            .clone()
            .get_result(evals::GetResultRequest {
                record_id: Self::id(record_id),
                include_latest_proof: latest_proof,
            })
            .await?;
        r.into_inner()
            .record
            .ok_or_else(|| ClientError::NoRecord("GetResult"))
    }

    /// One page of incidents.
    pub async fn list_incidents(
        &self,
        filter: pb::RecordFilter,
        page_size: u32,
        page_token: String,
    ) -> Result<(Vec<pb::StoredRecord>, String), ClientError> {
        let r = self
            .intake
            .clone()
            .list_incidents(intake::ListIncidentsRequest {
                page_size,
                page_token,
                filter: Some(filter),
            })
            .await?
            .into_inner();
        Ok((r.records, r.next_page_token))
    }

    /// One page of evaluation records.
    pub async fn list_results(
        &self,
        filter: pb::RecordFilter,
        page_size: u32,
        page_token: String,
    ) -> Result<(Vec<pb::StoredRecord>, String), ClientError> {
        let r = self
            .evals
            .clone()
            .list_results(evals::ListResultsRequest {
                page_size,
                page_token,
                filter: Some(filter),
            })
            .await?
            .into_inner();
        Ok((r.records, r.next_page_token))
    }

    /// Incidents from `cursor` on, as they are accepted.
    pub async fn watch_incidents(
        &self,
        filter: pb::RecordFilter,
        cursor: String,
    ) -> Result<tonic::Streaming<pb::WatchEvent>, ClientError> {
        Ok(self
            .intake
            .clone()
            .watch_incidents(intake::WatchIncidentsRequest {
                cursor,
                filter: Some(filter),
            })
            .await?
            .into_inner())
    }

    /// Evaluation records from `cursor` on, as they are accepted.
    pub async fn watch_results(
        &self,
        filter: pb::RecordFilter,
        cursor: String,
    ) -> Result<tonic::Streaming<pb::WatchEvent>, ClientError> {
        Ok(self
            .evals
            .clone()
            .watch_results(evals::WatchResultsRequest {
                cursor,
                filter: Some(filter),
            })
            .await?
            .into_inner())
    }

    /// Verifies and opens a fetched record (and its receipt, when the log
    /// key is known).
    pub fn open(&self, stored: &pb::StoredRecord) -> Result<Opened, ClientError> {
        let record = stored
            .record
            .as_ref()
            .ok_or(ClientError::NoRecord("the stored record"))?;
        if let (Some(r), Some(k)) = (&stored.receipt, &self.log_key) {
            let salt = (!stored.leaf_salt.is_empty()).then_some(stored.leaf_salt.as_slice());
            verify::verify_receipt(r, &record.envelope, k, salt)?;
        }
        verify::open_record(
            &self.directory,
            record,
            &self.creds.member,
            Some(&self.creds.sealing),
        )
    }

    /// Validates, seals and signs a baseline (members with `governance`).
    pub fn prepare_baseline(
        &self,
        baseline: &evals::Baseline,
        share: &Share,
    ) -> Result<Prepared, ClientError> {
        cairn_record::content::validate_baseline(baseline)?;
        let index = cairn_record::content::baseline_index(baseline);
        prepare::record(
            &self.directory,
            &self.creds.member,
            &self.creds.signing,
            pb::RecordKind::Baseline,
            prost::Message::encode_to_vec(baseline),
            Some(index),
            share,
            None,
            None,
        )
    }

    /// Seals and signs an assessment.
    pub fn prepare_assessment(
        &self,
        assessment: &evals::Assessment,
        share: &Share,
    ) -> Result<Prepared, ClientError> {
        prepare::record(
            &self.directory,
            &self.creds.member,
            &self.creds.signing,
            pb::RecordKind::Assessment,
            prost::Message::encode_to_vec(assessment),
            None,
            share,
            None,
            None,
        )
    }

    /// Every evaluation-service record of `kind` this member may see
    /// (active only), following pages.
    pub async fn all_results(
        &self,
        kind: pb::RecordKind,
        evaluation: Option<pb::EvaluationFilter>,
    ) -> Result<Vec<pb::StoredRecord>, ClientError> {
        let filter = pb::RecordFilter {
            kinds: vec![kind as i32],
            evaluation,
            ..Default::default()
        };
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let (records, next) = self.list_results(filter.clone(), 500, token).await?;
            out.extend(records);
            if next.is_empty() {
                return Ok(out);
            }
            token = next;
        }
    }

    /// The baselines in force at `at` that this member can read, with their
    /// record ids.
    pub async fn current_baselines(
        &self,
        at: OffsetDateTime,
    ) -> Result<Vec<(String, evals::Baseline)>, ClientError> {
        let mut out = Vec::new();
        for stored in self.all_results(pb::RecordKind::Baseline, None).await? {
            let Ok(opened) = self.open(&stored) else {
                continue;
            };
            let verify::Content::Baseline(b) = opened.content else {
                continue;
            };
            let from = b
                .effective_from
                .as_ref()
                .and_then(|t| cairn_record::header::timestamp_to_time(t).ok());
            let until = b
                .effective_until
                .as_ref()
                .and_then(|t| cairn_record::header::timestamp_to_time(t).ok());
            if from.is_some_and(|f| f <= at) && until.is_none_or(|u| at < u) {
                out.push((opened.header.record_id.to_string(), b));
            }
        }
        out.sort_by(|a, b| {
            (a.1.jurisdiction.as_str(), a.1.name.as_str())
                .cmp(&(b.1.jurisdiction.as_str(), b.1.name.as_str()))
        });
        Ok(out)
    }

    /// One baseline by id.
    pub async fn baseline(&self, record_id: &str) -> Result<evals::Baseline, ClientError> {
        match self
            .open(&self.get_result(record_id, false).await?)?
            .content
        {
            verify::Content::Baseline(b) => Ok(b),
            _ => Err(ClientError::WrongKind {
                record_id: record_id.to_owned(),
                expected: "a baseline",
            }),
        }
    }

    fn evidence_of(&self, stored: &pb::StoredRecord) -> Option<assess::Evidence> {
        let header = verify::stored_header(stored).ok()?;
        let checked = cairn_record::header::check(&header).ok()?;
        let index = match header.index.and_then(|i| i.fields) {
            Some(pb::index_fields::Fields::Evaluation(e)) => Some(e),
            _ => None,
        };
        let result = match self.open(stored) {
            Ok(Opened {
                content: verify::Content::Result(r),
                ..
            }) => Some(r),
            _ => None,
        };
        Some(assess::Evidence {
            record_id: checked.record_id.to_string(),
            receipt: stored.receipt.clone(),
            created_at: checked.created_at,
            index,
            result,
        })
    }

    /// The evaluation results for `model` this member can see, opened where
    /// it can.
    pub async fn evidence(
        &self,
        model: &assess::ModelRef,
    ) -> Result<Vec<assess::Evidence>, ClientError> {
        let filter = pb::EvaluationFilter {
            model_name: model.name.clone(),
            ..Default::default()
        };
        Ok(self
            .all_results(pb::RecordKind::EvaluationResult, Some(filter))
            .await?
            .iter()
            .filter_map(|s| self.evidence_of(s))
            .collect())
    }

    /// Assesses `model` against baseline `baseline_id` now.
    pub async fn assess(
        &self,
        baseline_id: &str,
        model: &assess::ModelRef,
    ) -> Result<evals::Assessment, ClientError> {
        let baseline = self.baseline(baseline_id).await?;
        let evidence = self.evidence(model).await?;
        Ok(assess::assess(
            baseline_id,
            &baseline,
            model,
            &evidence,
            OffsetDateTime::now_utc(),
        ))
    }

    /// Fetches a published assessment and recomputes it from the results
    /// it cites; returns it, or what does not match.
    pub async fn verify_assessment(
        &self,
        assessment_id: &str,
    ) -> Result<(evals::Assessment, Result<(), Vec<String>>), ClientError> {
        let a = match self
            .open(&self.get_result(assessment_id, false).await?)?
            .content
        {
            verify::Content::Assessment(a) => a,
            _ => {
                return Err(ClientError::WrongKind {
                    record_id: assessment_id.to_owned(),
                    expected: "an assessment",
                });
            }
        };
        let baseline_id = a
            .baseline
            .as_ref()
            .map(|b| b.uuid.clone())
            .ok_or(ClientError::NoBaseline)?;
        let baseline = self.baseline(&baseline_id).await?;
        let mut cited = Vec::new();
        for o in &a.outcomes {
            for c in &o.cited {
                let id = c
                    .record_id
                    .as_ref()
                    .map(|r| r.uuid.clone())
                    .unwrap_or_default();
                if let Ok(stored) = self.get_result(&id, false).await
                    && let Some(e) = self.evidence_of(&stored)
                {
                    cited.push(e);
                }
            }
        }
        let verdict = assess::verify_assessment(&a, &baseline, &cited);
        Ok((a, verdict))
    }

    /// The audit log client.
    pub fn audit(&self) -> AuditLogClient<Channel> {
        self.audit.clone()
    }
}
