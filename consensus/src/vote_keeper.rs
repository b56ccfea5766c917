//! The paper's message log for one height: proposals, prevotes and precommits by round, with
//! equivocation detection and bounded memory.
//!
//! Each validator has at most one prevote and one precommit per round here; a second,
//! different one is evidence of equivocation: the first stays counted (once), the second is
//! returned as evidence, and the validator's later messages for the height are ignored. Rounds
//! above the current one are capped per validator ([`MAX_FUTURE_ROUNDS`]), keeping the highest,
//! so a faulty validator cannot fill memory with far-future rounds nor crowd out others.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use ed25519_dalek::Signature;

use crate::evidence::Evidence;
use crate::proposal::Proposal;
use crate::types::{Hash, Round, ValidatorIndex, VoteKind};
use crate::vote::Vote;

/// Rounds above the current one for which one validator's messages are kept. Honest validators
/// are in one round at a time, so a few are enough to see where the others are (line 55); the
/// highest are kept because they say where the network is now.
pub(crate) const MAX_FUTURE_ROUNDS: usize = 8;

/// A proposal with its value id computed once and the host's verdict `valid(v)`.
#[derive(Clone, Debug)]
pub(crate) struct ProposalEntry<V> {
    pub proposal: Proposal<V>,
    pub id: Hash,
    pub valid: bool,
}

/// Everything received for one round.
#[derive(Clone, Debug)]
struct RoundLog<V> {
    prevotes: BTreeMap<ValidatorIndex, Vote>,
    precommits: BTreeMap<ValidatorIndex, Vote>,
    /// From the round's proposer only; two entries at most (the second proves equivocation).
    proposals: Vec<ProposalEntry<V>>,
}

impl<V> RoundLog<V> {
    fn new() -> Self {
        RoundLog {
            prevotes: BTreeMap::new(),
            precommits: BTreeMap::new(),
            proposals: Vec::new(),
        }
    }

    fn votes(&self, kind: VoteKind) -> &BTreeMap<ValidatorIndex, Vote> {
        match kind {
            VoteKind::Prevote => &self.prevotes,
            VoteKind::Precommit => &self.precommits,
        }
    }

    fn votes_mut(&mut self, kind: VoteKind) -> &mut BTreeMap<ValidatorIndex, Vote> {
        match kind {
            VoteKind::Prevote => &mut self.prevotes,
            VoteKind::Precommit => &mut self.precommits,
        }
    }

    fn has_message_from(&self, validator: ValidatorIndex) -> bool {
        self.prevotes.contains_key(&validator)
            || self.precommits.contains_key(&validator)
            || self.proposals.iter().any(|e| e.proposal.proposer == validator)
    }

    fn is_empty(&self) -> bool {
        self.prevotes.is_empty() && self.precommits.is_empty() && self.proposals.is_empty()
    }
}

/// What adding a message did.
#[derive(Debug)]
pub(crate) enum Added<V> {
    /// Stored and counted.
    New,
    /// Already known (a repeat is idempotent); a proposal's verdict may have turned valid.
    Duplicate,
    /// Conflicts with a stored message: the sender is now ignored for the height.
    Equivocation(Evidence<V>),
    /// Dropped: sender already convicted, or past the future-round cap.
    Ignored,
}

/// The message log of one height.
#[derive(Clone, Debug)]
pub(crate) struct VoteKeeper<V> {
    rounds: BTreeMap<Round, RoundLog<V>>,
    /// Validators caught equivocating at this height.
    equivocators: BTreeSet<ValidatorIndex>,
}

impl<V: Clone> VoteKeeper<V> {
    pub fn new() -> Self {
        VoteKeeper {
            rounds: BTreeMap::new(),
            equivocators: BTreeSet::new(),
        }
    }

    /// Adds a vote (already checked: right height, known validator, valid signature).
    pub fn add_vote(&mut self, vote: Vote, current_round: Round) -> Added<V> {
        if self.equivocators.contains(&vote.validator) {
            return Added::Ignored;
        }
        let existing = self
            .rounds
            .get(&vote.round)
            .and_then(|log| log.votes(vote.kind).get(&vote.validator));
        if let Some(first) = existing {
            if first.value == vote.value {
                return Added::Duplicate;
            }
            let first = first.clone();
            self.equivocators.insert(vote.validator);
            return Added::Equivocation(Evidence::ConflictingVotes {
                first,
                second: vote,
            });
        }
        if !self.admit(vote.validator, vote.round, current_round) {
            return Added::Ignored;
        }
        self.rounds
            .entry(vote.round)
            .or_insert_with(RoundLog::new)
            .votes_mut(vote.kind)
            .insert(vote.validator, vote);
        Added::New
    }

    /// Adds a proposal (already checked: right height, sent by the round's proposer, valid
    /// signature). A repeat with `valid = true` upgrades a stored `false` verdict: the host may
    /// judge a value valid later (its clock caught up with the proposer's), never the reverse.
    pub fn add_proposal(
        &mut self,
        proposal: Proposal<V>,
        id: Hash,
        valid: bool,
        current_round: Round,
    ) -> Added<V> {
        let proposer = proposal.proposer;
        if self.equivocators.contains(&proposer) {
            return Added::Ignored;
        }
        if let Some(log) = self.rounds.get_mut(&proposal.round)
            && let Some(first) = log
                .proposals
                .iter_mut()
                .find(|e| e.proposal.proposer == proposer)
        {
            if first.id == id && first.proposal.valid_round == proposal.valid_round {
                first.valid |= valid;
                return Added::Duplicate;
            }
            let first = first.proposal.clone();
            // Kept (not counted for anything but its value) so that a decision on it finds it.
            log.proposals.push(ProposalEntry {
                proposal: proposal.clone(),
                id,
                valid,
            });
            self.equivocators.insert(proposer);
            return Added::Equivocation(Evidence::ConflictingProposals {
                first,
                second: proposal,
            });
        }
        if !self.admit(proposer, proposal.round, current_round) {
            return Added::Ignored;
        }
        self.rounds
            .entry(proposal.round)
            .or_insert_with(RoundLog::new)
            .proposals
            .push(ProposalEntry {
                proposal,
                id,
                valid,
            });
        Added::New
    }

