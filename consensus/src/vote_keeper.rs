//! The paper's message log for one height: proposals, prevotes and precommits by round, with
//! equivocation detection and bounded memory.
//!
//! The rules count, for each value, the distinct validators that voted it (the paper's
//! "2f + 1 ⟨PREVOTE, h, r, id(v)⟩" is messages from 2f + 1 distinct processes), and for `∗` the
//! distinct validators that voted at all. So a validator that signs two different votes of one
//! kind in one round (an equivocation, reported once per round and kind) counts at most once in
//! each tally, and a correct node's own vote is one vote. Its votes are not thrown away: the
//! paper's liveness needs every correct node to end up counting the same messages, and a node
//! that ignored the equivocator's votes after catching it would count differently from one that
//! had not caught it yet (the simulated network deadlocked that way).
//!
//! Memory bounds: per validator, round and kind at most [`MAX_VALUES_PER_VOTER`] distinct
//! values are kept, the smallest (nil first, then by id) so that every node keeps the same ones
//! once gossip has delivered them all; beyond those, a prevote is still kept if a stored
//! proposal claims a polka for its value in its round (the proposal's valid round, line 28),
//! because without it nodes that missed that polka could never accept the re-proposal
//! (CometBFT's "peer claims +2/3" plays this role). Rounds above the current one are capped per
//! validator ([`MAX_FUTURE_ROUNDS`]), keeping the highest, so a faulty validator cannot fill
//! memory with far-future rounds nor crowd out others. At most two proposals per round.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use ed25519_dalek::Signature;

use crate::evidence::Evidence;
use crate::proposal::Proposal;
use crate::types::{Hash, Round, ValidatorIndex, VoteKind};
use crate::vote::Vote;

/// Rounds above the current one for which one validator's messages are kept. Correct
/// validators are in one round at a time, so a few are enough to see where the others are
/// (line 55); the highest are kept because they say where the network is now.
pub(crate) const MAX_FUTURE_ROUNDS: usize = 8;

/// Distinct values kept per validator, round and kind: two prove an equivocation; more only
/// let a faulty validator use memory.
pub(crate) const MAX_VALUES_PER_VOTER: usize = 2;

/// A proposal with its value id computed once and the host's verdict `valid(v)`.
#[derive(Clone, Debug)]
pub(crate) struct ProposalEntry<V> {
    pub proposal: Proposal<V>,
    pub id: Hash,
    pub valid: bool,
}

/// One validator's votes of one kind in one round, by value (nil sorts first).
type VoterVotes = BTreeMap<Option<Hash>, Vote>;

/// Everything received for one round.
#[derive(Clone, Debug)]
struct RoundLog<V> {
    prevotes: BTreeMap<ValidatorIndex, VoterVotes>,
    precommits: BTreeMap<ValidatorIndex, VoterVotes>,
    /// From the round's proposer only; two entries at most (the second proves equivocation).
    proposals: Vec<ProposalEntry<V>>,
}

impl<V> RoundLog<V> {
    fn new() -> Self {
        RoundLog { prevotes: BTreeMap::new(), precommits: BTreeMap::new(), proposals: Vec::new() }
    }

    fn votes(&self, kind: VoteKind) -> &BTreeMap<ValidatorIndex, VoterVotes> {
        match kind {
            VoteKind::Prevote => &self.prevotes,
            VoteKind::Precommit => &self.precommits,
        }
    }

    fn votes_mut(&mut self, kind: VoteKind) -> &mut BTreeMap<ValidatorIndex, VoterVotes> {
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
    /// Stored, and it conflicts with a message already stored: evidence (boxed: rare and
    /// large).
    Equivocation(Box<Evidence<V>>),
    /// Dropped by a memory bound.
    Ignored,
}

/// The message log of one height.
#[derive(Clone, Debug)]
pub(crate) struct VoteKeeper<V> {
    rounds: BTreeMap<Round, RoundLog<V>>,
}

impl<V: Clone> VoteKeeper<V> {
    pub fn new() -> Self {
        VoteKeeper { rounds: BTreeMap::new() }
    }

