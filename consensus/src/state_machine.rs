//! The Tendermint state machine: Algorithm 1 of Buchman, Kwon, Milosevic, "The latest gossip
//! on BFT consensus" (2018), with `q` for `2f + 1` and `n - q + 1` for `f + 1`.
//!
//! The paper's `upon` rules are conditions over the message log and the node's state. After
//! every input, `Consensus::run_rules` evaluates them in a fixed order until none fires, so
//! the outcome does not depend on the order in which messages arrived. Line numbers in comments
//! are the paper's.
//!
//! Deviations from the paper, none of which weakens a safety argument:
//! - `getValue()` (line 18) is asynchronous ([`Effect::GetValue`]), and the proposer arms the
//!   propose timeout too (line 21 arms it for the others only): a slow host, or a restarted
//!   proposer whose valid value's polka is no longer in its log, must not hold it in `propose`
//!   forever, the more so when `q = n` and the others wait for its prevote.
//! - On a decision (line 49) the machine stops in [`Step::Decided`]; the host stores the
//!   decision and starts the next height (lines 52-54) with [`Input::StartHeight`]. Messages
//!   for the next height are buffered meanwhile.
//! - Line 50's `valid(v)` is not re-required for a decision: `q` precommits include at least one
//!   correct node's, and a correct node precommits only a value it judged valid (line 36). Since
//!   the host's `valid` includes a clock check that can differ between nodes, requiring it here
//!   could strand a node forever on a height the others decided.
//! - Precommits for a value whose proposal never arrived still decide
//!   ([`Effect::DecideWithoutValue`]); the host fetches the value by id.
//! - Crash recovery: every signature is persisted ([`Effect::Persist`]) before it is sent, and
//!   [`Input::Resume`] restarts in the same round with the lock and own messages restored.
//! - The paper's gossip assumption is the host's job, with help from
//!   [`Consensus::rebroadcast`] and [`Consensus::catch_up`].
//! - An equivocator's votes stay counted, at most once per tally (see `vote_keeper`).
//! - `q` nil precommits in the current round start the next round at once instead of after
//!   the precommit timeout: no value can be decided in that round any more.

use std::collections::BTreeSet;
use std::mem;

use ed25519_dalek::{Signer, SigningKey};

use crate::certificate::CommitCertificate;
use crate::effect::{Effect, Message, RecoveryState, RoundValue};
use crate::input::Input;
use crate::proposal::Proposal;
use crate::quorum::{Params, ParamsError};
use crate::sign;
use crate::types::{Hash, Height, Round, Step, Timeout, TimeoutStep, ValidatorIndex, Value, VoteKind};
use crate::vote::Vote;
use crate::vote_keeper::{Added, VoteKeeper};

/// A value held with its round (a lock or a valid value), its id computed once.
#[derive(Clone, Debug)]
struct Held<V> {
    round: Round,
    id: Hash,
    value: V,
}

impl<V: Value> Held<V> {
    fn from_round_value(held: RoundValue<V>) -> Self {
        Held { round: held.round, id: held.value.id(), value: held.value }
    }

    fn to_round_value(&self) -> RoundValue<V> {
        RoundValue { round: self.round, value: self.value.clone() }
    }
}

/// Checks that `me`, if a member, is `key`'s place in `params`' UNL.
fn check_member(params: &Params, me: Option<ValidatorIndex>, key: &SigningKey) -> Result<(), ParamsError> {
    if let Some(me) = me {
        let own = params.unl.get(me).ok_or(ParamsError::ValidatorOutOfRange { me, n: params.n() })?;
        if *own != key.verifying_key() {
            return Err(ParamsError::KeyMismatch { me });
        }
    }
    Ok(())
}

