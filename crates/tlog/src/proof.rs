//! RFC 9162 section 2.1 inclusion and consistency proofs.
//!
//! Generation is split so that storage stays outside this crate:
//! [`inclusion_plan`] and [`consistency_plan`] say which perfect-subtree
//! hashes a proof needs (O(log n) of them); the caller fetches those; then
//! [`ProofPlan::assemble`] folds them into the proof. Verification follows
//! the algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2 to the letter.

use crate::error::{TlogError, proof_err};
use crate::hash::{HASH_LEN, Hash, largest_power_of_two_below, node_hash};

/// A perfect subtree: the `index`-th subtree of `2^level` leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves (0 = a leaf).
    pub level: u8,
    /// Position among the subtrees of that height.
    pub index: u64,
}

impl NodeId {
    /// The first leaf the subtree covers.
    pub fn first_leaf(&self) -> u64 {
        self.index << self.level
    }
}

/// The perfect subtrees that make up the leaf range `[begin, end)`, left to
/// right, when `begin` is aligned as in RFC 9162's recursive definitions.
pub fn range_nodes(begin: u64, end: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut at = begin;
    while at < end {
        // The largest aligned block starting at `at` that fits.
        let align = if at == 0 { 63 } else { at.trailing_zeros() };
        let fit = 63 - (end - at).leading_zeros();
        let level = align.min(fit) as u8;
        out.push(NodeId {
            level,
            index: at >> level,
        });
        at += 1u64 << level;
    }
    out
}

/// The hash of a leaf range from the hashes of its [`range_nodes`]: folded
/// right to left, which is RFC 9162's MTH when the range is one of its
/// recursive subranges.
pub fn fold_range(hashes: &[Hash]) -> Option<Hash> {
    let (last, rest) = hashes.split_last()?;
    Some(rest.iter().rev().fold(*last, |acc, h| node_hash(h, &acc)))
}

/// Which subtree hashes a proof needs and how to combine them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofPlan {
    /// Each proof element is the fold of these nodes' hashes.
    elements: Vec<Vec<NodeId>>,
}