    /// Adds a vote (already checked: right height, known validator, valid signature).
    pub fn add_vote(&mut self, vote: Vote, current_round: Round) -> Added<V> {
        let existing = self.rounds.get(&vote.round).and_then(|log| log.votes(vote.kind).get(&vote.validator));
        if existing.is_some_and(|votes| votes.contains_key(&vote.value)) {
            return Added::Duplicate;
        }
        // The vote to cite as the first of an equivocation (only for the first conflict of
        // this validator, round and kind, so evidence is reported once).
        let first = existing.filter(|votes| votes.len() == 1).and_then(|votes| votes.values().next().cloned());
        let full = existing.is_some_and(|votes| votes.len() >= MAX_VALUES_PER_VOTER);
        let new_voter = existing.is_none();
        if full && !self.keeps_beyond_cap(&vote) {
            return Added::Ignored;
        }
        if new_voter && !self.admit(vote.validator, vote.round, current_round) {
            return Added::Ignored;
        }
        let votes = self
            .rounds
            .entry(vote.round)
            .or_insert_with(RoundLog::new)
            .votes_mut(vote.kind)
            .entry(vote.validator)
            .or_default();
        votes.insert(vote.value, vote.clone());
        match first {
            Some(first) => Added::Equivocation(Box::new(Evidence::ConflictingVotes { first, second: vote })),
            None => Added::New,
        }
    }

    /// Whether a vote past [`MAX_VALUES_PER_VOTER`] is kept: a prevote for a value whose polka
    /// in this round a stored proposal claims, or a value smaller than one kept (which it then
    /// replaces, so that all nodes converge on the same smallest values).
    fn keeps_beyond_cap(&mut self, vote: &Vote) -> bool {
        let claimed = match vote.kind {
            VoteKind::Prevote => self.claimed_polkas(vote.round),
            VoteKind::Precommit => BTreeSet::new(),
        };
        let is_claimed = |value: &Option<Hash>| value.is_some_and(|id| claimed.contains(&id));
        if is_claimed(&vote.value) {
            return true;
        }
        let Some(votes) =
            self.rounds.get_mut(&vote.round).and_then(|log| log.votes_mut(vote.kind).get_mut(&vote.validator))
        else {
            return true; // nothing kept yet: no cap reached
        };
        let largest = votes.keys().rev().find(|value| !is_claimed(value)).copied();
        match largest {
            Some(largest) if vote.value < largest => {
                votes.remove(&largest);
                true
            }
            _ => false,
        }
    }

    /// Value ids whose polka in `round` some stored proposal claims.
    fn claimed_polkas(&self, round: Round) -> BTreeSet<Hash> {
        self.rounds
            .values()
            .flat_map(|log| log.proposals.iter())
            .filter(|e| e.proposal.valid_round == Some(round))
            .map(|e| e.id)
            .collect()
    }