    /// Enforces [`MAX_FUTURE_ROUNDS`]: may evict `validator`'s lowest future round to make room
    /// for a higher one; returns whether a message of `round` may be stored.
    fn admit(&mut self, validator: ValidatorIndex, round: Round, current_round: Round) -> bool {
        if round <= current_round {
            return true;
        }
        let future: Vec<Round> = self
            .rounds
            .range((Bound::Excluded(current_round), Bound::Unbounded))
            .filter(|(_, log)| log.has_message_from(validator))
            .map(|(r, _)| *r)
            .collect();
        if future.len() < MAX_FUTURE_ROUNDS || future.contains(&round) {
            return true;
        }
        match future.first() {
            Some(&lowest) if lowest < round => {
                self.evict(validator, lowest);
                true
            }
            _ => false,
        }
    }

    /// Forgets `validator`'s messages of `round`.
    fn evict(&mut self, validator: ValidatorIndex, round: Round) {
        if let Some(log) = self.rounds.get_mut(&round) {
            log.prevotes.remove(&validator);
            log.precommits.remove(&validator);
            log.proposals.retain(|e| e.proposal.proposer != validator);
            if log.is_empty() {
                self.rounds.remove(&round);
            }
        }
    }

    /// Votes of `kind` in `round` for exactly `value` (`None` = nil).
    pub fn count(&self, round: Round, kind: VoteKind, value: Option<&Hash>) -> usize {
        self.rounds.get(&round).map_or(0, |log| {
            log.votes(kind)
                .values()
                .filter(|v| v.value.as_ref() == value)
                .count()
        })
    }

    /// Votes of `kind` in `round`, whatever their value (the paper's `∗`).
    pub fn count_any(&self, round: Round, kind: VoteKind) -> usize {
        self.rounds
            .get(&round)
            .map_or(0, |log| log.votes(kind).len())
    }

    /// The highest round above `above` with messages from at least `threshold` distinct
    /// validators (line 55).
    pub fn highest_round_with_senders(&self, above: Round, threshold: usize) -> Option<Round> {
        self.rounds
            .range((Bound::Excluded(above), Bound::Unbounded))
            .rev()
            .find(|(_, log)| {
                let mut senders: BTreeSet<ValidatorIndex> = log.prevotes.keys().copied().collect();
                senders.extend(log.precommits.keys().copied());
                senders.extend(log.proposals.iter().map(|e| e.proposal.proposer));
                senders.len() >= threshold
            })
            .map(|(r, _)| *r)
    }

    /// The round's proposals, first received first.
    pub fn proposals(&self, round: Round) -> &[ProposalEntry<V>] {
        self.rounds
            .get(&round)
            .map_or(&[], |log| log.proposals.as_slice())
    }

    /// `validator`'s vote of `kind` in `round`, if stored.
    pub fn vote(&self, round: Round, kind: VoteKind, validator: ValidatorIndex) -> Option<&Vote> {
        self.rounds
            .get(&round)
            .and_then(|log| log.votes(kind).get(&validator))
    }

    /// The lowest round with at least `quorum` precommits for one value, and that value's id
    /// (line 49). With fewer than `2q - n` faulty validators there is at most one such id.
    pub fn precommit_quorum(&self, quorum: usize) -> Option<(Round, Hash)> {
        self.rounds.iter().find_map(|(round, log)| {
            let mut tally: BTreeMap<Hash, usize> = BTreeMap::new();
            for id in log.precommits.values().filter_map(|v| v.value) {
                let count = tally.entry(id).or_insert(0);
                *count += 1;
                if *count >= quorum {
                    return Some((*round, id));
                }
            }
            None
        })
    }

    /// Signatures of the `kind` votes in `round` for `id`, sorted by validator.
    pub fn signatures(
        &self,
        round: Round,
        kind: VoteKind,
        id: &Hash,
    ) -> Vec<(ValidatorIndex, Signature)> {
        self.rounds.get(&round).map_or_else(Vec::new, |log| {
            log.votes(kind)
                .values()
                .filter(|v| v.value.as_ref() == Some(id))
                .map(|v| (v.validator, v.signature))
                .collect()
        })
    }

    /// A received value with id `id`, preferably from `round`'s proposal; any round's will do
    /// since the id identifies the value.
    pub fn value(&self, round: Round, id: &Hash) -> Option<&V> {
        fn find<'a, V>(log: &'a RoundLog<V>, id: &Hash) -> Option<&'a V> {
            log.proposals
                .iter()
                .find(|e| &e.id == id)
                .map(|e| &e.proposal.value)
        }
        self.rounds
            .get(&round)
            .and_then(|log| find(log, id))
            .or_else(|| self.rounds.values().find_map(|log| find(log, id)))
    }

    /// Removes and returns every stored proposal (buffered ones must be judged again).
    pub fn take_proposals(&mut self) -> Vec<Proposal<V>> {
        let mut taken = Vec::new();
        for log in self.rounds.values_mut() {
            taken.extend(log.proposals.drain(..).map(|e| e.proposal));
        }
        self.rounds.retain(|_, log| !log.is_empty());
        taken
    }

    /// Number of stored messages.
    pub fn len(&self) -> usize {
        self.rounds
            .values()
            .map(|log| log.prevotes.len() + log.precommits.len() + log.proposals.len())
            .sum()
    }
}
