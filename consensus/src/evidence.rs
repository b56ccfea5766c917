//! Proof that a validator equivocated: two different signed messages where it may sign one.

use crate::proposal::Proposal;
use crate::types::ValidatorIndex;
use crate::vote::Vote;

/// Two different signed messages of one kind for one (height, round) from one validator.
/// Both are kept whole (with signatures) so that anyone can check the proof with the UNL alone.
#[derive(Clone, Debug, PartialEq)]
pub enum Evidence<V> {
    /// Two votes of one kind, height and round for different values (nil counts as a value).
    ConflictingVotes {
        /// The vote received (and counted) first.
        first: Vote,
        /// The conflicting vote, not counted.
        second: Vote,
    },
    /// Two proposals for one height and round differing in value or valid round.
    ConflictingProposals {
        /// The proposal received first.
        first: Proposal<V>,
        /// The conflicting proposal.
        second: Proposal<V>,
    },
}

impl<V> Evidence<V> {
    /// The validator the evidence convicts.
    pub fn validator(&self) -> ValidatorIndex {
        match self {
            Evidence::ConflictingVotes { first, .. } => first.validator,
            Evidence::ConflictingProposals { first, .. } => first.proposer,
        }
    }
}
