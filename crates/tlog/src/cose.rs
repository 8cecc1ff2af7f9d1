//! RFC 9942 COSE Receipts of inclusion for the RFC9162_SHA256 verifiable
//! data structure: a COSE_Sign1 (tagged, EdDSA) whose protected header
//! names the structure (`vds` 395 = 1), whose unprotected header carries
//! the inclusion proof (`vdp` 396 → `-1` → `[bstr .cbor [tree-size,
//! leaf-index, [+ path]]]`), and whose detached payload is the Merkle root
//! the proof leads to. The log's Ed25519 key signs it: COSE's
//! `Sig_structure` begins with the CBOR byte 0x84, which no signed-note
//! text (UTF-8, origin line first) or cosignature message can begin with,
//! so one key serves both without one signature standing for the other.

use coset::cbor::value::Value;
use coset::{
    CborSerializable as _, CoseSign1, CoseSign1Builder, HeaderBuilder, Label,
    TaggedCborSerializable as _, iana,
};

use crate::error::TlogError;
use crate::hash::{HASH_LEN, Hash, leaf_hash};
use crate::note::{ALG_ED25519, NoteSigner, VerifierKey};
use crate::proof;

/// The `vds` header parameter (RFC 9942).
pub const VDS: i64 = 395;
/// The `vdp` header parameter (RFC 9942).
pub const VDP: i64 = 396;
/// The `RFC9162_SHA256` verifiable data structure.
pub const RFC9162_SHA256: i64 = 1;
/// The inclusion proof type within `vdp`.
pub const INCLUSION_PROOF: i64 = -1;

fn bad(what: impl Into<String>) -> TlogError {
    TlogError::Cose(what.into())
}

/// A receipt's claims once verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inclusion {
    /// The tree size the proof is for.
    pub tree_size: u64,
    /// The leaf's index.
    pub leaf_index: u64,
    /// The Merkle root it proves the leaf under.
    pub root: Hash,
}

/// The key id a receipt carries: the log key's `<name>+<hex id>`, as
/// signed notes name it.
pub fn key_id(key: &VerifierKey) -> Vec<u8> {
    format!("{}+{}", key.name(), hex::encode(key.id())).into_bytes()
}

/// A COSE Receipt of inclusion of leaf `leaf_index` in the tree of
/// `tree_size` whose root is `root`, signed by the log's `signer`.
pub fn inclusion_receipt(
    signer: &NoteSigner,
    tree_size: u64,
    leaf_index: u64,
    path: &[Hash],
    root: &Hash,
) -> Result<Vec<u8>, TlogError> {
    if signer.verifier().alg() != ALG_ED25519 {
        return Err(bad("receipts are signed with the log's Ed25519 key"));
    }
    let proof = Value::Array(vec![
        Value::from(tree_size),
        Value::from(leaf_index),
        Value::Array(path.iter().map(|h| Value::Bytes(h.to_vec())).collect()),
    ]);
    let mut encoded = Vec::new();
    coset::cbor::ser::into_writer(&proof, &mut encoded).map_err(|e| bad(e.to_string()))?;
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(key_id(signer.verifier()))
        .value(VDS, Value::from(RFC9162_SHA256))
        .build();
    let proofs = Value::Map(vec![(
        Value::from(INCLUSION_PROOF),
        Value::Array(vec![Value::Bytes(encoded)]),
    )]);
    let unprotected = HeaderBuilder::new().value(VDP, proofs).build();
    let sign1 = CoseSign1Builder::new()
        .protected(protected)
        .unprotected(unprotected)
        .create_detached_signature(root, &[], |tbs| signer.sign_raw(tbs, &[]).signature)
        .build();
    sign1.to_tagged_vec().map_err(|e| bad(e.to_string()))
}

/// Verifies a COSE Receipt of inclusion of `leaf` (the leaf's bytes) with
/// the log's `key`: the structure is RFC9162_SHA256, the proof leads from
/// the leaf to a root, and the signature over that root verifies.
pub fn verify_inclusion_receipt(
    bytes: &[u8],
    key: &VerifierKey,
    leaf: &[u8],
) -> Result<Inclusion, TlogError> {
    let sign1 = CoseSign1::from_tagged_slice(bytes)
        .or_else(|_| CoseSign1::from_slice(bytes))
        .map_err(|e| bad(format!("not a COSE_Sign1: {e}")))?;
    let p = &sign1.protected.header;
    if p.alg
        != Some(coset::RegisteredLabelWithPrivate::Assigned(
            iana::Algorithm::EdDSA,
        ))
    {
        return Err(bad("the algorithm is not EdDSA"));
    }
    let vds = p
        .rest
        .iter()
        .find(|(l, _)| *l == Label::Int(VDS))
        .map(|(_, v)| v);
    if vds != Some(&Value::from(RFC9162_SHA256)) {
        return Err(bad("the verifiable data structure is not RFC9162_SHA256"));
    }
    let (tree_size, leaf_index, path) = inclusion_of(&sign1)?;
    let root = proof::root_from_inclusion(leaf_index, tree_size, &leaf_hash(leaf), &path)?;
    sign1.verify_detached_signature(&root, &[], |sig, tbs| {
        if key.verify_raw(tbs, sig) {
            Ok(())
        } else {
            Err(bad(format!(
                "the signature by {} does not verify",
                key.name()
            )))
        }
    })?;
    Ok(Inclusion {
        tree_size,
        leaf_index,
        root,
    })
}

