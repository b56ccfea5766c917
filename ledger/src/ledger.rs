//! The ledger: one agreed round.
//!
//! Canonical bytes (all integers big-endian):
//!
//! ```text
//! ledger := u8 version (2) | u64 seq | [32] prev_hash | u64 time_ms
//!         | u32 n_inputs | input*
//!         | u32 n_users  | [32] user*        (connected users, sorted, distinct)
//!         | u8 has_prev_result | ([32] state_hash | [32] outputs_hash)?
//!         | [32] config_hash                 (the membership that closes this ledger)
//!         | u8 has_next_membership | membership?   (it hands over from the next ledger on)
//! hash   := SHA-256( u32 len(tag) | tag "hotpocket/ledger/v2" | ledger )
//! input  := [32] origin | u64 nonce | [32] user | [64] origin_sig | u32 len | data
//!         | u8 kind                          (0: the seed protocol's; 1 JSON, 2 BSON: user-signed)
//!         | ([64] user_sig | u32 len | container)?   (kind 1 and 2: what the user signed)
//! ```
//!
//! `prev_result` is the certified result (state hash, outputs hash) of ledger `seq - 1`, so the
//! chain of ledgers also chains the agreed results. The genesis ledger (seq 0) is derived from
//! the network id and the UNL alone, so every node of a network computes the same one and no
//! ledger of one network links into another's chain:
//!
//! `membership` and its hash are in [`crate::membership`]. The genesis ledger's `config_hash` is
//! zero: it is derived, not closed.
//!
//! ```text
//! genesis := ledger { seq 0, time_ms 0, no inputs, users, result or hand-over,
//!                     prev_hash SHA-256( u32 len(tag) | tag "hotpocket/genesis/v2" | [32] network_id
//!                                      | u32 n_keys | [32] key* ) }
//! ```

use crate::codec::{DecodeError, Reader, Writer};
use crate::input::{Input, MIN_INPUT_SIZE};
use crate::membership::Membership;
use crate::{Hash, tagged_hash};
use hp_consensus::NetworkId;
use std::ops::Deref;
use std::sync::Arc;

const LEDGER_TAG: &[u8] = b"hotpocket/ledger/v2";
const GENESIS_TAG: &[u8] = b"hotpocket/genesis/v2";
const VERSION: u8 = 2;
/// The most inputs and users one ledger may list.
pub const MAX_LEDGER_ITEMS: usize = 1 << 22;

/// The certified outcome of a ledger's execution, as carried by the next ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResultSummary {
    pub state_hash: Hash,
    pub outputs_hash: Hash,
}

/// The contents of a ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerBody {
    pub seq: u64,
    pub prev_hash: Hash,
    /// Ledger time, unix milliseconds; strictly increasing along the chain.
    pub time_ms: u64,
    /// The inputs, in execution order.
    pub inputs: Vec<Input>,
    /// Users connected to any node at the round, sorted and distinct.
    pub users: Vec<[u8; 32]>,
    pub prev_result: Option<ResultSummary>,
    /// [`Membership::hash`] of the UNL and quorum whose commit certificate closes this ledger.
    pub config_hash: Hash,
    /// The membership that closes ledgers from the next one on, when it changes here (a
    /// `patch.cfg` the network agreed on).
    pub next_membership: Option<Membership>,
}

/// An immutable ledger with its hash computed once. Cloning is cheap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ledger {
    inner: Arc<(LedgerBody, Hash, usize)>,
}

impl Deref for Ledger {
    type Target = LedgerBody;
    fn deref(&self) -> &LedgerBody {
        &self.inner.0
    }
}

impl hp_consensus::Value for Ledger {
    fn id(&self) -> Hash {
        self.inner.1
    }
}

impl Ledger {
    pub fn new(body: LedgerBody) -> Self {
        let bytes = encode_body(&body);
        let hash = tagged_hash(LEDGER_TAG, &[&bytes]);
        Self { inner: Arc::new((body, hash, bytes.len())) }
    }

