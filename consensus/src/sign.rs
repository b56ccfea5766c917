//! The canonical bytes every consensus signature covers.
//!
//! Outside verifiers (`hotpocket verify`, other implementations) depend on this layout, so it
//! is fixed; a change needs a new domain tag (`.../v2`). Every message starts with a one-byte
//! length followed by an ASCII domain tag naming its kind, so that a signature of one kind can
//! never be replayed as another; integers are fixed-width big-endian; optional fields are a
//! flag byte (0 = absent, 1 = present) followed by the field, zero-filled when absent, so every
//! kind has one fixed length.
//!
//! | kind | tag | bytes after `tag_len:u8 ‖ tag` | total |
//! |---|---|---|---|
//! | prevote | `hotpocket/prevote/v1` | `height:u64 ‖ round:u32 ‖ has_value:u8 ‖ value_id:[32]` | 66 |
//! | precommit | `hotpocket/precommit/v1` | `height:u64 ‖ round:u32 ‖ has_value:u8 ‖ value_id:[32]` | 68 |
//! | proposal | `hotpocket/proposal/v1` | `height:u64 ‖ round:u32 ‖ has_valid_round:u8 ‖ valid_round:u32 ‖ value_id:[32]` | 71 |
//! | result | `hotpocket/result/v1` | `height:u64 ‖ state_hash:[32] ‖ outputs_hash:[32]` | 92 |
//!
//! A nil vote has `has_value = 0` and 32 zero bytes. A proposal with no valid round (the
//! paper's `-1`) has `has_valid_round = 0` and `valid_round = 0`. The validator's index is not
//! signed: the key that verifies the signature identifies the validator. Signatures are plain
//! Ed25519 (RFC 8032) over these bytes and are verified strictly (`verify_strict`).

use crate::types::{Hash, Height, Round, VoteKind};

/// Domain tag of prevotes.
pub const PREVOTE_TAG: &[u8] = b"hotpocket/prevote/v1";
/// Domain tag of precommits.
pub const PRECOMMIT_TAG: &[u8] = b"hotpocket/precommit/v1";
/// Domain tag of proposals.
pub const PROPOSAL_TAG: &[u8] = b"hotpocket/proposal/v1";
/// Domain tag of post-execution result votes.
pub const RESULT_TAG: &[u8] = b"hotpocket/result/v1";

/// Appends the tag with its one-byte length prefix (every tag is far shorter than 256 bytes).
fn start(tag: &[u8], capacity: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + tag.len() + capacity);
    bytes.push(tag.len() as u8);
    bytes.extend_from_slice(tag);
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

/// The bytes a prevote or precommit signature covers.
pub fn vote_bytes(kind: VoteKind, height: Height, round: Round, value: Option<&Hash>) -> Vec<u8> {
    let tag = match kind {
        VoteKind::Prevote => PREVOTE_TAG,
        VoteKind::Precommit => PRECOMMIT_TAG,
    };
    let mut bytes = start(tag, 8 + 4 + 1 + 32);
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&round.to_be_bytes());
    push_optional_hash(&mut bytes, value);
    bytes
}

/// The bytes a proposal signature covers; `valid_round` `None` is the paper's `-1`.
pub fn proposal_bytes(height: Height, round: Round, valid_round: Option<Round>, value_id: &Hash) -> Vec<u8> {
    let mut bytes = start(PROPOSAL_TAG, 8 + 4 + 1 + 4 + 32);
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&round.to_be_bytes());
    bytes.push(u8::from(valid_round.is_some()));
    bytes.extend_from_slice(&valid_round.unwrap_or(0).to_be_bytes());
    bytes.extend_from_slice(value_id);
    bytes
}

/// The bytes a result vote signature covers.
pub fn result_bytes(height: Height, state_hash: &Hash, outputs_hash: &Hash) -> Vec<u8> {
    let mut bytes = start(RESULT_TAG, 8 + 32 + 32);
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(state_hash);
    bytes.extend_from_slice(outputs_hash);
    bytes
}