/// One node's consensus state machine. Pure: no clock, no I/O, no randomness; the same inputs
/// give the same effects, signatures included (Ed25519 is deterministic).
#[derive(Debug)]
pub struct Consensus<V: Value> {
    params: Params,
    /// Own UNL index; `None` for an observer, which follows and decides but never signs.
    me: Option<ValidatorIndex>,
    key: SigningKey,
    /// `h_p`.
    height: Height,
    /// `round_p`.
    round: Round,
    /// `step_p`, plus `Unstarted` and `Decided`.
    step: Step,
    /// `lockedRound_p` and `lockedValue_p` (`None` is `-1` / nil).
    locked: Option<Held<V>>,
    /// `validRound_p` and `validValue_p`.
    valid: Option<Held<V>>,
    /// The message log of `height`.
    log: VoteKeeper<V>,
    /// Messages for `height + 1`, buffered until the host starts it.
    next: VoteKeeper<V>,
    /// Round in which line 34 last fired ("for the first time").
    prevote_timeout_round: Option<Round>,
    /// Round in which line 36 last fired ("for the first time").
    polka_round: Option<Round>,
    /// Round in which line 47 last fired ("for the first time").
    precommit_timeout_round: Option<Round>,
    /// A `GetValue` for (`height`, `round`) is outstanding.
    awaiting_value: bool,
    /// Round whose precommits decided `height`, once decided.
    decision_round: Option<Round>,
    /// Rounds with precommits added since line 49 was last evaluated: a decision can only
    /// appear where a precommit arrived, so only those rounds are tallied again.
    new_precommit_rounds: BTreeSet<Round>,
}

impl<V: Value> Consensus<V> {
    /// A machine for UNL member `me` (or an observer when `None`) signing with `key`. Nothing
    /// happens until the first [`Input::StartHeight`] or [`Input::Resume`].
    pub fn new(params: Params, me: Option<ValidatorIndex>, key: SigningKey) -> Result<Self, ParamsError> {
        params.validate()?;
        check_member(&params, me, &key)?;
        Ok(Consensus {
            params,
            me,
            key,
            height: 0,
            round: 0,
            step: Step::Unstarted,
            locked: None,
            valid: None,
            log: VoteKeeper::new(),
            next: VoteKeeper::new(),
            prevote_timeout_round: None,
            polka_round: None,
            precommit_timeout_round: None,
            awaiting_value: false,
            decision_round: None,
            new_precommit_rounds: BTreeSet::new(),
        })
    }

    /// Hands the machine to another membership: `params` and own index `me` from the next
    /// height on. Called between heights, after `height` is decided and before the next one
    /// starts. Messages buffered for the next height were checked against the old members, so
    /// they are dropped: a signer's index means another validator under the new ones.
    pub fn change_members(&mut self, params: Params, me: Option<ValidatorIndex>) -> Result<(), ParamsError> {
        params.validate()?;
        check_member(&params, me, &self.key)?;
        self.params = params;
        self.me = me;
        self.next = VoteKeeper::new();
        Ok(())
    }

    /// Times rounds by `timeouts` from the next timeout scheduled on (the members stay).
    pub fn set_timeouts(&mut self, timeouts: crate::Timeouts) {
        self.params.timeouts = timeouts;
    }

    /// Current height `h_p`.
    pub fn height(&self) -> Height {
        self.height
    }

    /// Current round `round_p`.
    pub fn round(&self) -> Round {
        self.round
    }

    /// Current step.
    pub fn step(&self) -> Step {
        self.step
    }

    /// The parameters the machine runs with.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// `lockedRound_p`, `None` for `-1`.
    pub fn locked_round(&self) -> Option<Round> {
        self.locked.as_ref().map(|l| l.round)
    }

    /// `validRound_p`, `None` for `-1`.
    pub fn valid_round(&self) -> Option<Round> {
        self.valid.as_ref().map(|v| v.round)
    }

    /// The proposer of (height, round): UNL[(height + round) mod n].
    pub fn proposer(&self, height: Height, round: Round) -> ValidatorIndex {
        let n = self.params.n() as u64;
        // Reduce each term first so the sum cannot overflow. `n >= 1` (validated).
        ((height % n + u64::from(round) % n) % n) as ValidatorIndex
    }

