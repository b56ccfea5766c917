//! Who closes a ledger, and by which rules its users' inputs are judged: the UNL, its quorum,
//! the input window (`max_input_ledger_offset`) and the most input bytes one user may have in
//! one ledger (`user_input_bytes`), as the chain records them.
//!
//! Each ledger names the membership it was closed under ([`crate::LedgerBody::config_hash`])
//! and may hand over to another from the next ledger on ([`crate::LedgerBody::next_membership`]).
//! A hand-over is decided by the old members (it is part of a ledger they commit), so a chain
//! can be checked from its genesis UNL alone: each ledger's certificates against the members
//! the chain itself has named so far ([`Membership::after`], [`crate::chain::verify_next`]).
//!
//! ```text
//! membership := u32 quorum | u32 n_keys | [32] key* | u64 input_window | u64 user_input_bytes
//!               (keys distinct, in UNL order; input_window 1 to 100000; user_input_bytes 0:
//!               no limit)
//! hash       := SHA-256( u32 len(tag) | tag "hotpocket/membership/v2" | membership )
//! ```
//!
//! The input rules are here because they are consensus rules that the network's agreed config
//! may change (`patch.cfg`'s `max_input_ledger_offset` and `round_limits.user_input_bytes`):
//! recorded with the members, they change at one ledger for every node, by the same hand-over.

use crate::codec::{DecodeError, Reader, Writer};
use crate::{Hash, Ledger, tagged_hash};
use ed25519_dalek::VerifyingKey;

const MEMBERSHIP_TAG: &[u8] = b"hotpocket/membership/v2";
/// Most validators one membership may name.
pub const MAX_MEMBERS: usize = 256;
/// The input window of [`Membership::new`]: hp.cfg's default `max_input_ledger_offset`.
pub const DEFAULT_INPUT_WINDOW: u64 = 10;
/// The widest input window a membership may have (`max_input_ledger_offset`'s bound).
pub const MAX_INPUT_WINDOW: u64 = 100_000;

/// A UNL and the number of its signatures that decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    unl: Vec<[u8; 32]>,
    quorum: u32,
    /// `max_input_ledger_offset`: how far past the last ledger a user-signed input may name
    /// its last ledger ([`crate::user_signed`]).
    input_window: u64,
    /// `user_input_bytes`: the most bytes of input one user may have in one ledger, 0 for no
    /// limit; a single larger input may still go alone.
    user_input_bytes: u64,
    /// `unl` parsed, for signature checks.
    keys: Vec<VerifyingKey>,
    hash: Hash,
}

/// Why a membership cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("a UNL of {0} keys (1 to {MAX_MEMBERS})")]
    Size(usize),
    #[error("key {0} is not an Ed25519 public key, or a small-order one")]
    BadKey(String),
    #[error("key {0} is listed twice")]
    Duplicate(String),
    #[error("{0}")]
    Quorum(String),
    #[error("an input window of {0} ledgers (1 to {MAX_INPUT_WINDOW})")]
    InputWindow(u64),
}

impl Membership {
    /// Checks the UNL (1 to [`MAX_MEMBERS`] distinct Ed25519 keys) and that `quorum` is safe
    /// for it (at most `n`, and two quorums always overlap); the input window is
    /// [`DEFAULT_INPUT_WINDOW`] ([`Self::with_input_window`] sets another).
    pub fn new(unl: Vec<[u8; 32]>, quorum: usize) -> Result<Self, MembershipError> {
        if unl.is_empty() || unl.len() > MAX_MEMBERS {
            return Err(MembershipError::Size(unl.len()));
        }
        let mut keys = Vec::with_capacity(unl.len());
        for (i, key) in unl.iter().enumerate() {
            let parsed = VerifyingKey::from_bytes(key).map_err(|_| MembershipError::BadKey(hex::encode(key)))?;
            // Signatures are checked under ZIP 215, which a small-order key passes for any
            // message: such a member would let anyone sign as it.
            if parsed.is_weak() {
                return Err(MembershipError::BadKey(hex::encode(key)));
            }
            keys.push(parsed);
            if unl[..i].contains(key) {
                return Err(MembershipError::Duplicate(hex::encode(key)));
            }
        }
        hp_consensus::quorum::check_quorum(unl.len(), quorum).map_err(|e| MembershipError::Quorum(e.to_string()))?;
        let mut membership = Self {
            unl,
            quorum: quorum as u32,
            input_window: DEFAULT_INPUT_WINDOW,
            user_input_bytes: 0,
            keys,
            hash: [0; 32],
        };
        membership.hash = tagged_hash(MEMBERSHIP_TAG, &[&membership.encode()]);
        Ok(membership)
    }

