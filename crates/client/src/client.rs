//! Connecting as a member and calling the services.

use std::net::SocketAddr;
use std::path::Path;

use cairn_identity::devpki::MemberFiles;
use cairn_identity::tls::{self, TlsIdentity};
use cairn_identity::{Directory, DirectoryHandle, SealingKey, SigningKey};
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_proto::evals::v1 as evals;
use cairn_proto::evals::v1::evaluation_results_client::EvaluationResultsClient;
use cairn_proto::intake::v1 as intake;
use cairn_proto::intake::v1::incident_intake_client::IncidentIntakeClient;
use cairn_record::pb;
use cairn_tlog::note::VerifierKey;
use time::OffsetDateTime;
use tonic::transport::Channel;

use crate::error::ClientError;
use crate::prepare::{self, Prepared, Share};
use crate::verify::{self, Opened};

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
        let chan = |addr, service: &str| -> Result<Channel, ClientError> {
            Ok(tls::channel(
                addr,
                tls::client_config(&creds.tls, handle.clone(), service)?,
            )?)
        };
        Ok(Self {
            intake: IncidentIntakeClient::new(chan(endpoints.intake, "intake")?),
            evals: EvaluationResultsClient::new(chan(endpoints.evals, "evals")?),
            audit: AuditLogClient::new(chan(endpoints.audit, "audit")?),
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
        let verified_in_tree_of = self.check(&prepared.record, &out.receipt)?;
        Ok(Submitted {
            record_id: prepared.record_id.clone(),
            receipt: out.receipt,
            verified_in_tree_of,
            duplicate: out.duplicate,
            receipt_pending: out.receipt_pending,
            reporting_deadline: prepared.reporting_deadline,
        })
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
        let verified_in_tree_of = self.check(&prepared.record, &out.receipt)?;
        Ok(Submitted {
            record_id: prepared.record_id.clone(),
            receipt: out.receipt,
            verified_in_tree_of,
            duplicate: out.duplicate,
            receipt_pending: out.receipt_pending,
            reporting_deadline: None,
        })
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
            .ok_or_else(|| ClientError::Usage("empty response".into()))
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
            .ok_or_else(|| ClientError::Usage("empty response".into()))
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

    /// Verifies and opens a fetched record (and its receipt, when the log
    /// key is known).
    pub fn open(&self, stored: &pb::StoredRecord) -> Result<Opened, ClientError> {
        let record = stored
            .record
            .as_ref()
            .ok_or_else(|| ClientError::Usage("no record".into()))?;
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

    /// The audit log client.
    pub fn audit(&self) -> AuditLogClient<Channel> {
        self.audit.clone()
    }
}