    /// What the host must keep to restart safely: the lock, the valid value with its proof of
    /// lock, and this node's own signed messages of the current and previous round.
    /// [`Effect::Persist`] carries it after every signature.
    pub fn recovery_state(&self) -> RecoveryState<V> {
        let mut signed = Vec::new();
        if let Some(me) = self.me {
            let mut rounds = vec![self.round];
            if let Some(previous) = self.round.checked_sub(1) {
                rounds.insert(0, previous);
            }
            for round in rounds {
                if let Some(entry) = self.log.proposals(round).iter().find(|e| e.proposal.proposer == me) {
                    signed.push(Message::Proposal(entry.proposal.clone()));
                }
                for kind in [VoteKind::Prevote, VoteKind::Precommit] {
                    if let Some(vote) = self.log.vote(round, kind, me) {
                        signed.push(Message::Vote(vote.clone()));
                    }
                }
            }
        }
        let proof_of_lock = self.valid.as_ref().map_or_else(Vec::new, |valid| {
            self.log.votes_for(valid.round, VoteKind::Prevote, &valid.id).into_iter().cloned().collect()
        });
        RecoveryState {
            height: self.height,
            round: self.round,
            locked: self.locked.as_ref().map(Held::to_round_value),
            valid: self.valid.as_ref().map(Held::to_round_value),
            signed,
            proof_of_lock,
        }
    }

    /// This node's own signed messages worth sending again to every peer: its proposal of
    /// the current round with the prevotes that justify its valid round (the paper's
    /// proof-of-lock, without which a node that missed that polka can never accept it, line
    /// 28), its votes of the current round, and the precommit that decided the height.
    ///
    /// The paper assumes gossip: a message one correct node received reaches every correct node
    /// eventually. The host provides it by sending this to every peer periodically (more often
    /// than the propose timeout) while a height is in progress, together with
    /// [`Consensus::catch_up`] for peers in lower rounds and stored ledgers for peers at lower
    /// heights.
    pub fn rebroadcast(&self) -> Vec<Message<V>> {
        let mut out = Vec::new();
        let Some(me) = self.me else {
            return out;
        };
        if self.step == Step::Unstarted {
            return out;
        }
        if let Some(entry) = self.log.proposals(self.round).iter().find(|e| e.proposal.proposer == me) {
            out.push(Message::Proposal(entry.proposal.clone()));
            out.extend(self.proof_of_lock(&entry.proposal, entry.id));
        }
        let mut rounds = vec![self.round];
        if let Some(decided) = self.decision_round
            && decided != self.round
        {
            rounds.push(decided);
        }
        for round in rounds {
            for kind in [VoteKind::Prevote, VoteKind::Precommit] {
                if let Some(vote) = self.log.vote(round, kind, me) {
                    out.push(Message::Vote(vote.clone()));
                }
            }
        }
        out
    }

    /// Everything held for the current round and the one before (anyone's messages, plus the
    /// proof-of-lock of their proposals): what a peer seen in a lower round of this height needs
    /// to reach this round, by line 55 (`n - q + 1` senders of a round) or by `q` precommits
    /// and line 65. The host sends it to such a peer, at most once per peer and round per
    /// rebroadcast period.
    pub fn catch_up(&self) -> Vec<Message<V>> {
        let mut out = Vec::new();
        if !self.is_running() {
            return out;
        }
        let mut rounds = vec![self.round];
        if let Some(previous) = self.round.checked_sub(1) {
            rounds.insert(0, previous);
        }
        for round in rounds {
            for entry in self.log.proposals(round) {
                out.push(Message::Proposal(entry.proposal.clone()));
                out.extend(self.proof_of_lock(&entry.proposal, entry.id));
            }
            out.extend(self.log.round_votes(round).cloned().map(Message::Vote));
        }
        out
    }

    /// The prevotes for `proposal`'s value in its valid round, if it has one.
    fn proof_of_lock(&self, proposal: &Proposal<V>, id: Hash) -> Vec<Message<V>> {
        match proposal.valid_round {
            Some(vr) => {
                self.log.votes_for(vr, VoteKind::Prevote, &id).into_iter().cloned().map(Message::Vote).collect()
            }
            None => Vec::new(),
        }
    }

    /// Messages buffered for the next height (bounded: a few per validator, kind and round, for
    /// a few rounds per validator).
    pub fn buffered(&self) -> usize {
        self.next.len()
    }