    /// The genesis ledger of network `network` with this UNL.
    pub fn genesis(unl: &[[u8; 32]], network: &NetworkId) -> Self {
        let mut w = Writer::new();
        w.u32(unl.len() as u32);
        for key in unl {
            w.fixed(key);
        }
        let prev_hash = tagged_hash(GENESIS_TAG, &[network.as_bytes(), &w.finish()]);
        Self::new(LedgerBody {
            seq: 0,
            prev_hash,
            time_ms: 0,
            inputs: vec![],
            users: vec![],
            prev_result: None,
            config_hash: [0; 32],
            next_membership: None,
        })
    }

    pub fn hash(&self) -> Hash {
        self.inner.1
    }

    /// Length of the canonical encoding.
    pub fn encoded_len(&self) -> usize {
        self.inner.2
    }

    pub fn encode(&self) -> Vec<u8> {
        encode_body(&self.inner.0)
    }

    /// Decodes a ledger from untrusted bytes and checks its internal rules (users sorted and
    /// distinct). The hash is recomputed from the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("ledger version")?;
        if version != VERSION {
            return Err(DecodeError::Invalid { what: "ledger version", problem: format!("unknown version {version}") });
        }
        let seq = r.u64("ledger seq")?;
        let prev_hash = r.array::<32>("ledger prev_hash")?;
        let time_ms = r.u64("ledger time")?;
        let n = r.count("ledger inputs", MIN_INPUT_SIZE, MAX_LEDGER_ITEMS)?;
        let mut inputs = Vec::with_capacity(n);
        for _ in 0..n {
            inputs.push(Input::decode_from(&mut r)?);
        }
        let n = r.count("ledger users", 32, MAX_LEDGER_ITEMS)?;
        let mut users = Vec::with_capacity(n);
        for _ in 0..n {
            users.push(r.array::<32>("ledger user")?);
        }
        if users.windows(2).any(|w| w[0] >= w[1]) {
            return Err(DecodeError::Invalid { what: "ledger users", problem: "not sorted and distinct".into() });
        }
        let prev_result = match r.u8("ledger prev_result flag")? {
            0 => None,
            1 => Some(ResultSummary {
                state_hash: r.array::<32>("ledger prev state_hash")?,
                outputs_hash: r.array::<32>("ledger prev outputs_hash")?,
            }),
            other => {
                return Err(DecodeError::Invalid { what: "ledger prev_result flag", problem: format!("{other}") });
            }
        };
        let config_hash = r.array::<32>("ledger config_hash")?;
        let next_membership = match r.u8("ledger next_membership flag")? {
            0 => None,
            1 => Some(Membership::decode_from(&mut r)?),
            other => {
                return Err(DecodeError::Invalid { what: "ledger next_membership flag", problem: format!("{other}") });
            }
        };
        r.finish()?;
        let hash = tagged_hash(LEDGER_TAG, &[bytes]);
        let body = LedgerBody { seq, prev_hash, time_ms, inputs, users, prev_result, config_hash, next_membership };
        Ok(Self { inner: Arc::new((body, hash, bytes.len())) })
    }

    /// Every user listed to the contract for this ledger: the connected users plus every user
    /// with an input, sorted and distinct (docs/contract-interface.md).
    pub fn contract_users(&self) -> Vec<[u8; 32]> {
        let mut users = self.users.clone();
        users.extend(self.inputs.iter().map(|i| i.user));
        users.sort_unstable();
        users.dedup();
        users
    }
}

