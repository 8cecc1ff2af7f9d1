//! Receipts others can check, with libraries we did not write: the JSON
//! receipt validates against its published schema with Python
//! `jsonschema`, and the RFC 9942 COSE Receipt the audit service signs
//! decodes and verifies with Python `pycose` against the log's key, its
//! root recomputed in Python from the leaf (`tests/python/cose_receipt.py`).
//! Leaf 0 of a one-leaf tree (empty proof) and a leaf with a proof.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use cairn_client::{Share, json};
use cairn_proto::audit::v1 as pb;
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_tests::Net;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_cose_receipts_verify_with_jsonschema_and_pycose() {
    let python = tokio::task::spawn_blocking(|| {
        cairn_tests::python::venv(Path::new(env!("CARGO_TARGET_TMPDIR")))
    })
    .await
    .unwrap();
    let net = Net::start(Duration::from_secs(10)).await;
    let uk = net.client("uk-aisi");
    let incident = json::incident_from_json(include_str!("../../examples/incident.json")).unwrap();
    let mut receipts = Vec::new();
    for _ in 0..5 {
        let p = uk.prepare_incident(&incident, &Share::Green).unwrap();
        receipts.push(uk.submit_incident(&p).await.unwrap().receipt.unwrap());
    }
    let mut audit = AuditLogClient::new(net.channel("eu-aio", net.audit_addr, "audit"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(root.join("tests/python/cose_receipt.py"))
        .arg("--schema")
        .arg(root.join("proto/cairn/common/v1/receipt.schema.json"))
        .args(["--log-key", &net.log_key.to_string()]);
    // The first receipt is leaf 0 of a one-leaf tree; the last has a proof.
    for (i, r) in [&receipts[0], &receipts[4]].into_iter().enumerate() {
        let size = cairn_tlog::checkpoint::open(&r.checkpoint, &net.log_key)
            .unwrap()
            .checkpoint
            .size;
        let cose = audit
            .get_cose_receipt(pb::GetCoseReceiptRequest {
                leaf_index: r.leaf_index,
                tree_size: size,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(cose.tree_size, size);
        let json_file = net.tmp.path().join(format!("receipt-{i}.json"));
        let cose_file = net.tmp.path().join(format!("receipt-{i}.cose"));
        let printed = json::to_json("cairn.common.v1.Receipt", r).unwrap();
        std::fs::write(&json_file, printed.to_string()).unwrap();
        std::fs::write(&cose_file, &cose.receipt).unwrap();
        cmd.arg("--pair").arg(&json_file).arg(&cose_file);
    }
    let out = cmd.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for needle in [
        "has every field (leafIndex 0)",
        "ok cose: leaf 0 of 1, 0 path hashes, EdDSA verified by pycose",
        "ok cose: leaf 4 of 5",
        "another root and a changed signature are refused",
    ] {
        assert!(
            stdout.contains(needle),
            "missing {needle:?}:\n{stdout}\n{stderr}"
        );
    }
    // A leaf beyond the tree is refused, naming the problem.
    let err = audit
        .get_cose_receipt(pb::GetCoseReceiptRequest {
            leaf_index: 9,
            tree_size: 5,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
}
