//! The proof a HotPocket 0.6 client checks for its outputs (docs/hotpocket-protocol.md): each
//! user's output hash, a Merkle tree over all users' output hashes of one ledger, and the UNL
//! members' signatures over its root.
//!
//! ```text
//! output_hash(user) := BLAKE3( 0xED | [32] user | output* )      the user's outputs, in order
//! node              := BLAKE3( child_1 | ... | child_k )           k ≤ 16 children
//! root              := the node over the users' output hashes, users sorted by key, grouped
//!                      16 at a time, level by level, until one node remains
//! ```
//!
//! The client recomputes its own output hash, then the root from the tree the node sends (its
//! own leaf left out as `null`, the other branches collapsed to their hashes), and accepts the
//! outputs only with valid signatures over that root from at least 80 % of the UNL. The
//! concatenations have no length prefixes because the client computes them so; the signature
//! over the bare 32-byte root cannot be mistaken for any other signature a node makes, all of
//! which cover a domain tag.

use crate::outputs::Framing;

/// Children per tree node.
pub const FAN_OUT: usize = 16;

/// One user's output hash.
pub fn output_hash(user: &[u8; 32], outputs: &[&[u8]]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[0xED]);
    hasher.update(user);
    for output in outputs {
        hasher.update(output);
    }
    *hasher.finalize().as_bytes()
}

/// One tree node: the hash of its children one after the other.
pub fn node(children: &[[u8; 32]]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for child in children {
        hasher.update(child);
    }
    *hasher.finalize().as_bytes()
}

/// The root over `leaves` (the users' output hashes, users sorted); `None` with no leaves.
pub fn root(leaves: &[[u8; 32]]) -> Option<[u8; 32]> {
    if leaves.is_empty() {
        return None;
    }
    let mut level = leaves.to_vec();
    loop {
        let up: Vec<[u8; 32]> = level.chunks(FAN_OUT).map(node).collect();
        if up.len() == 1 {
            return up.first().copied();
        }
        level = up;
    }
}

/// The tree a client gets: its own leaf as `Own`, the rest as hashes, collapsed away from its
/// path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeNode {
    Hash([u8; 32]),
    Own,
    Branch(Vec<TreeNode>),
}

/// The tree for the leaf at `index` of `leaves`; `None` if `index` is out of range.
pub fn tree_for(leaves: &[[u8; 32]], index: usize) -> Option<Vec<TreeNode>> {
    if index >= leaves.len() {
        return None;
    }
    // Level by level, as `root` builds it: at each level, the node on the path holds the
    // subtree built so far, its siblings are hashes.
    let mut level: Vec<[u8; 32]> = leaves.to_vec();
    let mut position = index;
    let mut path: Vec<TreeNode> = Vec::new();
    let mut first = true;
    loop {
        let chunk_start = position / FAN_OUT * FAN_OUT;
        let chunk_end = (chunk_start + FAN_OUT).min(level.len());
        let mut children = Vec::with_capacity(chunk_end - chunk_start);
        for (i, hash) in level.iter().enumerate().take(chunk_end).skip(chunk_start) {
            if i == position {
                children.push(if first { TreeNode::Own } else { TreeNode::Branch(std::mem::take(&mut path)) });
            } else {
                children.push(TreeNode::Hash(*hash));
            }
        }
        first = false;
        let up: Vec<[u8; 32]> = level.chunks(FAN_OUT).map(node).collect();
        if up.len() == 1 {
            return Some(children);
        }
        path = children;
        position /= FAN_OUT;
        level = up;
    }
}

/// The users of an outcome with their output hashes, sorted by user: the tree's leaves. A
/// user's outputs of one ledger are the messages its output divides into under `framing`.
pub fn leaves(outcome: &crate::Outcome, framing: Framing) -> Vec<([u8; 32], [u8; 32])> {
    let mut leaves: Vec<([u8; 32], [u8; 32])> = outcome
        .outputs
        .iter()
        .map(|(user, data)| (*user, output_hash(user, &crate::outputs::messages(framing, data))))
        .collect();
    leaves.sort_by_key(|(user, _)| *user);
    leaves
}

/// The root of an outcome's tree; `None` when no user has outputs.
pub fn outcome_root(outcome: &crate::Outcome, framing: Framing) -> Option<[u8; 32]> {
    root(&leaves(outcome, framing).iter().map(|(_, h)| *h).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The client's computation (hotpocket-js-client's getMerkleHash), re-done here.
    fn client_root(tree: &[TreeNode], own: &[u8; 32]) -> [u8; 32] {
        let children: Vec<[u8; 32]> = tree
            .iter()
            .map(|n| match n {
                TreeNode::Hash(h) => *h,
                TreeNode::Own => *own,
                TreeNode::Branch(b) => client_root(b, own),
            })
            .collect();
        node(&children)
    }

    #[test]
    fn every_users_tree_leads_to_the_one_root() {
        for n in [1usize, 2, 15, 16, 17, 40, 300] {
            let leaves: Vec<[u8; 32]> = (0..n).map(|i| output_hash(&[i as u8; 32], &[b"out"])).collect();
            let root = root(&leaves).unwrap();
            for i in [0, n / 2, n - 1] {
                let tree = tree_for(&leaves, i).unwrap();
                assert_eq!(client_root(&tree, &leaves[i]), root, "n={n} i={i}");
                let own = format!("{tree:?}").matches("Own").count();
                assert_eq!(own, 1, "n={n} i={i}: the own leaf once");
            }
        }
    }

    #[test]
    fn a_single_users_root_is_the_hash_of_their_output_hash() {
        let leaf = output_hash(&[1; 32], &[b"a", b"b"]);
        assert_eq!(root(&[leaf]), Some(*blake3::hash(&leaf).as_bytes()));
        assert_eq!(tree_for(&[leaf], 0), Some(vec![TreeNode::Own]));
        assert_eq!(tree_for(&[leaf], 1), None);
    }
}