    /// The same members with input window `window` (1 to [`MAX_INPUT_WINDOW`]).
    pub fn with_input_window(mut self, window: u64) -> Result<Self, MembershipError> {
        if !(1..=MAX_INPUT_WINDOW).contains(&window) {
            return Err(MembershipError::InputWindow(window));
        }
        self.input_window = window;
        self.hash = tagged_hash(MEMBERSHIP_TAG, &[&self.encode()]);
        Ok(self)
    }

    /// `max_input_ledger_offset` of the ledgers these members close.
    pub fn input_window(&self) -> u64 {
        self.input_window
    }

    /// The same members with at most `bytes` of input per user per ledger (0: no limit).
    pub fn with_user_input_bytes(mut self, bytes: u64) -> Self {
        self.user_input_bytes = bytes;
        self.hash = tagged_hash(MEMBERSHIP_TAG, &[&self.encode()]);
        self
    }

    /// The most bytes of input one user may have in one ledger these members close; 0 for no
    /// limit.
    pub fn user_input_bytes(&self) -> u64 {
        self.user_input_bytes
    }

    /// Whether `inputs` (of one ledger) keep to [`Self::user_input_bytes`]: each user's data
    /// together at most that, unless the user has a single input.
    pub fn users_within_input_bytes<'a>(&self, inputs: impl IntoIterator<Item = &'a crate::Input>) -> bool {
        if self.user_input_bytes == 0 {
            return true;
        }
        let mut per_user: std::collections::HashMap<[u8; 32], (u64, u32)> = std::collections::HashMap::new();
        for input in inputs {
            let (bytes, count) = per_user.entry(input.user).or_default();
            *bytes = bytes.saturating_add(input.data.len() as u64);
            *count += 1;
        }
        per_user.values().all(|(bytes, count)| *count == 1 || *bytes <= self.user_input_bytes)
    }

    /// The validators' keys parsed, in UNL order.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// `key`'s place in the UNL, if it is a validator here.
    pub fn position(&self, key: &[u8; 32]) -> Option<usize> {
        self.unl.iter().position(|k| k == key)
    }

    /// Whether `key` is a validator here.
    pub fn contains(&self, key: &[u8; 32]) -> bool {
        self.unl.contains(key)
    }

    /// The membership that closes the ledger after `ledger`, which this one closed: the one
    /// `ledger` hands over to, or this one.
    pub fn after(&self, ledger: &Ledger) -> Membership {
        ledger.next_membership.clone().unwrap_or_else(|| self.clone())
    }

    /// The validators' keys, in UNL order.
    pub fn unl(&self) -> &[[u8; 32]] {
        &self.unl
    }

    /// Signatures that decide.
    pub fn quorum(&self) -> usize {
        self.quorum as usize
    }

    /// What a ledger names as its config hash.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.encoded_len());
        self.encode_into(&mut w);
        w.finish()
    }

    pub(crate) fn encode_into(&self, w: &mut Writer) {
        w.u32(self.quorum).u32(self.unl.len() as u32);
        for key in &self.unl {
            w.fixed(key);
        }
        w.u64(self.input_window).u64(self.user_input_bytes);
    }

    pub(crate) fn encoded_len(&self) -> usize {
        8 + 32 * self.unl.len() + 16
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let quorum = r.u32("membership quorum")? as usize;
        let n = r.count("membership keys", 32, MAX_MEMBERS)?;
        let mut unl = Vec::with_capacity(n);
        for _ in 0..n {
            unl.push(r.array::<32>("membership key")?);
        }
        let window = r.u64("membership input window")?;
        let user_input_bytes = r.u64("membership user input bytes")?;
        Membership::new(unl, quorum)
            .and_then(|m| m.with_input_window(window))
            .map(|m| m.with_user_input_bytes(user_input_bytes))
            .map_err(|e| DecodeError::Invalid { what: "membership", problem: e.to_string() })
    }
}

/// Which membership closes which ledgers: the genesis UNL, then one epoch per hand-over the
/// chain records. A node keeps every epoch (hand-overs are rare and each is at most
/// [`MAX_MEMBERS`] keys), so that a late message or proof of any stored ledger is checked
/// against the members that closed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Epochs {
    /// In order; the first starts at ledger 1.
    list: Vec<Epoch>,
}

/// Ledgers from `first_seq` on are closed by `members`, until the next epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Epoch {
    pub first_seq: u64,
    pub members: Membership,
}

impl Epochs {
    /// The chain's genesis membership, closing every ledger until a hand-over.
    pub fn new(genesis: Membership) -> Self {
        Self { list: vec![Epoch { first_seq: 1, members: genesis }] }
    }

