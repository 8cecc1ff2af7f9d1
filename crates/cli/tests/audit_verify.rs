//! `cairn audit verify` against a real audit service and witness on
//! loopback: what passes, and that each failure says exactly what failed.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_audit::{AuditConfig, WitnessConfig};
use cairn_devpki::{self as devpki, DevPki, DevPkiSpec, layout};
use cairn_identity::{Directory, DirectoryHandle};
use cairn_mtls as tls;
use cairn_proto::audit::v1 as pb;
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_proto::audit::v1::witness_client::WitnessClient;

fn config(pki: &Path, data: &Path) -> AuditConfig {
    let svc = pki.join(layout::SERVICES).join("audit");
    AuditConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: cairn_store::StoreLocation::embedded(data),
        directory: pki.join(layout::DIRECTORY),
        tls_cert: svc.join(layout::TLS_CERT),
        tls_key: svc.join(layout::TLS_KEY),
        log_key: svc.join(layout::LOG_KEY),
        origin: devpki::log_origin("cairn.example"),
        witness: None,
        cosigners: vec![],
        metrics_listen: None,
        lease_ttl: cairn_audit::DEFAULT_LEASE_TTL,
    }
}

fn cairn(pki: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .arg("--pki")
        .arg(pki)
        .args(["--member", "eu-aio"])
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_and_fails_precisely() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    DevPki::generate(&DevPkiSpec::example())
        .unwrap()
        .write_to(&pki)
        .unwrap();
    let directory = DirectoryHandle::new(Directory::load(&pki.join(layout::DIRECTORY)).unwrap());
    let log = cairn_audit::start(config(&pki, &tmp.path().join("log")))
        .await
        .unwrap();
    let log_key = log.log_verifier.to_string();
    let mut wconf = config(&pki, &tmp.path().join("witness"));
    wconf.origin = "cairn.example/uk-witness-log".into();
    wconf.witness = Some(WitnessConfig {
        key: pki
            .join(layout::MEMBERS)
            .join("uk-aisi")
            .join(layout::WITNESS_KEY),
        name: devpki::witness_name("cairn.example", "uk-aisi"),
        logs: vec![log_key.clone()],
    });
    let witness = cairn_audit::start(wconf).await.unwrap();
    let witness_key = witness.witness_verifier.clone().unwrap().to_string();

    let intake = devpki::service_tls_identity(&pki, "intake").unwrap();
    let mut appender = AuditLogClient::new(
        tls::channel(
            log.addr,
            tls::client_config(&intake, directory.clone(), "audit").unwrap(),
        )
        .unwrap(),
    );
    let first = appender
        .append_batch(pb::AppendBatchRequest {
            leaves: cairn_testkit::log_leaves((0..40).map(|i| format!("e{i}"))),
        })
        .await
        .unwrap()
        .into_inner()
        .receipts;
    let second = appender
        .append_batch(pb::AppendBatchRequest {
            leaves: cairn_testkit::log_leaves((40..90).map(|i| format!("e{i}"))),
        })
        .await
        .unwrap()
        .into_inner()
        .receipts;

    // The witness cosigns the latest checkpoint (first the earlier one).
    let audit_id = devpki::service_tls_identity(&pki, "audit").unwrap();
    let mut w = WitnessClient::new(
        tls::channel(
            witness.addr,
            tls::client_config(&audit_id, directory.clone(), "audit").unwrap(),
        )
        .unwrap(),
    );
    w.add_checkpoint(pb::AddCheckpointRequest {
        old_size: 0,
        consistency_proof: vec![],
        checkpoint: first[0].checkpoint.clone(),
    })
    .await
    .unwrap();
    let proof = appender
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            from_size: 40,
            to_size: 90,
        })
        .await
        .unwrap()
        .into_inner()
        .proof;
    let line = w
        .add_checkpoint(pb::AddCheckpointRequest {
            old_size: 40,
            consistency_proof: proof,
            checkpoint: second[0].checkpoint.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .cosignatures
        .remove(0);
    let cosigned = format!("{}{line}\n", second[0].checkpoint);
    let cosigned_file = tmp.path().join("cosigned.txt");
    std::fs::write(&cosigned_file, &cosigned).unwrap();
    let trusted = tmp.path().join("trusted.txt");
    std::fs::write(&trusted, &first[0].checkpoint).unwrap();
    let receipt_file = tmp.path().join("receipt.json");
    let r = &first[7];
    std::fs::write(&receipt_file, serde_json::json!({
        "leaf": B64.encode(&r.leaf), "leafIndex": r.leaf_index.to_string(), "checkpoint": r.checkpoint,
        "inclusionProof": r.inclusion_proof.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
    }).to_string()).unwrap();
    let addr = log.addr.to_string();

    // Everything verifies.
    let ok = cairn(
        &pki,
        &[
            "audit",
            "verify",
            "--log-key",
            &log_key,
            "--witness",
            &witness_key,
            "--quorum",
            "1",
            "--checkpoint",
            cosigned_file.to_str().unwrap(),
            "--server",
            &addr,
            "--trusted",
            trusted.to_str().unwrap(),
            "--update-trusted",
            "--receipt",
            receipt_file.to_str().unwrap(),
            "--full",
        ],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let out = text(&ok);
    assert!(out.contains("1 of 1 witnesses cosigned it"), "{out}");
    assert!(
        out.contains("consistent with the trusted checkpoint of size 40"),
        "{out}"
    );
    assert!(out.contains("leaf 7 included"), "{out}");
    assert!(
        out.contains("all 90 entries are log leaves and recompute"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&trusted).unwrap(), cosigned);

    // The quorum is not met by a checkpoint without cosignatures.
    let plain = tmp.path().join("plain.txt");
    std::fs::write(&plain, &second[0].checkpoint).unwrap();
    let o = cairn(
        &pki,
        &[
            "audit",
            "verify",
            "--log-key",
            &log_key,
            "--witness",
            &witness_key,
            "--quorum",
            "1",
            "--checkpoint",
            plain.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("0 of the required 1 witness cosignatures verify"),
        "{}",
        text(&o)
    );

    // Another log key.
    let o = cairn(
        &pki,
        &[
            "audit",
            "verify",
            "--log-key",
            &witness_key,
            "--checkpoint",
            plain.to_str().unwrap(),
        ],
    );
    assert_ne!(o.status.code(), Some(0));

    // A tampered receipt.
    let bad = tmp.path().join("bad.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&receipt_file).unwrap()).unwrap();
    v["leaf"] = serde_json::Value::String(B64.encode(b"not the leaf"));
    std::fs::write(&bad, v.to_string()).unwrap();
    let o = cairn(
        &pki,
        &[
            "audit",
            "verify",
            "--log-key",
            &log_key,
            "--server",
            &addr,
            "--receipt",
            bad.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("leaf 7 is not in its checkpoint"),
        "{}",
        text(&o)
    );

    // A fork: the operator runs a second log on the same key with other
    // history; the trusted checkpoint (size 90) contradicts it.
    let fork = cairn_audit::start(config(&pki, &tmp.path().join("fork")))
        .await
        .unwrap();
    let mut fork_appender = AuditLogClient::new(
        tls::channel(
            fork.addr,
            tls::client_config(&intake, directory.clone(), "audit").unwrap(),
        )
        .unwrap(),
    );
    fork_appender
        .append_batch(pb::AppendBatchRequest {
            leaves: cairn_testkit::log_leaves((0..95).map(|i| format!("other {i}"))),
        })
        .await
        .unwrap();
    let o = cairn(
        &pki,
        &[
            "audit",
            "verify",
            "--log-key",
            &log_key,
            "--server",
            &fork.addr.to_string(),
            "--trusted",
            trusted.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("not consistent with the trusted checkpoint of size 90"),
        "{}",
        text(&o)
    );

    // The current checkpoint from the server, printed.
    let o = cairn(
        &pki,
        &[
            "--json",
            "audit",
            "checkpoint",
            "--server",
            &addr,
            "--log-key",
            &log_key,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["size"], 90);
    assert_eq!(v["verified"], true);
    let o = cairn(
        &pki,
        &[
            "audit",
            "prove",
            "--server",
            &addr,
            "--log-key",
            &log_key,
            "--index",
            "12",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("leaf 12 is in the tree of size 90"));

    for r in [fork, witness, log] {
        r.stop().await.unwrap();
    }
}
