//! The canonical bytes every consensus signature covers.
//!
//! Outside verifiers (`hotpocket verify`, other implementations) depend on this layout, so it
//! is fixed; a change needs a new domain tag (`.../v3`). Every message starts with a one-byte
//! length followed by an ASCII domain tag naming its kind, so that a signature of one kind can
//! never be replayed as another; integers are fixed-width big-endian; optional fields are a
//! flag byte (0 = absent, 1 = present) followed by the field, zero-filled when absent, so every
//! kind has one fixed length.
//!
//! Every kind names the network right after its tag: the 32-byte [`NetworkId`] (SHA-256 of the
//! contract id, `hp_cfg::Config::network_id`, shared by all nodes of one network), so that a
//! vote, proposal, result or certificate signed in one network never verifies in another.
//!
//! | kind | tag | bytes after `tag_len:u8 ‖ tag` | total |
//! |---|---|---|---|
//! | prevote | `hotpocket/prevote/v2` | `network_id:[32] ‖ height:u64 ‖ round:u32 ‖ has_value:u8 ‖ value_id:[32]` | 98 |
//! | precommit | `hotpocket/precommit/v2` | `network_id:[32] ‖ height:u64 ‖ round:u32 ‖ has_value:u8 ‖ value_id:[32]` | 100 |
//! | proposal | `hotpocket/proposal/v2` | `network_id:[32] ‖ height:u64 ‖ round:u32 ‖ has_valid_round:u8 ‖ valid_round:u32 ‖ value_id:[32]` | 103 |
//! | result | `hotpocket/result/v2` | `network_id:[32] ‖ height:u64 ‖ state_hash:[32] ‖ outputs_hash:[32]` | 124 |
//!
//! The `v1` tags (the same layouts without `network_id`) are retired: nothing signs or accepts
//! them.
//!
//! A nil vote has `has_value = 0` and 32 zero bytes. A proposal with no valid round (the
//! paper's `-1`) has `has_valid_round = 0` and `valid_round = 0`. The validator's index is not
//! signed: the key that verifies the signature identifies the validator. Signatures are plain
//! Ed25519 (RFC 8032) over these bytes and are verified strictly (`verify_strict`).

use crate::types::{Hash, Height, HexHash, Round, VoteKind};

/// The network a signature belongs to: 32 bytes every node of one network shares (SHA-256 of
/// the contract id, `hp_cfg::Config::network_id`). It is signed right after the domain tag of
/// every kind, so nothing signed for one network verifies in another.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(pub [u8; 32]);

impl NetworkId {
    /// The id's bytes, as signed.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for NetworkId {
    fn from(bytes: [u8; 32]) -> Self {
        NetworkId(bytes)
    }
}

impl std::fmt::Debug for NetworkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NetworkId({})", HexHash(&self.0))
    }
}

impl std::fmt::Display for NetworkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", HexHash(&self.0))
    }
}

/// Domain tag of prevotes.
pub const PREVOTE_TAG: &[u8] = b"hotpocket/prevote/v2";
/// Domain tag of precommits.
pub const PRECOMMIT_TAG: &[u8] = b"hotpocket/precommit/v2";
/// Domain tag of proposals.
pub const PROPOSAL_TAG: &[u8] = b"hotpocket/proposal/v2";
/// Domain tag of post-execution result votes.
pub const RESULT_TAG: &[u8] = b"hotpocket/result/v2";

/// Appends the tag with its one-byte length prefix (every tag is far shorter than 256 bytes),
/// then the network id.
fn start(tag: &[u8], network: &NetworkId, capacity: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + tag.len() + 32 + capacity);
    bytes.push(tag.len() as u8);
    bytes.extend_from_slice(tag);
    bytes.extend_from_slice(network.as_bytes());
    bytes
}

/// Appends a flag byte and the 32-byte hash, zero-filled for `None`.
fn push_optional_hash(bytes: &mut Vec<u8>, hash: Option<&Hash>) {
    match hash {
        Some(hash) => {
            bytes.push(1);
            bytes.extend_from_slice(hash);
        }
        None => {
            bytes.push(0);
            bytes.extend_from_slice(&[0; 32]);
        }
    }
}

/// The bytes a prevote or precommit signature covers in `network`.
pub fn vote_bytes(network: &NetworkId, kind: VoteKind, height: Height, round: Round, value: Option<&Hash>) -> Vec<u8> {
    let tag = match kind {
        VoteKind::Prevote => PREVOTE_TAG,
        VoteKind::Precommit => PRECOMMIT_TAG,
    };
    let mut bytes = start(tag, network, 8 + 4 + 1 + 32);
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&round.to_be_bytes());
    push_optional_hash(&mut bytes, value);
    bytes
}

/// The bytes a proposal signature covers in `network`; `valid_round` `None` is the paper's
/// `-1`.
pub fn proposal_bytes(
    network: &NetworkId,
    height: Height,
    round: Round,
    valid_round: Option<Round>,
    value_id: &Hash,
) -> Vec<u8> {
    let mut bytes = start(PROPOSAL_TAG, network, 8 + 4 + 1 + 4 + 32);
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&round.to_be_bytes());
    bytes.push(u8::from(valid_round.is_some()));
    bytes.extend_from_slice(&valid_round.unwrap_or(0).to_be_bytes());
    bytes.extend_from_slice(value_id);
    bytes
}

/// The bytes a result vote signature covers in `network`.
pub fn result_bytes(network: &NetworkId, height: Height, state_hash: &Hash, outputs_hash: &Hash) -> Vec<u8> {
    let mut bytes = start(RESULT_TAG, network, 8 + 32 + 32);
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(state_hash);
    bytes.extend_from_slice(outputs_hash);
    bytes
}