    /// Adds a proposal (already checked: right height, sent by the round's proposer, valid
    /// signature). A repeat with `valid = true` upgrades a stored `false` verdict: the host may
    /// judge a value valid later (its clock caught up with the proposer's), never the reverse.
    pub fn add_proposal(&mut self, proposal: Proposal<V>, id: Hash, valid: bool, current_round: Round) -> Added<V> {
        let proposer = proposal.proposer;
        if let Some(log) = self.rounds.get_mut(&proposal.round)
            && !log.proposals.is_empty()
        {
            if let Some(same) =
                log.proposals.iter_mut().find(|e| e.id == id && e.proposal.valid_round == proposal.valid_round)
            {
                same.valid |= valid;
                return Added::Duplicate;
            }
            if log.proposals.len() >= 2 {
                return Added::Ignored;
            }
            let first = log.proposals[0].proposal.clone();
            // Kept: its value may be decided, and its valid round may be a claimed polka.
            log.proposals.push(ProposalEntry { proposal: proposal.clone(), id, valid });
            return Added::Equivocation(Box::new(Evidence::ConflictingProposals { first, second: proposal }));
        }
        if !self.admit(proposer, proposal.round, current_round) {
            return Added::Ignored;
        }
        self.rounds.entry(proposal.round).or_insert_with(RoundLog::new).proposals.push(ProposalEntry {
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

    /// Distinct validators with a `kind` vote in `round` for exactly `value` (`None` = nil).
    pub fn count(&self, round: Round, kind: VoteKind, value: Option<&Hash>) -> usize {
        let value = value.copied();
        self.rounds
            .get(&round)
            .map_or(0, |log| log.votes(kind).values().filter(|votes| votes.contains_key(&value)).count())
    }

    /// Distinct validators with a `kind` vote in `round`, whatever its value (the paper's `∗`).
    pub fn count_any(&self, round: Round, kind: VoteKind) -> usize {
        self.rounds.get(&round).map_or(0, |log| log.votes(kind).len())
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
        self.rounds.get(&round).map_or(&[], |log| log.proposals.as_slice())
    }

    /// `validator`'s vote of `kind` in `round` (its smallest value, if it equivocated).
    pub fn vote(&self, round: Round, kind: VoteKind, validator: ValidatorIndex) -> Option<&Vote> {
        self.rounds.get(&round).and_then(|log| log.votes(kind).get(&validator)).and_then(|votes| votes.values().next())
    }

    /// Every vote stored for `round`, prevotes first.
    pub fn round_votes(&self, round: Round) -> impl Iterator<Item = &Vote> {
        self.rounds
            .get(&round)
            .into_iter()
            .flat_map(|log| log.prevotes.values().chain(log.precommits.values()).flat_map(|votes| votes.values()))
    }

    /// The `kind` votes stored for `id` in `round`, by validator.
    pub fn votes_for(&self, round: Round, kind: VoteKind, id: &Hash) -> Vec<&Vote> {
        let value = Some(*id);
        self.rounds
            .get(&round)
            .map_or_else(Vec::new, |log| log.votes(kind).values().filter_map(|votes| votes.get(&value)).collect())
    }

    /// A value with at least `quorum` precommits in `round` (line 49). With fewer than `2q - n`
    /// faulty validators there is at most one.
    pub fn precommit_quorum(&self, round: Round, quorum: usize) -> Option<Hash> {
        let log = self.rounds.get(&round)?;
        let mut tally: BTreeMap<Hash, usize> = BTreeMap::new();
        for votes in log.precommits.values() {
            for id in votes.keys().flatten() {
                let count = tally.entry(*id).or_insert(0);
                *count += 1;
                if *count >= quorum {
                    return Some(*id);
                }
            }
        }
        None
    }

    /// Rounds holding at least one precommit.
    pub fn precommit_rounds(&self) -> BTreeSet<Round> {
        self.rounds.iter().filter(|(_, log)| !log.precommits.is_empty()).map(|(round, _)| *round).collect()
    }

    /// Signatures of the `kind` votes in `round` for `id`, sorted by validator.
    pub fn signatures(&self, round: Round, kind: VoteKind, id: &Hash) -> Vec<(ValidatorIndex, Signature)> {
        self.votes_for(round, kind, id).into_iter().map(|v| (v.validator, v.signature)).collect()
    }

    /// A received value with id `id`, preferably from `round`'s proposal; any round's will do
    /// since the id identifies the value.
    pub fn value(&self, round: Round, id: &Hash) -> Option<&V> {
        fn find<'a, V>(log: &'a RoundLog<V>, id: &Hash) -> Option<&'a V> {
            log.proposals.iter().find(|e| &e.id == id).map(|e| &e.proposal.value)
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
            .map(|log| {
                let votes: usize = log.prevotes.values().chain(log.precommits.values()).map(BTreeMap::len).sum();
                votes + log.proposals.len()
            })
            .sum()
    }
}