/// The (single) inclusion proof in the unprotected header.
fn inclusion_of(sign1: &CoseSign1) -> Result<(u64, u64, Vec<Hash>), TlogError> {
    let vdp = sign1
        .unprotected
        .rest
        .iter()
        .find(|(l, _)| *l == Label::Int(VDP))
        .and_then(|(_, v)| v.as_map())
        .ok_or_else(|| bad("no vdp (396) map in the unprotected header"))?;
    let proofs = vdp
        .iter()
        .find(|(k, _)| *k == Value::from(INCLUSION_PROOF))
        .and_then(|(_, v)| v.as_array())
        .ok_or_else(|| bad("no inclusion proofs (-1) in vdp"))?;
    let [Value::Bytes(encoded)] = proofs.as_slice() else {
        return Err(bad("expected exactly one inclusion proof"));
    };
    let value: Value = coset::cbor::de::from_reader(encoded.as_slice())
        .map_err(|e| bad(format!("inclusion proof is not CBOR: {e}")))?;
    let Some([size, index, Value::Array(path)]) = value.as_array().map(Vec::as_slice) else {
        return Err(bad("inclusion proof is not [tree-size, leaf-index, path]"));
    };
    let uint = |v: &Value, what: &str| {
        v.as_integer()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| bad(format!("{what} is not an unsigned integer")))
    };
    let path = path
        .iter()
        .map(|h| {
            h.as_bytes()
                .and_then(|b| <[u8; HASH_LEN]>::try_from(b.as_slice()).ok())
                .ok_or_else(|| bad("a path element is not a 32-byte hash"))
        })
        .collect::<Result<_, _>>()?;
    Ok((uint(size, "tree-size")?, uint(index, "leaf-index")?, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::naive_root;

    fn tree(n: u32) -> (Vec<Vec<u8>>, Vec<Hash>) {
        let leaves: Vec<Vec<u8>> = (0..n).map(|i| format!("leaf {i}").into_bytes()).collect();
        let hashes = leaves.iter().map(|l| leaf_hash(l)).collect();
        (leaves, hashes)
    }

    fn path(hashes: &[Hash], index: u64) -> Vec<Hash> {
        proof::inclusion_plan(index, hashes.len() as u64)
            .unwrap()
            .assemble(|n| {
                let s = n.first_leaf() as usize;
                Ok::<_, ()>(naive_root(&hashes[s..s + (1 << n.level)]))
            })
            .unwrap()
    }

    #[test]
    fn a_receipt_verifies_for_its_leaf_and_for_nothing_else() {
        let signer = NoteSigner::from_seed("log.example", ALG_ED25519, &[9; 32]).unwrap();
        let (leaves, hashes) = tree(11);
        let root = naive_root(&hashes);
        for index in [0u64, 5, 10] {
            let r = inclusion_receipt(&signer, 11, index, &path(&hashes, index), &root).unwrap();
            assert_eq!(r[0], 0xd2, "tag 18, COSE_Sign1");
            let got = verify_inclusion_receipt(&r, signer.verifier(), &leaves[index as usize]);
            assert_eq!(
                got.unwrap(),
                Inclusion {
                    tree_size: 11,
                    leaf_index: index,
                    root
                }
            );
            assert!(verify_inclusion_receipt(&r, signer.verifier(), b"another leaf").is_err());
        }
        // A one-leaf tree: leaf 0, an empty path.
        let r = inclusion_receipt(&signer, 1, 0, &[], &hashes[0]).unwrap();
        assert!(verify_inclusion_receipt(&r, signer.verifier(), &leaves[0]).is_ok());
        let other = NoteSigner::from_seed("log.example", ALG_ED25519, &[8; 32]).unwrap();
        assert!(verify_inclusion_receipt(&r, other.verifier(), &leaves[0]).is_err());
        assert!(verify_inclusion_receipt(b"\xd2\x84", signer.verifier(), &leaves[0]).is_err());
    }
}
