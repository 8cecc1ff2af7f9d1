//! Directory changes for tests: proposals and approvals signed as the dev
//! network's members, the Governance client, and the history replayed.

use cairn_devpki::{DevPki, DevPkiSpec, MemberSpec};
use cairn_identity::directory::DirectoryDocument;
use cairn_identity::genesis::Genesis;
use cairn_proto::audit::v1 as audit;
use cairn_proto::audit::v1::governance_client::GovernanceClient;
use cairn_proto::intake::v1::incident_intake_client::IncidentIntakeClient;
use cairn_record::RecordDraft;
use cairn_record::governance::Governed;
use cairn_record::pb::{self, RecordKind, SharingLabel};
use cairn_record::record::sha256;
use prost::Message as _;
use time::format_description::well_known::Rfc3339;
use tonic::transport::Channel;

use crate::Net;

impl Net {
    /// A Governance client acting as `identity_of` (a member or a service).
    pub fn governance(&self, identity_of: &str) -> GovernanceClient<Channel> {
        GovernanceClient::new(self.channel(identity_of, self.audit_addr, "audit"))
    }

    /// The genesis the network was founded with.
    pub fn genesis_text(&self) -> String {
        std::fs::read_to_string(self.pki.join(cairn_devpki::layout::DIRECTORY)).unwrap()
    }

    /// The genesis's directory document, to change.
    pub fn genesis_document(&self) -> DirectoryDocument {
        let g = Genesis::parse(&self.genesis_text(), "genesis").unwrap();
        toml::from_str(&g.directory).unwrap()
    }

    /// The history as the audit service serves it, replayed from its
    /// genesis (panics if it does not replay).
    pub async fn governed(&self, member: &str) -> (Governed, Vec<audit::DirectoryChangeEntry>) {
        let mut client = self.governance(member);
        let mut changes = Vec::new();
        let genesis = loop {
            let page = client
                .get_directory_history(audit::GetDirectoryHistoryRequest {
                    from: changes.len() as u64,
                    page_size: 0,
                })
                .await
                .unwrap()
                .into_inner();
            let done = page.next >= page.total;
            changes.extend(page.changes);
            if done {
                break page.genesis;
            }
        };
        let genesis = String::from_utf8(genesis).unwrap();
        let g = Governed::replay(
            &genesis,
            changes
                .iter()
                .map(|e| (e.record.as_ref().unwrap(), e.leaf_index)),
        )
        .unwrap();
        (g, changes)
    }

    /// A directory change record with `content`, signed by `author`.
    pub fn change(
        &self,
        author: &str,
        content: &pb::DirectoryChange,
        label: SharingLabel,
    ) -> pb::SignedRecord {
        let recipients: &[&str] = if label == SharingLabel::TlpClear {
            &[]
        } else {
            &[author]
        };
        let draft: RecordDraft = self.draft(
            RecordKind::DirectoryChange,
            label,
            recipients,
            content.encode_to_vec(),
            None,
        );
        self.sign(author, &draft)
    }

    /// A proposal of `doc` with `quorum` against the directory `previous`
    /// (its digest), signed by `author`.
    pub fn proposal(
        &self,
        author: &str,
        doc: &DirectoryDocument,
        previous: &[u8],
        quorum: u32,
    ) -> pb::SignedRecord {
        let content = pb::DirectoryChange {
            directory: doc.to_toml().into_bytes(),
            previous_digest: previous.to_vec(),
            summary: "a test change".into(),
            quorum,
            ..Default::default()
        };
        self.change(author, &content, SharingLabel::TlpClear)
    }

    /// An approval by `author` of `proposal` (which proposes `doc`) against
    /// the directory `previous`.
    pub fn approval(
        &self,
        author: &str,
        proposal: &pb::SignedRecord,
        doc: &DirectoryDocument,
        previous: &[u8],
    ) -> pb::SignedRecord {
        let content = pb::DirectoryChange {
            previous_digest: previous.to_vec(),
            approves: Some(pb::RecordId {
                uuid: record_id(proposal),
            }),
            proposed_digest: sha256(doc.to_toml().as_bytes()).to_vec(),
            ..Default::default()
        };
        self.change(author, &content, SharingLabel::TlpClear)
    }