fn encode_body(body: &LedgerBody) -> Vec<u8> {
    let size = 1
        + 8
        + 32
        + 8
        + 4
        + body.inputs.iter().map(Input::encoded_len).sum::<usize>()
        + 4
        + 32 * body.users.len()
        + 65
        + 33
        + body.next_membership.as_ref().map_or(0, Membership::encoded_len);
    let mut w = Writer::with_capacity(size);
    w.u8(VERSION).u64(body.seq).fixed(&body.prev_hash).u64(body.time_ms);
    w.u32(body.inputs.len() as u32);
    for input in &body.inputs {
        input.encode_into(&mut w);
    }
    w.u32(body.users.len() as u32);
    for user in &body.users {
        w.fixed(user);
    }
    match &body.prev_result {
        None => {
            w.u8(0);
        }
        Some(r) => {
            w.u8(1).fixed(&r.state_hash).fixed(&r.outputs_hash);
        }
    }
    w.fixed(&body.config_hash);
    match &body.next_membership {
        None => {
            w.u8(0);
        }
        Some(m) => {
            w.u8(1);
            m.encode_into(&mut w);
        }
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::InputId;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn sample() -> Ledger {
        Ledger::new(LedgerBody {
            seq: 3,
            prev_hash: [1; 32],
            time_ms: 1_700_000_000_000,
            inputs: vec![Input {
                id: InputId { origin: [2; 32], nonce: 9 },
                user: [3; 32],
                data: Bytes::from_static(b"hi"),
                signature: ed25519_dalek::Signature::from_bytes(&[7; 64]),
                user_signed: None,
            }],
            users: vec![[3; 32], [4; 32]],
            prev_result: Some(ResultSummary { state_hash: [5; 32], outputs_hash: [6; 32] }),
            config_hash: [8; 32],
            next_membership: None,
        })
    }

    fn member(seed: u8) -> [u8; 32] {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key().to_bytes()
    }

    #[test]
    fn encoding_round_trips_with_the_same_hash() {
        let l = sample();
        let back = Ledger::decode(&l.encode()).unwrap();
        assert_eq!(back, l);
        assert_eq!(back.hash(), l.hash());
    }

    #[test]
    fn any_change_changes_the_hash() {
        let base = sample();
        let mut body = (*base).clone();
        body.time_ms += 1;
        assert_ne!(Ledger::new(body).hash(), base.hash());
        let mut body = (*base).clone();
        body.prev_result = None;
        assert_ne!(Ledger::new(body).hash(), base.hash());
        let mut body = (*base).clone();
        body.config_hash[0] ^= 1;
        assert_ne!(Ledger::new(body).hash(), base.hash());
        let mut body = (*base).clone();
        body.next_membership = Some(Membership::new(vec![member(1)], 1).unwrap());
        assert_ne!(Ledger::new(body).hash(), base.hash());
    }

    #[test]
    fn a_hand_over_round_trips_and_an_unsafe_one_is_refused() {
        let mut body = (*sample()).clone();
        body.next_membership = Some(Membership::new(vec![member(1), member(2), member(3)], 2).unwrap());
        let ledger = Ledger::new(body);
        let back = Ledger::decode(&ledger.encode()).unwrap();
        assert_eq!(back, ledger);
        // Quorum 2 of 3 re-encoded as 1 of 3: two quorums need not overlap.
        let mut bytes = ledger.encode();
        let at = bytes.len() - (8 + 3 * 32 + 16);
        bytes[at..at + 4].copy_from_slice(&1u32.to_be_bytes());
        assert!(Ledger::decode(&bytes).is_err());
        // An input window of 0 (no signed input could ever be taken) is refused too.
        let mut bytes = ledger.encode();
        let at = bytes.len() - 16;
        bytes[at..at + 8].copy_from_slice(&0u64.to_be_bytes());
        assert!(Ledger::decode(&bytes).is_err());
    }

    #[test]
    fn genesis_depends_on_the_unl_and_the_network_only() {
        let (a, b) = (NetworkId([1; 32]), NetworkId([2; 32]));
        assert_eq!(Ledger::genesis(&[[1; 32]], &a).hash(), Ledger::genesis(&[[1; 32]], &a).hash());
        assert_ne!(Ledger::genesis(&[[1; 32]], &a).hash(), Ledger::genesis(&[[2; 32]], &a).hash());
        assert_ne!(Ledger::genesis(&[[1; 32]], &a).hash(), Ledger::genesis(&[[1; 32]], &b).hash(), "same UNL");
    }

    #[test]
    fn unsorted_users_and_trailing_bytes_are_refused() {
        let mut body = (*sample()).clone();
        body.users = vec![[4; 32], [3; 32]];
        assert!(Ledger::decode(&Ledger::new(body).encode()).is_err());
        let mut bytes = sample().encode();
        bytes.push(0);
        assert!(Ledger::decode(&bytes).is_err());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Ledger::decode(&bytes);
        }

        #[test]
        fn decoding_mutated_ledgers_never_panics(pos in 0usize..200, val in any::<u8>()) {
            let mut bytes = sample().encode();
            let i = pos % bytes.len();
            bytes[i] = val;
            let _ = Ledger::decode(&bytes);
        }
    }
}