    /// Feeds one input; returns what the host must do, in order.
    pub fn handle(&mut self, input: Input<V>) -> Vec<Effect<V>> {
        let mut out = Vec::new();
        match input {
            Input::StartHeight { height, round } => {
                self.start_height(height, round, None, &mut out);
            }
            Input::Resume(state) => {
                let round = state.round;
                self.start_height(state.height, round, Some(state), &mut out);
            }
            Input::Proposal { proposal, valid } => self.on_proposal(proposal, valid, &mut out),
            Input::Vote(vote) => self.on_vote(vote, &mut out),
            Input::ProposeValue { height, round, value } => self.on_propose_value(height, round, value, &mut out),
            Input::Timeout(timeout) => self.on_timeout(timeout, &mut out),
        }
        self.run_rules(&mut out);
        out
    }

    fn is_running(&self) -> bool {
        matches!(self.step, Step::Propose | Step::Prevote | Step::Precommit)
    }

    /// Lines 2-10 and 53: a fresh height with an empty log (plus what was buffered for it),
    /// or, when resuming, the persisted lock, valid value and own messages.
    fn start_height(
        &mut self,
        height: Height,
        round: Round,
        resumed: Option<RecoveryState<V>>,
        out: &mut Vec<Effect<V>>,
    ) {
        let started = self.step != Step::Unstarted;
        if started && height <= self.height {
            // Restarting a height in the same machine would sign its rounds again.
            return;
        }
        let buffered = mem::replace(&mut self.next, VoteKeeper::new());
        self.log = if started && self.height.checked_add(1) == Some(height) { buffered } else { VoteKeeper::new() };
        self.height = height;
        self.locked = None;
        self.valid = None;
        self.prevote_timeout_round = None;
        self.polka_round = None;
        self.precommit_timeout_round = None;
        self.awaiting_value = false;
        self.decision_round = None;
        // Buffered proposals were judged (if at all) before the previous height was stored.
        for proposal in self.log.take_proposals() {
            out.push(Effect::ValidateProposal(proposal));
        }
        self.new_precommit_rounds = self.log.precommit_rounds();
        let Some(state) = resumed else {
            self.start_round(round, out);
            return;
        };
        self.locked = state.locked.map(Held::from_round_value);
        self.valid = state.valid.map(Held::from_round_value);
        // Own messages go back into the log first, so that nothing is signed twice: the
        // round restarts where it was, and the node can still complete it with the others.
        for message in state.signed {
            self.restore(message);
        }
        for vote in state.proof_of_lock {
            if vote.height == height && vote.kind == VoteKind::Prevote {
                self.log.add_vote(vote, Round::MAX);
            }
        }
        self.start_round(round, out);
        if let Some(me) = self.me {
            if self.log.vote(round, VoteKind::Precommit, me).is_some() {
                self.step = Step::Precommit;
            } else if self.log.vote(round, VoteKind::Prevote, me).is_some() {
                self.step = Step::Prevote;
            }
        }
    }

    /// Puts one of this node's own persisted messages back into the log.
    fn restore(&mut self, message: Message<V>) {
        let Some(me) = self.me else {
            return;
        };
        match message {
            Message::Vote(vote) if vote.validator == me && vote.height == self.height => {
                if vote.kind == VoteKind::Precommit {
                    self.new_precommit_rounds.insert(vote.round);
                }
                self.log.add_vote(vote, Round::MAX);
            }
            Message::Proposal(proposal) if proposal.proposer == me && proposal.height == self.height => {
                let id = proposal.value.id();
                self.log.add_proposal(proposal, id, true, Round::MAX);
            }
            Message::Vote(_) | Message::Proposal(_) => {}
        }
    }

    /// Lines 11-21: StartRound(round).
    fn start_round(&mut self, round: Round, out: &mut Vec<Effect<V>>) {
        self.round = round;
        self.step = Step::Propose;
        self.awaiting_value = false;
        // Line 21, armed by the proposer too (deviation, see the module doc). Armed first, so
        // that a re-proposal's immediate prevote does not depend on the order of effects.
        self.schedule(TimeoutStep::Propose, out);
        let Some(me) = self.me.filter(|me| *me == self.proposer(self.height, round)) else {
            return;
        };
        if self.log.proposals(round).iter().any(|e| e.proposal.proposer == me) {
            // Already proposed in this round (restored after a restart).
            return;
        }
        if let Some(valid) = self.valid.clone() {
            // Lines 15-16, 19: re-propose the valid value with its valid round.
            self.sign_proposal(valid.value, valid.id, Some(valid.round), out);
        } else {
            // Line 18: getValue(), answered later by Input::ProposeValue.
            self.awaiting_value = true;
            out.push(Effect::GetValue { height: self.height, round });
        }
    }