    /// The epoch ledger `seq` belongs to (the genesis ledger, 0, to the first).
    pub fn at(&self, seq: u64) -> &Epoch {
        let after = self.list.partition_point(|e| e.first_seq <= seq);
        &self.list[after.saturating_sub(1)]
    }

    /// The members that close ledger `seq`.
    pub fn members_at(&self, seq: u64) -> &Membership {
        &self.at(seq).members
    }

    /// The last epoch recorded.
    pub fn latest(&self) -> &Epoch {
        // `list` is never empty: `new` puts the genesis epoch in and nothing removes one.
        &self.list[self.list.len() - 1]
    }

    /// Every epoch, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Epoch> {
        self.list.iter()
    }

    /// Records the hand-over that ledger `seq` carries: `members` close the ledgers after it.
    /// A hand-over at or before the last one recorded is ignored (the chain is read in order,
    /// and a ledger is stored once), and so is one to the members already in force.
    pub fn hand_over(&mut self, seq: u64, members: Membership) -> bool {
        let latest = self.latest();
        if seq < latest.first_seq || latest.members == members {
            return false;
        }
        self.list.push(Epoch { first_seq: seq + 1, members });
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ed25519_dalek::SigningKey;

    fn keys(n: u8) -> Vec<[u8; 32]> {
        (1..=n).map(|i| SigningKey::from_bytes(&[i; 32]).verifying_key().to_bytes()).collect()
    }

    #[test]
    fn a_membership_round_trips_and_its_hash_covers_keys_order_and_quorum() {
        let m = Membership::new(keys(4), 3).unwrap();
        let bytes = m.encode();
        let mut r = Reader::new(&bytes);
        assert_eq!(Membership::decode_from(&mut r).unwrap(), m);
        let mut reversed = keys(4);
        reversed.reverse();
        assert_ne!(Membership::new(reversed, 3).unwrap().hash(), m.hash());
        assert_ne!(Membership::new(keys(4), 4).unwrap().hash(), m.hash());
        let wider = m.clone().with_input_window(20).unwrap();
        assert_ne!(wider.hash(), m.hash(), "the input window is part of what a ledger names");
        assert_eq!(wider.input_window(), 20);
        assert!(matches!(m.clone().with_input_window(0), Err(MembershipError::InputWindow(0))));
        assert_ne!(m.clone().with_user_input_bytes(100).hash(), m.hash(), "and so is the input limit");
    }

    #[test]
    fn unsafe_or_malformed_memberships_are_refused() {
        assert!(matches!(Membership::new(vec![], 1), Err(MembershipError::Size(0))));
        assert!(matches!(Membership::new(keys(4), 2), Err(MembershipError::Quorum(_))));
        assert!(matches!(Membership::new(keys(3), 4), Err(MembershipError::Quorum(_))));
        let mut twice = keys(3);
        twice[2] = twice[0];
        assert!(matches!(Membership::new(twice, 3), Err(MembershipError::Duplicate(_))));
        let not_a_point = (0..=255u8).map(|b| [b; 32]).find(|k| VerifyingKey::from_bytes(k).is_err()).unwrap();
        assert!(matches!(Membership::new(vec![not_a_point], 1), Err(MembershipError::BadKey(_))));
        let mut identity = [0u8; 32];
        identity[0] = 1; // the identity point: small order, a valid encoding
        assert!(matches!(Membership::new(vec![identity], 1), Err(MembershipError::BadKey(_))), "a weak key");
        let mut w = Writer::new();
        w.u32(1).u32(1).fixed(&not_a_point);
        let bytes = w.finish();
        assert!(Membership::decode_from(&mut Reader::new(&bytes)).is_err());
    }

    #[test]
    fn epochs_name_the_members_of_each_ledger() {
        let genesis = Membership::new(keys(3), 3).unwrap();
        let next = Membership::new(keys(4), 3).unwrap();
        let mut epochs = Epochs::new(genesis.clone());
        assert_eq!(epochs.members_at(0), &genesis);
        assert!(!epochs.hand_over(5, genesis.clone()), "no change, no epoch");
        assert!(epochs.hand_over(5, next.clone()));
        assert!(!epochs.hand_over(3, genesis.clone()), "an older ledger's hand-over");
        assert_eq!(epochs.members_at(5), &genesis, "ledger 5 hands over; it is closed by the old members");
        assert_eq!(epochs.members_at(6), &next);
        assert_eq!(epochs.at(1_000).first_seq, 6);
        assert_eq!(epochs.latest().members, next);
        assert_eq!(epochs.iter().count(), 2);
    }
}
