//! The witness over C2SP tlog-witness HTTPS (`POST /add-checkpoint`): the
//! request body and every answer c2sp.org/tlog-witness defines, and a log
//! gathering cosignatures from a witness named by URL.
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cairn_proto::audit::v1 as pb;
use cairn_tlog::checkpoint::{self, Checkpoint};
use cairn_tlog::cosignature;
use cairn_tlog::hash::leaf_hash;
use cairn_tlog::note::{self, ALG_ED25519, NoteSignature, NoteSigner};
use cairn_tlog::witness_wire::AddCheckpoint;
use common::Net;

fn leaf(label: &str) -> Vec<u8> {
    cairn_testkit::log_leaf("intake", label)
}

/// The body of an add-checkpoint request, written out as the
/// specification shows it.
fn body(old: u64, proof: &[Vec<u8>], checkpoint: &str) -> Vec<u8> {
    let mut out = format!("old {old}\n");
    for h in proof {
        out.push_str(&STANDARD.encode(h));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(checkpoint);
    out.into_bytes()
}

/// A checkpoint whose log signature has one bit flipped (same key name
/// and id, so it claims to be the trusted key and fails to verify).
fn with_bad_signature(cp: &str) -> String {
    let (text, sig) = cp.split_once("\n\n").unwrap();
    let line = sig.lines().next().unwrap();
    let (prefix, b64) = line.rsplit_once(' ').unwrap();
    let mut raw = STANDARD.decode(b64).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    format!("{text}\n\n{prefix} {}\n", STANDARD.encode(raw))
}

/// One catalogued refusal (tests/bad-input.toml, `[[witness_case]]`).
#[derive(serde::Deserialize)]
struct Case {
    input: String,
    http: u16,
    grpc: String,
    says: String,
}

#[derive(serde::Deserialize)]
struct Catalogue {
    witness_case: Vec<Case>,
}

/// A log with checkpoints of sizes 2 and 3, a fork of size 3 signed by the
/// same key, and a witness that holds the checkpoint of size 2.
struct Scene {
    net: Net,
    log: cairn_audit::RunningAudit,
    fork: cairn_audit::RunningAudit,
    witness: cairn_audit::RunningAudit,
    cp2: String,
    cp3: String,
    fork3: String,
    proof: Vec<Vec<u8>>,
}

async fn scene() -> Scene {
    let net = Net::new();
    let log = cairn_audit::start(net.config("audit")).await.unwrap();
    let log_vkey = log.log_verifier.to_string();
    let witness = cairn_audit::start(net.witness_config("witness", "uk-aisi", vec![log_vkey]))
        .await
        .unwrap();
    let mut intake = net.audit_client(&net.service_identity("intake"), log.addr);
    let append = |leaves: Vec<Vec<u8>>| pb::AppendBatchRequest { leaves };
    let r2 = intake
        .append_batch(append(vec![leaf("a"), leaf("b")]))
        .await
        .unwrap()
        .into_inner();
    let r3 = intake.append_batch(append(vec![leaf("c")])).await.unwrap();
    let mut forked = net.config("forked");
    forked.store = cairn_store::StoreLocation::embedded(net.tmp.path().join("forked"));
    let fork = cairn_audit::start(forked).await.unwrap();
    let f = net
        .audit_client(&net.service_identity("intake"), fork.addr)
        .append_batch(append(vec![leaf("a"), leaf("b"), leaf("evil")]))
        .await
        .unwrap();
    let proof = log.log.consistency_proof(2, 3).await.unwrap().1;
    let scene = Scene {
        cp2: r2.receipts[0].checkpoint.clone(),
        cp3: r3.into_inner().receipts[0].checkpoint.clone(),
        fork3: f.into_inner().receipts[0].checkpoint.clone(),
        proof: proof.iter().map(|h| h.to_vec()).collect(),
        net,
        log,
        fork,
        witness,
    };
    let (status, _, answer) = scene.post(body(0, &[], &scene.cp2)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    scene
}

impl Scene {
    async fn post(&self, b: Vec<u8>) -> (u16, String, Vec<u8>) {
        common::https(&self.net, self.witness.addr, "POST", "/add-checkpoint", &b).await
    }

    /// The request a catalogued input names.
    fn request(&self, input: &str) -> (u64, Vec<Vec<u8>>, String) {
        let log_signer = || {
            let der =
                cairn_identity::keys::load_pkcs8_der(&self.net.path("services/audit/log.key.pem"))
                    .unwrap();
            NoteSigner::from_pkcs8(&self.net.origin(), ALG_ED25519, &der).unwrap()
        };
        match input {
            "unknown_origin" => (
                2,
                vec![],
                self.cp3
                    .replacen("cairn.example/audit", "elsewhere.example/log", 1),
            ),
            "bad_log_signature" => (2, self.proof.clone(), with_bad_signature(&self.cp3)),
            "old_size_above_checkpoint" => (3, vec![], self.cp2.clone()),
            "stale_old_size" => (0, vec![], self.cp3.clone()),
            "proof_does_not_verify" => (
                2,
                vec![leaf_hash(b"not this").to_vec(); self.proof.len()],
                self.cp3.clone(),
            ),
            "fork_with_a_valid_log_signature" => (2, self.proof.clone(), self.fork3.clone()),
            "empty_tree_with_another_root" => {
                let cp = Checkpoint {
                    origin: self.net.origin(),
                    size: 0,
                    root: [7; 32],
                    extensions: vec![],
                };
                (0, vec![], cp.sign(&log_signer()).unwrap())
            }
            other => panic!("no such witness input {other:?}"),
        }
    }

    /// The raw HTTP body a catalogued input names.
    fn http_body(&self, input: &str) -> Vec<u8> {
        match input {
            "old_size_with_leading_zero" => format!("old 02\n\n{}", self.cp3).into_bytes(),
            "more_than_63_proof_lines" => body(2, &vec![vec![0; 32]; 64], &self.cp3),
            "no_checkpoint_after_the_proof" => body(2, &self.proof, ""),
            _ => {
                let (old, proof, cp) = self.request(input);
                body(old, &proof, &cp)
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_catalogued_witness_refusal_is_answered_as_specified_and_moves_nothing() {
    let cases = toml::from_str::<Catalogue>(include_str!("../../../tests/bad-input.toml"))
        .unwrap()
        .witness_case;
    assert!(cases.len() >= 10);
    let s = scene().await;
    let mut grpc = s
        .net
        .witness_client(&s.net.service_identity("audit"), s.witness.addr);
    let mut failures = Vec::new();
    for c in &cases {
        let (status, _, answer) = s.post(s.http_body(&c.input)).await;
        let answer = String::from_utf8_lossy(&answer).to_string();
        if status != c.http || !answer.contains(&c.says) {
            failures.push(format!("{} over HTTPS: {status} {answer:?}", c.input));
        }
        if c.grpc.is_empty() {
            continue;
        }
        let (old_size, consistency_proof, checkpoint) = s.request(&c.input);
        let request = pb::AddCheckpointRequest {
            old_size,
            consistency_proof,
            checkpoint,
        };
        match grpc.add_checkpoint(request).await {
            Err(e)
                if format!("{:?}", e.code()).to_uppercase() == c.grpc.replace('_', "")
                    && e.message().contains(&c.says) => {}
            other => failures.push(format!("{} over gRPC: {other:?}", c.input)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing refused moved the witness: it still holds size 2, and says
    // so as the specification says (409, text/x.tlog.size).
    let (status, head, answer) = s.post(body(0, &[], &s.cp3)).await;
    assert_eq!((status, answer), (409, b"2\n".to_vec()));
    assert!(head.contains("content-type: text/x.tlog.size"), "{head}");
    // The right proof is cosigned (the body as cairn's client encodes it);
    // the same checkpoint again is fine; GET is not served there.
    let request = AddCheckpoint::parse(&body(2, &s.proof, &s.cp3)).unwrap();
    let (status, head, answer) = s.post(request.encode().into_bytes()).await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/plain"));
    let text = String::from_utf8(answer).unwrap();
    assert!(text.starts_with('—') && text.ends_with('\n'), "{text:?}");
    let mut n = note::parse(&s.cp3).unwrap();
    n.add_signature(NoteSignature::parse_line(text.trim_end()).unwrap());
    cosignature::verify(&n, s.witness.witness_verifier.as_ref().unwrap()).unwrap();
    assert_eq!(s.post(body(3, &[], &s.cp3)).await.0, 200);
    let (status, _, _) = common::https(&s.net, s.witness.addr, "GET", "/add-checkpoint", b"").await;
    assert_eq!(status, 405);
    for r in [s.fork, s.witness, s.log] {
        r.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_gathers_cosignatures_from_a_witness_named_by_url() {
    let net = Net::new();
    let (witness, grpc_peer) = common::start_witness(&net, "jp-aisi").await;
    let wkey = grpc_peer.key.clone();
    // As a stock witness outside the directory would be named: by URL,
    // its certificate checked against a CA file and the URL's host.
    let ca = net.path("services/ca.pem");
    let mut config = net.config("audit");
    config.cosigners = vec![
        cairn_audit::witnessing::WitnessPeer::parse(&format!(
            "https://localhost:{}/,{wkey},ca={}",
            witness.addr.port(),
            ca.display()
        ))
        .unwrap(),
    ];
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
        let note = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            cosigned.wait_for(|c| c.as_deref().is_some_and(|c| c.starts_with(&r.checkpoint))),
        )
        .await
        .expect("no cosignature within 30 s")
        .unwrap()
        .clone()
        .unwrap();
        let w =
            checkpoint::verify_witnessed(&note, &log.log_verifier, std::slice::from_ref(&wkey), 1)
                .unwrap();
        assert_eq!(w.checkpoint.size, u64::from(round) + 1);
    }
    log.stop().await.unwrap();
    witness.stop().await.unwrap();
}