    fn on_proposal(&mut self, proposal: Proposal<V>, valid: bool, out: &mut Vec<Effect<V>>) {
        if self.step == Step::Unstarted
            || proposal.proposer >= self.params.n()
            || proposal.proposer != self.proposer(proposal.height, proposal.round)
        {
            // Lines 22, 28, 36, 49 only consider proposals "from proposer(h, r)".
            return;
        }
        let added = if proposal.height == self.height {
            if self.step == Step::Decided {
                return;
            }
            let id = proposal.value.id();
            self.log.add_proposal(proposal, id, valid, self.round)
        } else if self.height.checked_add(1) == Some(proposal.height) {
            let id = proposal.value.id();
            // Judged again at StartHeight (Effect::ValidateProposal).
            self.next.add_proposal(proposal, id, false, 0)
        } else {
            return;
        };
        if let Added::Equivocation(evidence) = added {
            out.push(Effect::Equivocation(*evidence));
        }
    }

    fn on_vote(&mut self, vote: Vote, out: &mut Vec<Effect<V>>) {
        if self.step == Step::Unstarted || vote.validator >= self.params.n() {
            return;
        }
        let added = if vote.height == self.height {
            if self.step == Step::Decided {
                return;
            }
            if vote.kind == VoteKind::Precommit {
                self.new_precommit_rounds.insert(vote.round);
            }
            self.log.add_vote(vote, self.round)
        } else if self.height.checked_add(1) == Some(vote.height) {
            self.next.add_vote(vote, 0)
        } else {
            return;
        };
        if let Added::Equivocation(evidence) = added {
            out.push(Effect::Equivocation(*evidence));
        }
    }

    /// Line 18-19, completed: the host's value arrives.
    fn on_propose_value(&mut self, height: Height, round: Round, value: V, out: &mut Vec<Effect<V>>) {
        if height != self.height || round != self.round || self.step != Step::Propose || !self.awaiting_value {
            return;
        }
        self.awaiting_value = false;
        let id = value.id();
        // validValue_p is nil here (else line 16 had run), so validRound_p is -1.
        self.sign_proposal(value, id, None, out);
    }

    /// Lines 57-67.
    fn on_timeout(&mut self, timeout: Timeout, out: &mut Vec<Effect<V>>) {
        if !self.is_running() || timeout.height != self.height || timeout.round != self.round {
            return;
        }
        match timeout.step {
            // Lines 57-60.
            TimeoutStep::Propose if self.step == Step::Propose => {
                self.awaiting_value = false;
                self.sign_vote(VoteKind::Prevote, None, out);
                self.step = Step::Prevote;
            }
            // Lines 61-64.
            TimeoutStep::Prevote if self.step == Step::Prevote => {
                self.sign_vote(VoteKind::Precommit, None, out);
                self.step = Step::Precommit;
            }
            // Lines 65-67 (no round above Round::MAX: stay).
            TimeoutStep::Precommit => {
                if let Some(next) = self.round.checked_add(1) {
                    self.start_round(next, out);
                }
            }
            TimeoutStep::Propose | TimeoutStep::Prevote => {}
        }
    }

    /// Evaluates the `upon` rules until none fires. Each firing changes the step or round, or
    /// sets a "first time" guard, so this terminates.
    fn run_rules(&mut self, out: &mut Vec<Effect<V>>) {
        while self.is_running() {
            let fired = self.decide(out)
                || self.skip_round(out)
                || self.prevote_on_proposal(out)
                || self.schedule_prevote_timeout(out)
                || self.precommit_on_polka(out)
                || self.precommit_nil_on_nil_polka(out)
                || self.next_round_on_nil_precommits(out)
                || self.schedule_precommit_timeout(out);
            if !fired {
                break;
            }
        }
    }

