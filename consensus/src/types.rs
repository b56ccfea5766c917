//! The small vocabulary every other module speaks: heights, rounds, steps, timeouts and the
//! [`Value`] trait that the host's ledger type implements.

use std::fmt;

/// A SHA-256 digest; here always the id of a [`Value`] (a ledger hash) or a result hash.
pub type Hash = [u8; 32];

/// A consensus instance: ledger sequence number `h` of the chain.
pub type Height = u64;

/// An attempt within one height; the paper's `round_p`.
pub type Round = u32;

/// Index of a validator in the UNL (the list of validator public keys, same order on all nodes).
pub type ValidatorIndex = usize;

/// What consensus decides on. The host's ledger type implements it.
///
/// `id` must be collision resistant and canonical (every node computes the same id for the
/// same value), because votes and certificates carry only the id: two values with one id are
/// one value as far as safety is concerned.
pub trait Value: Clone + fmt::Debug + PartialEq {
    /// The value's identity, e.g. the ledger hash.
    fn id(&self) -> Hash;
}

/// The two vote kinds of the paper (`PREVOTE`, `PRECOMMIT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VoteKind {
    /// First-stage vote: "this proposal is acceptable to me" (lines 22-33).
    Prevote,
    /// Second-stage vote: "I saw `q` prevotes for it and locked on it" (lines 36-46).
    Precommit,
}

impl VoteKind {
    /// Lower-case name, as used in logs and error messages.
    pub fn name(self) -> &'static str {
        match self {
            VoteKind::Prevote => "prevote",
            VoteKind::Precommit => "precommit",
        }
    }
}

impl fmt::Display for VoteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a node stands within the current height.
///
/// `Propose`, `Prevote` and `Precommit` are the paper's `step_p`; `Unstarted` and `Decided`
/// exist because here the host, not the machine, moves to the next height (it first stores the
/// decision durably).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// No `StartHeight` received yet: every message is ignored.
    Unstarted,
    /// Waiting for the round's proposal (or, as proposer, for the host's value).
    Propose,
    /// Prevoted in the current round.
    Prevote,
    /// Precommitted in the current round.
    Precommit,
    /// The height is decided; waiting for the host's `StartHeight` of the next one.
    Decided,
}

/// The step a timeout belongs to (the paper's `OnTimeoutPropose/Prevote/Precommit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeoutStep {
    /// Line 21: no proposal arrived in time; prevote nil (line 57).
    Propose,
    /// Line 35: `q` prevotes but no polka in time; precommit nil (line 61).
    Prevote,
    /// Line 48: `q` precommits but no decision in time; next round (line 65).
    Precommit,
}

/// A timer the machine asked for, given back to it by the host when it fires.
///
/// It carries its height and round so that a late one is recognised and ignored (lines 58, 62, 66).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timeout {
    /// Height the timer was set in.
    pub height: Height,
    /// Round the timer was set in.
    pub round: Round,
    /// Which of the three timers it is.
    pub step: TimeoutStep,
}

/// Displays a hash as lower-case hex, for error messages and logs.
pub(crate) struct HexHash<'a>(pub &'a Hash);

impl fmt::Display for HexHash<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}