impl ProofPlan {
    /// Every node whose hash is needed, deduplicated.
    pub fn nodes(&self) -> Vec<NodeId> {
        let mut all: Vec<NodeId> = self.elements.iter().flatten().copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Number of proof elements.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// Whether the proof is empty.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// Builds the proof with `hash_of` giving each needed node's hash.
    pub fn assemble<E>(
        &self,
        mut hash_of: impl FnMut(NodeId) -> Result<Hash, E>,
    ) -> Result<Vec<Hash>, E> {
        let mut out = Vec::with_capacity(self.elements.len());
        for element in &self.elements {
            let hashes = element
                .iter()
                .map(|n| hash_of(*n))
                .collect::<Result<Vec<_>, E>>()?;
            // Elements are never empty: every range in a plan is non-empty.
            out.push(fold_range(&hashes).unwrap_or([0; HASH_LEN]));
        }
        Ok(out)
    }
}

/// The plan of the inclusion proof of leaf `index` in a tree of `size`
/// (RFC 9162 2.1.3.1, PATH).
pub fn inclusion_plan(index: u64, size: u64) -> Result<ProofPlan, TlogError> {
    if index >= size {
        return Err(proof_err(format!(
            "leaf index {index} is not below tree size {size}"
        )));
    }
    let mut elements = Vec::new();
    path(index, 0, size, &mut elements);
    Ok(ProofPlan { elements })
}

fn path(m: u64, a: u64, b: u64, out: &mut Vec<Vec<NodeId>>) {
    if b - a <= 1 {
        return;
    }
    let k = largest_power_of_two_below(b - a);
    if m < a + k {
        path(m, a, a + k, out);
        out.push(range_nodes(a + k, b));
    } else {
        path(m, a + k, b, out);
        out.push(range_nodes(a, a + k));
    }
}

/// The plan of the consistency proof between tree sizes `old` and `new`
/// (RFC 9162 2.1.4.1, PROOF). Empty when `old` is 0 or equals `new`.
pub fn consistency_plan(old: u64, new: u64) -> Result<ProofPlan, TlogError> {
    if old > new {
        return Err(proof_err(format!(
            "old size {old} is larger than new size {new}"
        )));
    }
    let mut elements = Vec::new();
    if old > 0 && old < new {
        subproof(old, 0, new, true, &mut elements);
    }
    Ok(ProofPlan { elements })
}

fn subproof(m: u64, a: u64, b: u64, complete: bool, out: &mut Vec<Vec<NodeId>>) {
    let size = b - a;
    if m == size {
        if !complete {
            out.push(range_nodes(a, b));
        }
        return;
    }
    let k = largest_power_of_two_below(size);
    if m <= k {
        subproof(m, a, a + k, complete, out);
        out.push(range_nodes(a + k, b));
    } else {
        subproof(m - k, a + k, b, false, out);
        out.push(range_nodes(a, a + k));
    }
}

fn hash_arg(what: &str, bytes: &[u8]) -> Result<Hash, TlogError> {
    bytes.try_into().map_err(|_| {
        proof_err(format!(
            "{what} is {} bytes, expected {HASH_LEN}",
            bytes.len()
        ))
    })
}

fn proof_hashes(proof: &[impl AsRef<[u8]>]) -> Result<Vec<Hash>, TlogError> {
    proof
        .iter()
        .enumerate()
        .map(|(i, p)| hash_arg(&format!("proof[{i}]"), p.as_ref()))
        .collect()
}

/// Verifies an inclusion proof (RFC 9162 2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf_hash: &[u8],
    proof: &[impl AsRef<[u8]>],
    root: &[u8],
) -> Result<(), TlogError> {
    let root = hash_arg("root", root)?;
    if root_from_inclusion(index, size, leaf_hash, proof)? != root {
        return Err(proof_err("inclusion proof leads to another root"));
    }
    Ok(())
}

/// The root an inclusion proof leads to from `leaf_hash` at `index` in a
/// tree of `size` (RFC 9162 2.1.3.2, without the final comparison).
pub fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf_hash: &[u8],
    proof: &[impl AsRef<[u8]>],
) -> Result<Hash, TlogError> {
    let leaf = hash_arg("leaf hash", leaf_hash)?;
    let proof = proof_hashes(proof)?;
    if index >= size {
        return Err(proof_err(format!(
            "leaf index {index} is not below tree size {size}"
        )));
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = leaf;
    for p in &proof {
        if s == 0 {
            return Err(proof_err("inclusion proof is too long"));
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(proof_err("inclusion proof is too short"));
    }
    Ok(r)
}

/// Verifies a consistency proof (RFC 9162 2.1.4.2). Beyond the RFC's
/// `0 < old < new` case, as transparency-dev/merkle does: equal sizes need
/// an empty proof and identical roots; a proof from size 0 is refused as
/// meaningless (a witness accepts a log's first checkpoint by its own rule,
/// without calling this).
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[impl AsRef<[u8]>],
    old_root: &[u8],
    new_root: &[u8],
) -> Result<(), TlogError> {
    if old > new {
        return Err(proof_err(format!(
            "old size {old} is larger than new size {new}"
        )));
    }
    if old == 0 {
        return Err(proof_err(
            "a consistency proof from the empty tree is meaningless",
        ));
    }
    if old == new {
        if !proof.is_empty() {
            return Err(proof_err("sizes are equal but the proof is not empty"));
        }
        if old_root != new_root {
            return Err(proof_err("sizes are equal but the roots differ"));
        }
        return Ok(());
    }
    let first = hash_arg("old root", old_root)?;
    let second = hash_arg("new root", new_root)?;
    let proof = proof_hashes(proof)?;
    if proof.is_empty() {
        return Err(proof_err("consistency proof is empty"));
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(first);
    }
    path.extend_from_slice(&proof);
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return Err(proof_err("consistency proof is too long"));
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(proof_err("consistency proof is too short"));
    }
    if fr != first {
        return Err(proof_err("consistency proof does not lead to the old root"));
    }
    if sr != second {
        return Err(proof_err("consistency proof does not lead to the new root"));
    }
    Ok(())
}