    /// Lines 49-54: `q` precommits for one value in any round decide it.
    fn decide(&mut self, out: &mut Vec<Effect<V>>) -> bool {
        let quorum = self.params.quorum;
        let rounds = mem::take(&mut self.new_precommit_rounds);
        let Some((round, id)) =
            rounds.into_iter().find_map(|round| Some((round, self.log.precommit_quorum(round, quorum)?)))
        else {
            return false;
        };
        let certificate = CommitCertificate {
            height: self.height,
            round,
            value_id: id,
            signatures: self.log.signatures(round, VoteKind::Precommit, &id),
        };
        // Line 50's valid(v) deliberately not re-checked (see the module doc).
        match self.log.value(round, &id) {
            Some(value) => out.push(Effect::Decide { value: value.clone(), certificate }),
            None => out.push(Effect::DecideWithoutValue { certificate }),
        }
        self.step = Step::Decided;
        self.awaiting_value = false;
        self.decision_round = Some(round);
        true
    }

    /// Line 55: `n - q + 1` distinct senders in a higher round prove a correct node is there.
    fn skip_round(&mut self, out: &mut Vec<Effect<V>>) -> bool {
        let threshold = self.params.skip_threshold();
        match self.log.highest_round_with_senders(self.round, threshold) {
            Some(round) => {
                self.start_round(round, out);
                true
            }
            None => false,
        }
    }

    /// Lines 22-33: prevote on the round's proposal.
    fn prevote_on_proposal(&mut self, out: &mut Vec<Effect<V>>) -> bool {
        if self.step != Step::Propose {
            return false;
        }
        let quorum = self.params.quorum;
        let mut prevote = None;
        for entry in self.log.proposals(self.round) {
            let id = entry.id;
            match entry.proposal.valid_round {
                // Line 22: a fresh proposal. Line 23: valid and (unlocked or locked on it).
                None => {
                    let free = self.locked.as_ref().is_none_or(|l| l.id == id);
                    prevote = Some((entry.valid && free).then_some(id));
                    break;
                }
                // Line 28: a re-proposal with q prevotes for it in its valid round vr < round_p.
                // Line 29: valid and (locked no later than vr, or locked on it).
                Some(vr) if vr < self.round && self.log.count(vr, VoteKind::Prevote, Some(&id)) >= quorum => {
                    let free = self.locked.as_ref().is_none_or(|l| l.round <= vr || l.id == id);
                    prevote = Some((entry.valid && free).then_some(id));
                    break;
                }
                // vr >= round_p never qualifies; without the polka yet, wait for it (or for
                // the propose timeout).
                Some(_) => {}
            }
        }
        let Some(value) = prevote else {
            return false;
        };
        // Lines 24/26, 30/32, then 27/33.
        self.awaiting_value = false;
        self.sign_vote(VoteKind::Prevote, value, out);
        self.step = Step::Prevote;
        true
    }

    /// Lines 34-35: `q` prevotes of any kind in step prevote arm the prevote timeout, once.
    fn schedule_prevote_timeout(&mut self, out: &mut Vec<Effect<V>>) -> bool {
        if self.step != Step::Prevote
            || self.prevote_timeout_round == Some(self.round)
            || self.log.count_any(self.round, VoteKind::Prevote) < self.params.quorum
        {
            return false;
        }
        self.prevote_timeout_round = Some(self.round);
        self.schedule(TimeoutStep::Prevote, out);
        true
    }

    /// Lines 36-43: a valid proposal with `q` prevotes (a polka) in this round, once: lock and
    /// precommit it if still in step prevote; in any case it becomes the valid value.
    fn precommit_on_polka(&mut self, out: &mut Vec<Effect<V>>) -> bool {
        if !matches!(self.step, Step::Prevote | Step::Precommit) || self.polka_round == Some(self.round) {
            return false;
        }
        let quorum = self.params.quorum;
        let round = self.round;
        let Some(held) = self
            .log
            .proposals(round)
            .iter()
            .find(|e| e.valid && self.log.count(round, VoteKind::Prevote, Some(&e.id)) >= quorum)
            .map(|e| Held { round, id: e.id, value: e.proposal.value.clone() })
        else {
            return false;
        };
        self.polka_round = Some(round);
        // Lines 42-43 (set before signing so that the Persist before the precommit has them).
        self.valid = Some(held.clone());
        if self.step == Step::Prevote {
            // Lines 37-41.
            let id = held.id;
            self.locked = Some(held);
            self.sign_vote(VoteKind::Precommit, Some(id), out);
            self.step = Step::Precommit;
        }
        true
    }

