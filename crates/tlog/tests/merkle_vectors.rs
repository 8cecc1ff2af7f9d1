//! Every file of the transparency-dev/merkle test vectors (see
//! `vectors-merkle/SOURCE.md`): our verifiers must agree with each, positive
//! and negative; for the positive cases over the standard 8-leaf tree, our
//! generator must produce exactly the published proof.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_tlog::hash::{Hash, leaf_hash, naive_root};
use cairn_tlog::proof::{self, NodeId};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Inclusion {
    leaf_idx: u64,
    tree_size: u64,
    root: Option<String>,
    leaf_hash: Option<String>,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Consistency {
    size1: u64,
    size2: u64,
    root1: Option<String>,
    root2: Option<String>,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

fn b64(s: &Option<String>) -> Vec<u8> {
    B64.decode(s.as_deref().unwrap_or_default()).unwrap()
}

fn proof_of(p: &Option<Vec<String>>) -> Vec<Vec<u8>> {
    p.as_deref()
        .unwrap_or_default()
        .iter()
        .map(|s| B64.decode(s).unwrap())
        .collect()
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

fn standard_leaves() -> Vec<Hash> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|h| leaf_hash(&hex::decode(h).unwrap()))
    .collect()
}

fn node(leaves: &[Hash], n: NodeId) -> Option<Hash> {
    let start = n.first_leaf() as usize;
    let end = start + (1usize << n.level);
    (end <= leaves.len()).then(|| naive_root(&leaves[start..end]))
}

#[test]
fn agree_with_every_transparency_dev_vector() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors-merkle");
    let leaves = standard_leaves();
    let (mut inclusion, mut consistency, mut generated) = (0, 0, 0);
    for kind in ["inclusion", "consistency"] {
        let mut paths = Vec::new();
        files(&root.join(kind), &mut paths);
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.strip_prefix(&root).unwrap().display().to_string();
            if kind == "inclusion" {
                let v: Inclusion = serde_json::from_str(&text).unwrap();
                let proof = proof_of(&v.proof);
                let got = proof::verify_inclusion(
                    v.leaf_idx,
                    v.tree_size,
                    &b64(&v.leaf_hash),
                    &proof,
                    &b64(&v.root),
                );
                assert_eq!(got.is_err(), v.want_err, "{name} ({}): {got:?}", v.desc);
                inclusion += 1;
                if !v.want_err
                    && v.tree_size as usize <= leaves.len()
                    && naive_root(&leaves[..v.tree_size as usize]).to_vec() == b64(&v.root)
                {
                    let plan = proof::inclusion_plan(v.leaf_idx, v.tree_size).unwrap();
                    let ours = plan.assemble(|n| node(&leaves, n).ok_or(())).unwrap();
                    assert_eq!(
                        ours.iter().map(|h| h.to_vec()).collect::<Vec<_>>(),
                        proof,
                        "{name}: generated proof differs"
                    );
                    generated += 1;
                }
            } else {
                let v: Consistency = serde_json::from_str(&text).unwrap();
                let proof = proof_of(&v.proof);
                let got = proof::verify_consistency(
                    v.size1,
                    v.size2,
                    &proof,
                    &b64(&v.root1),
                    &b64(&v.root2),
                );
                assert_eq!(got.is_err(), v.want_err, "{name} ({}): {got:?}", v.desc);
                consistency += 1;
                if !v.want_err
                    && v.size2 as usize <= leaves.len()
                    && naive_root(&leaves[..v.size2 as usize]).to_vec() == b64(&v.root2)
                {
                    let plan = proof::consistency_plan(v.size1, v.size2).unwrap();
                    let ours = plan.assemble(|n| node(&leaves, n).ok_or(())).unwrap();
                    assert_eq!(
                        ours.iter().map(|h| h.to_vec()).collect::<Vec<_>>(),
                        proof,
                        "{name}: generated proof differs"
                    );
                    generated += 1;
                }
            }
        }
    }
    // All 196 vector files were read, and the generator was checked.
    assert_eq!(inclusion + consistency, 196);
    assert!(
        generated >= 10,
        "only {generated} proofs were compared with generated ones"
    );
}