/// The root of a tree of `size` leaves: the plan of the nodes it needs.
pub fn root_nodes(size: u64) -> Vec<NodeId> {
    range_nodes(0, size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{leaf_hash, naive_root};
    use proptest::prelude::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// Node hashes computed naively from the leaves.
    fn node(leaves: &[Hash], n: NodeId) -> Hash {
        let start = n.first_leaf() as usize;
        naive_root(&leaves[start..start + (1usize << n.level)])
    }

    #[test]
    fn range_nodes_cover_exactly() {
        assert_eq!(range_nodes(0, 8), vec![NodeId { level: 3, index: 0 }]);
        assert_eq!(
            range_nodes(8, 13),
            vec![
                NodeId { level: 2, index: 2 },
                NodeId {
                    level: 0,
                    index: 12
                }
            ]
        );
        assert_eq!(range_nodes(0, 7).len(), 3);
        assert!(range_nodes(5, 5).is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Against a naive recomputation, for sizes up to 10^4: generated
        /// proofs verify, needed nodes are O(log n), and tampering fails.
        #[test]
        fn inclusion_matches_naive(size in 1u64..10_000, pick in any::<u64>()) {
            let all = leaves(size);
            let root = naive_root(&all);
            let index = pick % size;
            let plan = inclusion_plan(index, size).unwrap();
            prop_assert!(plan.nodes().len() <= 2 * 64);
            let proof = plan.assemble(|n| Ok::<_, ()>(node(&all, n))).unwrap();
            prop_assert!(proof.len() <= 64 - (size.leading_zeros() as usize) + 1);
            verify_inclusion(index, size, &all[index as usize], &proof, &root).unwrap();
            if !proof.is_empty() {
                let mut bad = proof.clone();
                bad[0][0] ^= 1;
                prop_assert!(verify_inclusion(index, size, &all[index as usize], &bad, &root).is_err());
            }
            // Another leaf at the same position does not verify.
            let other = leaf_hash(b"not in the tree");
            prop_assert!(verify_inclusion(index, size, &other, &proof, &root).is_err());
        }

        #[test]
        fn consistency_matches_naive(new in 1u64..10_000, pick in any::<u64>()) {
            let all = leaves(new);
            let old = 1 + pick % new;
            let plan = consistency_plan(old, new).unwrap();
            let proof = plan.assemble(|n| Ok::<_, ()>(node(&all, n))).unwrap();
            let (r1, r2) = (naive_root(&all[..old as usize]), naive_root(&all));
            verify_consistency(old, new, &proof, &r1, &r2).unwrap();
            if old < new {
                let mut bad = proof.clone();
                let i = (pick as usize) % bad.len();
                bad[i][31] ^= 0x80;
                prop_assert!(verify_consistency(old, new, &bad, &r1, &r2).is_err());
                prop_assert!(verify_consistency(old, new, &proof, &r2, &r1).is_err());
            }
        }

        #[test]
        fn root_nodes_fold_to_the_root(size in 1u64..10_000) {
            let all = leaves(size);
            let hashes: Vec<Hash> = root_nodes(size).iter().map(|n| node(&all, *n)).collect();
            prop_assert_eq!(fold_range(&hashes).unwrap(), naive_root(&all));
        }

        #[test]
        fn verifiers_never_panic(index in any::<u64>(), size in any::<u64>(), proof in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..70), a in proptest::collection::vec(any::<u8>(), 0..40), b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = verify_inclusion(index, size, &a, &proof, &b);
            let _ = verify_consistency(index, size, &proof, &a, &b);
            let _ = inclusion_plan(index % 1_000_000_007, size % 1_000_000_007);
        }
    }
}