    /// Lines 44-46: `q` nil prevotes in step prevote: precommit nil.
    fn precommit_nil_on_nil_polka(&mut self, out: &mut Vec<Effect<V>>) -> bool {
        if self.step != Step::Prevote || self.log.count(self.round, VoteKind::Prevote, None) < self.params.quorum {
            return false;
        }
        self.sign_vote(VoteKind::Precommit, None, out);
        self.step = Step::Precommit;
        true
    }

    /// Not in the paper: `q` nil precommits in this round. A correct node precommits once per
    /// round, so no value can gather `q` precommits in it any more (`2q > n`) and the precommit
    /// timeout (lines 47-48, 65) could only delay the next round: it starts at once. Timeouts
    /// carry no safety — the paper's argument holds for any timing — and [`Self::decide`]
    /// still looks at every round, so a quorum completed late (equivocators) is not missed.
    fn next_round_on_nil_precommits(&mut self, out: &mut Vec<Effect<V>>) -> bool {
        if self.log.count(self.round, VoteKind::Precommit, None) < self.params.quorum {
            return false;
        }
        let Some(next) = self.round.checked_add(1) else {
            return false;
        };
        self.start_round(next, out);
        true
    }

    /// Lines 47-48: `q` precommits of any kind in this round arm the precommit timeout, once.
    fn schedule_precommit_timeout(&mut self, out: &mut Vec<Effect<V>>) -> bool {
        if self.precommit_timeout_round == Some(self.round)
            || self.log.count_any(self.round, VoteKind::Precommit) < self.params.quorum
        {
            return false;
        }
        self.precommit_timeout_round = Some(self.round);
        self.schedule(TimeoutStep::Precommit, out);
        true
    }

    fn schedule(&self, step: TimeoutStep, out: &mut Vec<Effect<V>>) {
        out.push(Effect::ScheduleTimeout {
            timeout: Timeout { height: self.height, round: self.round, step },
            after: self.params.timeouts.duration(step, self.round),
        });
    }

    /// Line 19: sign and broadcast this round's proposal; never a second one in a round.
    fn sign_proposal(&mut self, value: V, id: Hash, valid_round: Option<Round>, out: &mut Vec<Effect<V>>) {
        let Some(me) = self.me else {
            return;
        };
        if self.log.proposals(self.round).iter().any(|e| e.proposal.proposer == me) {
            return;
        }
        let bytes = sign::proposal_bytes(&self.params.network, self.height, self.round, valid_round, &id);
        let proposal = Proposal {
            height: self.height,
            round: self.round,
            value,
            valid_round,
            proposer: me,
            signature: self.key.sign(&bytes),
        };
        // Our own value: new from the host (valid by construction) or validValue_p (judged
        // valid at line 36).
        self.log.add_proposal(proposal.clone(), id, true, self.round);
        out.push(Effect::Persist(self.recovery_state()));
        out.push(Effect::BroadcastProposal(proposal));
    }

    /// Sign and broadcast a vote of the current round; never two different ones of a kind.
    fn sign_vote(&mut self, kind: VoteKind, value: Option<Hash>, out: &mut Vec<Effect<V>>) {
        let Some(me) = self.me else {
            return;
        };
        if self.log.vote(self.round, kind, me).is_some() {
            // Already signed one (the step logic never asks twice; this is the backstop, and
            // after a restart the persisted vote is what is found here).
            return;
        }
        let vote = Vote::sign(&self.params.network, kind, self.height, self.round, value, me, &self.key);
        if kind == VoteKind::Precommit {
            self.new_precommit_rounds.insert(self.round);
        }
        self.log.add_vote(vote.clone(), self.round);
        out.push(Effect::Persist(self.recovery_state()));
        out.push(Effect::BroadcastVote(vote));
    }
}
