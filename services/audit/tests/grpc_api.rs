//! The audit service over real mTLS on loopback: who may append, receipts
//! that verify offline, proofs, entries, errors, health, reflection, tiles
//! over HTTPS, and witness mode.
#![allow(clippy::unwrap_used)]

mod common;

use cairn_proto::audit::v1 as pb;
use cairn_tlog::checkpoint;
use cairn_tlog::hash::leaf_hash;
use cairn_tlog::note::{self, NoteSignature};
use cairn_tlog::{cosignature, proof};
use common::Net;
use tonic::Code;

/// A well-formed leaf as intake appends it.
fn leaf(label: &str) -> Vec<u8> {
    cairn_testkit::log_leaf("intake", label)
}

fn verify_receipt(
    r: &cairn_proto::common::v1::Receipt,
    log_key: &note::VerifierKey,
) -> checkpoint::Checkpoint {
    cairn_testkit::verify_receipt(r, log_key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_proofs_entries_and_errors() {
    let net = Net::new();
    let running = cairn_audit::start(net.config("audit")).await.unwrap();
    let addr = running.addr;
    let key = running.log_verifier.clone();
    let mut intake = net.audit_client(&net.service_identity("intake"), addr);

    // Receipts verify offline against the log key.
    let r = intake
        .append(pb::AppendRequest {
            leaf: leaf("first leaf"),
        })
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    assert_eq!(r.leaf_index, 0);
    verify_receipt(&r, &key);
    let leaves: Vec<Vec<u8>> = (0..300).map(|i| leaf(&format!("leaf {i}"))).collect();
    let batch = intake
        .append_batch(pb::AppendBatchRequest {
            leaves: leaves.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .receipts;
    assert_eq!(batch.len(), 300);
    let cps: Vec<_> = batch.iter().map(|r| verify_receipt(r, &key)).collect();
    assert!(
        cps.iter().all(|c| c == &cps[0]),
        "one batch, one checkpoint"
    );
    assert_eq!(cps[0].size, 301);

    // Who may append.
    for identity in [
        net.member_identity("uk-aisi"),
        net.service_identity("audit"),
    ] {
        let err = net
            .audit_client(&identity, addr)
            .append(pb::AppendRequest { leaf: leaf("x") })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
        assert!(err.message().contains("append right"), "{}", err.message());
    }
    let mut member = net.audit_client(&net.member_identity("jp-aisi"), addr);

    // Reads are open to members.
    let cp_text = member
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner()
        .checkpoint;
    let head = checkpoint::open(&cp_text, &key).unwrap().checkpoint;
    assert_eq!(head.size, 301);
    let by_hash = member
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            leaf: Some(pb::get_inclusion_proof_request::Leaf::LeafHash(
                leaf_hash(&leaf("leaf 7")).to_vec(),
            )),
            tree_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_hash.leaf_index, 8);
    proof::verify_inclusion(
        8,
        301,
        &leaf_hash(&leaf("leaf 7")),
        &by_hash.proof,
        &head.root,
    )
    .unwrap();
    let old = cps[0].clone();
    let c = member
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            from_size: 1,
            to_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let first = verify_receipt(&r, &key);
    proof::verify_consistency(1, c.to_size, &c.proof, &first.root, &old.root).unwrap();
    let page = member
        .get_entries(pb::GetEntriesRequest {
            start: 250,
            end: 0,
            page_size: 20,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.entries.len(), 20);
    assert_eq!(page.next_index, 270);
    assert_eq!(page.entries[0].leaf, leaf("leaf 249"));

    // Bad arguments get precise statuses.
    let cases: Vec<(tonic::Status, Code)> = vec![
        (
            member
                .get_inclusion_proof(pb::GetInclusionProofRequest {
                    leaf: Some(pb::get_inclusion_proof_request::Leaf::LeafIndex(301)),
                    tree_size: 0,
                })
                .await
                .unwrap_err(),
            Code::InvalidArgument,
        ),
        (
            member
                .get_inclusion_proof(pb::GetInclusionProofRequest {
                    leaf: Some(pb::get_inclusion_proof_request::Leaf::LeafIndex(0)),
                    tree_size: 302,
                })
                .await
                .unwrap_err(),
            Code::NotFound,
        ),
        (
            member
                .get_inclusion_proof(pb::GetInclusionProofRequest {
                    leaf: None,
                    tree_size: 0,
                })
                .await
                .unwrap_err(),
            Code::InvalidArgument,
        ),
        (
            member
                .get_inclusion_proof(pb::GetInclusionProofRequest {
                    leaf: Some(pb::get_inclusion_proof_request::Leaf::LeafHash(vec![1; 5])),
                    tree_size: 0,
                })
                .await
                .unwrap_err(),
            Code::InvalidArgument,
        ),
        (
            member
                .get_inclusion_proof(pb::GetInclusionProofRequest {
                    leaf: Some(pb::get_inclusion_proof_request::Leaf::LeafHash(vec![1; 32])),
                    tree_size: 0,
                })
                .await
                .unwrap_err(),
            Code::NotFound,
        ),
        (
            member
                .get_consistency_proof(pb::GetConsistencyProofRequest {
                    from_size: 10,
                    to_size: 5,
                })
                .await
                .unwrap_err(),
            Code::InvalidArgument,
        ),
        (
            member
                .get_consistency_proof(pb::GetConsistencyProofRequest {
                    from_size: 1,
                    to_size: 10_000,
                })
                .await
                .unwrap_err(),
            Code::NotFound,
        ),
        (
            member
                .get_entries(pb::GetEntriesRequest {
                    start: 5,
                    end: 1_000_000,
                    page_size: 0,
                })
                .await
                .unwrap_err(),
            Code::NotFound,
        ),
        (
            member
                .get_entries(pb::GetEntriesRequest {
                    start: 0,
                    end: 0,
                    page_size: 5000,
                })
                .await
                .unwrap_err(),
            Code::InvalidArgument,
        ),
        (
            intake
                .append(pb::AppendRequest { leaf: vec![] })
                .await
                .unwrap_err(),
            Code::InvalidArgument,
        ),
        (
            intake
                .append(pb::AppendRequest {
                    leaf: vec![0; 5000],
                })
                .await
                .unwrap_err(),
            Code::InvalidArgument,
        ),
        (
            intake
                .append_batch(pb::AppendBatchRequest {
                    leaves: vec![leaf("x"); 1001],
                })
                .await
                .unwrap_err(),
            Code::InvalidArgument,
        ),
    ];
    for (i, (status, code)) in cases.into_iter().enumerate() {
        assert_eq!(status.code(), code, "case {i}: {status:?}");
        assert!(!status.message().is_empty());
    }
    // The log parses what it is given: bytes that are not a leaf, and a
    // leaf claiming another service, refuse the whole batch.
    let err = intake
        .append_batch(pb::AppendBatchRequest {
            leaves: vec![leaf("fine"), b"not a leaf".to_vec()],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .starts_with("leaves[1]: log leaf: not a cairn.common.v1.LogLeaf"),
        "{}",
        err.message()
    );
    let err = intake
        .append(pb::AppendRequest {
            leaf: cairn_testkit::log_leaf("evals", "claims to be evals"),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("names service \"evals\"")
            && err.message().contains("service intake appended it"),
        "{}",
        err.message()
    );
    // Refused appends stored nothing.
    let after = checkpoint::open(
        &member
            .get_checkpoint(pb::GetCheckpointRequest {})
            .await
            .unwrap()
            .into_inner()
            .checkpoint,
        &key,
    )
    .unwrap()
    .checkpoint;
    assert_eq!(after.size, 301);

    // Standard health checking and reflection.
    let channel = net.channel(&net.member_identity("eu-aio"), addr);
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "cairn.audit.v1.AuditLog".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let reply = stream.message().await.unwrap().unwrap();
    let Some(
        tonic_reflection::pb::v1::server_reflection_response::MessageResponse::ListServicesResponse(
            list,
        ),
    ) = reply.message_response
    else {
        panic!("unexpected reflection reply");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"cairn.audit.v1.AuditLog".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
    // Only what this port serves: no record services, and no witness
    // service on a log that is not a witness.
    for absent in [
        "cairn.intake.v1.IncidentIntake",
        "cairn.evals.v1.EvaluationResults",
        "cairn.audit.v1.Witness",
    ] {
        assert!(
            !names.contains(&absent.to_owned()),
            "{absent} listed: {names:?}"
        );
    }

    running.stop().await.unwrap();
}

async fn http_get(net: &Net, addr: std::net::SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let (status, _, body) = common::https(net, addr, "GET", &format!("/{path}"), b"").await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_are_served_over_https() {
    let net = Net::new();
    let running = cairn_audit::start(net.config("audit")).await.unwrap();
    let leaves: Vec<Vec<u8>> = (0..260).map(|i| leaf(&format!("entry {i}"))).collect();
    let mut intake = net.audit_client(&net.service_identity("intake"), running.addr);
    intake
        .append_batch(pb::AppendBatchRequest {
            leaves: leaves.clone(),
        })
        .await
        .unwrap();

    let (status, body) = http_get(&net, running.addr, "checkpoint").await;
    assert_eq!(status, 200);
    let cp = checkpoint::open(std::str::from_utf8(&body).unwrap(), &running.log_verifier)
        .unwrap()
        .checkpoint;
    assert_eq!(cp.size, 260);
    let (status, tile) = http_get(&net, running.addr, "tile/0/000").await;
    assert_eq!(status, 200);
    let expected: Vec<u8> = leaves[..256].iter().flat_map(|l| leaf_hash(l)).collect();
    assert_eq!(tile, expected);
    let (status, partial) = http_get(&net, running.addr, "tile/0/001.p/4").await;
    assert_eq!(status, 200);
    assert_eq!(partial.len(), 4 * 32);
    let (status, bundle) = http_get(&net, running.addr, "tile/entries/001.p/4").await;
    assert_eq!(status, 200);
    assert_eq!(
        cairn_tlog::tiles::decode_bundle(&bundle).unwrap(),
        leaves[256..].to_vec()
    );
    assert_eq!(http_get(&net, running.addr, "tile/0/001.p/5").await.0, 404);
    assert_eq!(http_get(&net, running.addr, "tile/0/01").await.0, 400);
    // A path nothing serves is 404, not 200 with a gRPC status.
    assert_eq!(http_get(&net, running.addr, "healthz").await.0, 404);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_cosigns_consistent_checkpoints_and_refuses_forks() {
    let net = Net::new();
    let log = cairn_audit::start(net.config("audit")).await.unwrap();
    let log_vkey = log.log_verifier.to_string();
    let witness = cairn_audit::start(net.witness_config("witness", "uk-aisi", vec![log_vkey]))
        .await
        .unwrap();
    let wkey = witness.witness_verifier.clone().unwrap();
    let mut intake = net.audit_client(&net.service_identity("intake"), log.addr);
    let mut w = net.witness_client(&net.service_identity("audit"), witness.addr);

    let r1 = intake
        .append_batch(pb::AppendBatchRequest {
            leaves: vec![leaf("a"), leaf("b")],
        })
        .await
        .unwrap()
        .into_inner()
        .receipts;
    let cp1 = r1[0].checkpoint.clone();
    let reply = w
        .add_checkpoint(pb::AddCheckpointRequest {
            old_size: 0,
            consistency_proof: vec![],
            checkpoint: cp1.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut cosigned = note::parse(&cp1).unwrap();
    cosigned.add_signature(NoteSignature::parse_line(&reply.cosignatures[0]).unwrap());
    cosignature::verify(&cosigned, &wkey).unwrap();

    let r2 = intake
        .append(pb::AppendRequest { leaf: leaf("c") })
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    let mut member = net.audit_client(&net.member_identity("jp-aisi"), log.addr);
    let proof = member
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            from_size: 2,
            to_size: 3,
        })
        .await
        .unwrap()
        .into_inner()
        .proof;
    w.add_checkpoint(pb::AddCheckpointRequest {
        old_size: 2,
        consistency_proof: proof.clone(),
        checkpoint: r2.checkpoint.clone(),
    })
    .await
    .unwrap();

    // A stale old size names the size the witness holds.
    let err = w
        .add_checkpoint(pb::AddCheckpointRequest {
            old_size: 2,
            consistency_proof: proof,
            checkpoint: r2.checkpoint.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        err.metadata()
            .get(cairn_audit::status::WITNESS_SIZE_METADATA)
            .unwrap(),
        "3"
    );
    // A fork: a checkpoint of the same size with another root, signed by a
    // log key the operator still holds (a second log on the same key).
    let forked_dir = net.tmp.path().join("forked");
    let mut forked_config = net.config("forked");
    forked_config.store = cairn_store::StoreLocation::embedded(forked_dir);
    let fork = cairn_audit::start(forked_config).await.unwrap();
    let mut fork_intake = net.audit_client(&net.service_identity("intake"), fork.addr);
    let f = fork_intake
        .append_batch(pb::AppendBatchRequest {
            leaves: vec![leaf("a"), leaf("b"), leaf("evil")],
        })
        .await
        .unwrap()
        .into_inner()
        .receipts;
    let err = w
        .add_checkpoint(pb::AddCheckpointRequest {
            old_size: 3,
            consistency_proof: vec![],
            checkpoint: f[0].checkpoint.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("fork"), "{}", err.message());
    let unknown = w
        .add_checkpoint(pb::AddCheckpointRequest {
            old_size: 0,
            consistency_proof: vec![],
            checkpoint: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    for r in [fork, witness, log] {
        r.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_gathers_cosignatures_for_its_checkpoints() {
    let net = Net::new();
    let (witness, peer) = common::start_witness(&net, "jp-aisi").await;
    let wkey = peer.key.clone();
    let mut config = net.config("audit");
    config.cosigners = vec![peer];
    let log = cairn_audit::start(config).await.unwrap();
    let mut cosigned = log.cosigned.clone();
    let mut intake = net.audit_client(&net.service_identity("intake"), log.addr);
    for round in 0..3u32 {
        let r = intake
            .append(pb::AppendRequest {
                leaf: leaf(&format!("round {round}")),
            })
            .await
            .unwrap()
            .into_inner()
            .receipt
            .unwrap();
        // Wait (bounded) until the witness has cosigned this checkpoint.
        let note = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            cosigned.wait_for(|c| c.as_deref().is_some_and(|c| c.starts_with(&r.checkpoint))),
        )
        .await
        .expect("no cosignature within 30 s")
        .unwrap()
        .clone()
        .unwrap();
        let served = intake
            .get_checkpoint(pb::GetCheckpointRequest {})
            .await
            .unwrap()
            .into_inner()
            .checkpoint;
        assert_eq!(served, note);
        let w = checkpoint::verify_witnessed(
            &served,
            &log.log_verifier,
            std::slice::from_ref(&wkey),
            1,
        )
        .unwrap();
        assert_eq!(w.checkpoint.size, u64::from(round) + 1);
    }
    log.stop().await.unwrap();
    witness.stop().await.unwrap();
}