    /// Submits a directory change as `as_`.
    /// Proposes `doc` as uk-aisi and approves it as eu-aio: in force.
    pub async fn change_to(&self, doc: &DirectoryDocument) {
        let (g, _) = self.governed("uk-aisi").await;
        let previous = *g.current().directory.digest();
        let proposal = self.proposal("uk-aisi", doc, &previous, 2);
        self.submit_change("uk-aisi", proposal.clone())
            .await
            .unwrap();
        let approval = self.approval("eu-aio", &proposal, doc, &previous);
        let r = self.submit_change("eu-aio", approval).await.unwrap();
        assert_eq!(r.standing(), audit::ChangeStanding::Effective);
    }

    /// Waits (at most 10 s) until intake runs directory `version`.
    pub async fn intake_at(&self, version: u64) {
        let mut v = self.intake.directory_version().unwrap();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            v.wait_for(|v| *v >= version),
        )
        .await
        .expect("intake did not follow the directory within 10 s")
        .unwrap();
    }

    pub async fn submit_change(
        &self,
        as_: &str,
        record: pb::SignedRecord,
    ) -> Result<audit::SubmitDirectoryChangeResponse, tonic::Status> {
        self.governance(as_)
            .submit_directory_change(audit::SubmitDirectoryChangeRequest {
                record: Some(record),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// A new organisation with its own CA and keys, not yet in the
    /// directory (its entry is `.directory.members[0]`).
    pub fn new_organisation(&self, id: &str, name: &str, jurisdiction: &str) -> DevPki {
        let spec = DevPkiSpec {
            trust_domain: self.directory.trust_domain().into(),
            members: vec![MemberSpec {
                id: id.into(),
                name: name.into(),
                jurisdiction: jurisdiction.into(),
                roles: vec![cairn_identity::Role::Submitter],
            }],
            services: vec![],
        };
        DevPki::generate(&spec).unwrap()
    }

    /// An intake client connecting with `identity`.
    pub fn intake_as(&self, identity: &cairn_mtls::TlsIdentity) -> IncidentIntakeClient<Channel> {
        let config = cairn_mtls::client_config(identity, self.handle.clone(), "intake").unwrap();
        IncidentIntakeClient::new(cairn_mtls::channel(self.intake.addr, config).unwrap())
    }
}

/// The record id of a signed record.
pub fn record_id(r: &pb::SignedRecord) -> String {
    let env = cairn_record::record::decode_envelope(&r.envelope).unwrap();
    let h = cairn_record::record::decode_header(&env.payload).unwrap();
    h.record_id.unwrap().uuid
}

/// The directory change refusals of `tests/bad-input.toml`: sends the
/// broken request named `input` as `as_`; `None` for an input that is not
/// one of them.
pub async fn send_bad_change(
    net: &Net,
    input: &str,
    as_: &str,
) -> Option<Result<(), tonic::Status>> {
    let digest = net.directory.digest().to_vec();
    let doc = net.genesis_document();
    let mut renamed = doc.clone();
    renamed.members[0].name = "renamed".into();
    let proposal = |doc: &DirectoryDocument, quorum| net.proposal("uk-aisi", doc, &digest, quorum);
    let content = |f: &dyn Fn(&mut pb::DirectoryChange)| {
        let mut c = pb::DirectoryChange {
            directory: renamed.to_toml().into_bytes(),
            previous_digest: digest.clone(),
            quorum: 2,
            ..Default::default()
        };
        f(&mut c);
        c
    };
    let clear = |c: pb::DirectoryChange| net.change("uk-aisi", &c, SharingLabel::TlpClear);
    let record = match input {
        "change_missing_record" => None,
        "change_not_clear" => {
            Some(net.change("uk-aisi", &content(&|_| {}), SharingLabel::TlpGreen))
        }
        "change_wrong_kind" => Some(net.incident("uk-aisi", SharingLabel::TlpClear, &[], "x").1),
        "change_stale" => Some(clear(content(&|c| {
            c.previous_digest = sha256(b"old").to_vec()
        }))),
        "change_unknown_proposal" => Some(clear(content(&|c| {
            c.directory.clear();
            c.quorum = 0;
            c.approves = Some(pb::RecordId {
                uuid: uuid::Uuid::now_v7().to_string(),
            });
            c.proposed_digest = sha256(b"x").to_vec();
        }))),
        "change_bad_directory" => Some(clear(content(&|c| {
            c.directory = b"version = 1\ntrust_domain = \"Not A Domain\"\n".to_vec()
        }))),
        "change_other_trust_domain" => {
            let mut other = renamed.clone();
            other.trust_domain = "other.example".into();
            Some(proposal(&other, 2))
        }
        "change_no_change" => Some(proposal(&doc, 2)),
        "change_quorum_unmeetable" => Some(proposal(&renamed, 4)),
        "change_below_quorum" => {
            let mut fewer = doc.clone();
            for m in fewer.members.iter_mut().filter(|m| m.id != "uk-aisi") {
                m.roles.retain(|r| *r != cairn_identity::Role::Governance);
            }
            Some(proposal(&fewer, 2))
        }
        "change_signed_by_other" | "change_from_service" => {
            Some(net.change("jp-aisi", &content(&|_| {}), SharingLabel::TlpClear))
        }
        "change_shape" => Some(clear(content(&|c| c.directory.clear()))),
        "change_genesis_proposed" => Some(clear(content(&|c| {
            c.directory = net.genesis_text().into_bytes()
        }))),
        "change_key_rebound"
        | "change_window_in_past"
        | "change_compromise_in_future"
        | "change_new_key_compromised" => Some(proposal(&key_edit(&doc, input), 2)),
        "change_bad_certificate_serial" => {
            let mut bad = doc.clone();
            bad.members[0].revoked_certificates = vec!["not-a-serial".into()];
            Some(proposal(&bad, 2))
        }
        "change_summary_too_long" => Some(clear(content(&|c| c.summary = "s".repeat(1001)))),
        "change_bad_signature" => {
            let mut r = clear(content(&|_| {}));
            let mut env = pb::Envelope::decode(r.envelope.as_slice()).unwrap();
            env.signatures[0].sig[0] ^= 1;
            r.envelope = env.encode_to_vec();
            Some(r)
        }
        "change_created_in_future" => {
            let mut draft = net.draft(
                RecordKind::DirectoryChange,
                SharingLabel::TlpClear,
                &[],
                content(&|_| {}).encode_to_vec(),
                None,
            );
            draft.created_at = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
            Some(net.sign("uk-aisi", &draft))
        }
        "change_supersedes" => {
            let mut draft = net.draft(
                RecordKind::DirectoryChange,
                SharingLabel::TlpClear,
                &[],
                content(&|_| {}).encode_to_vec(),
                None,
            );
            draft.supersedes = Some(uuid::Uuid::now_v7());
            Some(net.sign("uk-aisi", &draft))
        }
        "history_page_too_large" => {
            let r = net
                .governance(as_)
                .get_directory_history(audit::GetDirectoryHistoryRequest {
                    from: 0,
                    page_size: 101,
                })
                .await;
            return Some(r.map(drop));
        }
        _ => return None,
    };
    let r = net
        .governance(as_)
        .submit_directory_change(audit::SubmitDirectoryChangeRequest { record })
        .await;
    Some(r.map(drop))
}

/// `doc` with jp-aisi's signing keys changed the way bad-input case
/// `input` names.
fn key_edit(doc: &DirectoryDocument, input: &str) -> DirectoryDocument {
    let mut doc = doc.clone();
    let other_key = doc.members[0].signing_keys[0].public_key.clone();
    let Some(m) = doc.members.iter_mut().find(|m| m.id == "jp-aisi") else {
        return doc;
    };
    let key = &mut m.signing_keys[0];
    let later = |hours| {
        let from = time::OffsetDateTime::parse(&key.valid_from, &Rfc3339).unwrap();
        (from + time::Duration::hours(hours))
            .format(&Rfc3339)
            .unwrap()
    };
    match input {
        "change_key_rebound" => key.public_key = other_key,
        "change_window_in_past" => key.valid_until = Some(later(1)),
        "change_compromise_in_future" => key.compromised_since = Some(later(24 * 365)),
        _ => {
            let mut fresh = key.clone();
            fresh.id = "jp-aisi-sign-new".into();
            fresh.public_key = other_key;
            fresh.compromised_since = Some(later(1));
            m.signing_keys.push(fresh);
        }
    }
    doc
}
