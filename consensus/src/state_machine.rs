//! The Tendermint state machine: Algorithm 1 of Buchman, Kwon, Milosevic, "The latest gossip
//! on BFT consensus" (2018), with `q` for `2f + 1` and `n - q + 1` for `f + 1`.
//!
//! The paper's `upon` rules are conditions over the message log and the node's state. After
//! every input, [`Consensus::run_rules`] evaluates them in a fixed order until none fires, so
//! the outcome does not depend on the order in which messages arrived. Line numbers in comments
//! are the paper's.
//!
//! Deviations from the paper, each forced by the host owning I/O:
//! - `getValue()` (line 18) is asynchronous ([`Effect::GetValue`]); a proposer waiting for it
//!   arms the propose timeout too, so a slow host cannot hold it in `propose` forever.
//! - On a decision (line 49) the machine stops in [`Step::Decided`]; the host stores the
//!   decision and starts the next height (lines 52-54) with [`Input::StartHeight`].
//! - Line 50's `valid(v)` is not re-required for a decision: `q` precommits include at least one
//!   correct node's, and a correct node precommits only a value it judged valid (line 36). Since
//!   the host's `valid` includes a clock check that can differ between nodes, requiring it here
//!   could strand a node forever on a height the others decided.
//! - Precommits for a value whose proposal never arrived still decide
//!   ([`Effect::DecideWithoutValue`]); the host fetches the value by id.

use std::mem;

use ed25519_dalek::{Signer, SigningKey};

use crate::certificate::CommitCertificate;
use crate::effect::{Effect, RecoveryState, RoundValue};
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
        Held {
            round: held.round,
            id: held.value.id(),
            value: held.value,
        }
    }

    fn to_round_value(&self) -> RoundValue<V> {
        RoundValue {
            round: self.round,
            value: self.value.clone(),
        }
    }
}

/// What the last [`Effect::Persist`] covered; a signature outside it needs a new one first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Persisted {
    height: Height,
    round: Round,
    locked: Option<Round>,
    valid: Option<Round>,
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
    /// What the last `Persist` effect covered.
    persisted: Option<Persisted>,
    /// False only after resuming from a state at `Round::MAX`: no round above it exists, so
    /// the node must not sign again in this height.
    may_sign: bool,
    /// Round whose precommits decided `height`, once decided.
    decision_round: Option<Round>,
}

impl<V: Value> Consensus<V> {
    /// A machine for UNL member `me` (or an observer when `None`) signing with `key`. Nothing
    /// happens until the first [`Input::StartHeight`] or [`Input::Resume`].
    pub fn new(
        params: Params,
        me: Option<ValidatorIndex>,
        key: SigningKey,
    ) -> Result<Self, ParamsError> {
        params.validate()?;
        if let Some(me) = me {
            let own = params.unl.get(me).ok_or(ParamsError::ValidatorOutOfRange {
                me,
                n: params.n(),
            })?;
            if *own != key.verifying_key() {
                return Err(ParamsError::KeyMismatch { me });
            }
        }
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
            persisted: None,
            may_sign: true,
            decision_round: None,
        })
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

    /// What the host must keep to restart safely; the same as the last [`Effect::Persist`]
    /// once the node has signed in the current round.
    pub fn recovery_state(&self) -> RecoveryState<V> {
        RecoveryState {
            height: self.height,
            round: self.round,
            locked: self.locked.as_ref().map(Held::to_round_value),
            valid: self.valid.as_ref().map(Held::to_round_value),
        }
    }

    /// This node's own signed messages worth sending again: those of the current round, and
    /// the precommit that decided the height. The core assumes eventual delivery; the host
    /// provides it by calling this periodically (e.g. every few hundred ms) while a height is
    /// in progress and sending the result to every peer.
    pub fn rebroadcast(&self) -> Vec<Effect<V>> {
        let mut out = Vec::new();
        let Some(me) = self.me else {
            return out;
        };
        if self.step == Step::Unstarted {
            return out;
        }
        let mut rounds = vec![self.round];
        if let Some(decided) = self.decision_round
            && decided != self.round
        {
            rounds.push(decided);
        }
        for round in rounds {
            if let Some(entry) = self
                .log
                .proposals(round)
                .iter()
                .find(|e| e.proposal.proposer == me)
            {
                out.push(Effect::BroadcastProposal(entry.proposal.clone()));
            }
            for kind in [VoteKind::Prevote, VoteKind::Precommit] {
                if let Some(vote) = self.log.vote(round, kind, me) {
                    out.push(Effect::BroadcastVote(vote.clone()));
                }
            }
        }
        out
    }

    /// Messages buffered for the next height (bounded: at most one per validator, kind and
    /// round, for a few rounds per validator).
    pub fn buffered(&self) -> usize {
        self.next.len()
    }

    /// Feeds one input; returns what the host must do, in order.
    pub fn handle(&mut self, input: Input<V>) -> Vec<Effect<V>> {
        let mut out = Vec::new();
        match input {
            Input::StartHeight { height, round } => {
                self.start_height(height, round, None, None, true, &mut out);
            }
            Input::Resume(state) => {
                let (round, may_sign) = match state.round.checked_add(1) {
                    Some(round) => (round, true),
                    None => (Round::MAX, false),
                };
                let locked = state.locked.map(Held::from_round_value);
                let valid = state.valid.map(Held::from_round_value);
                self.start_height(state.height, round, locked, valid, may_sign, &mut out);
            }
            Input::Proposal { proposal, valid } => self.on_proposal(proposal, valid, &mut out),
            Input::Vote(vote) => self.on_vote(vote, &mut out),
            Input::ProposeValue {
                height,
                round,
                value,
            } => self.on_propose_value(height, round, value, &mut out),
            Input::Timeout(timeout) => self.on_timeout(timeout, &mut out),
        }
        self.run_rules(&mut out);
        out
    }

    fn is_running(&self) -> bool {
        matches!(self.step, Step::Propose | Step::Prevote | Step::Precommit)
    }

    /// Lines 2-10 and 53: a fresh height with an empty log (plus what was buffered for it).
    fn start_height(
        &mut self,
        height: Height,
        round: Round,
        locked: Option<Held<V>>,
        valid: Option<Held<V>>,
        may_sign: bool,
        out: &mut Vec<Effect<V>>,
    ) {
        let started = self.step != Step::Unstarted;
        if started && height <= self.height {
            // Restarting a height in the same machine would sign its rounds again.
            return;
        }
        let buffered = mem::replace(&mut self.next, VoteKeeper::new());
        self.log = if started && self.height.checked_add(1) == Some(height) {
            buffered
        } else {
            VoteKeeper::new()
        };
        self.height = height;
        self.locked = locked;
        self.valid = valid;
        self.prevote_timeout_round = None;
        self.polka_round = None;
        self.precommit_timeout_round = None;
        self.awaiting_value = false;
        self.persisted = None;
        self.may_sign = may_sign;
        self.decision_round = None;
        // Buffered proposals were judged (if at all) before the previous height was stored.
        for proposal in self.log.take_proposals() {
            out.push(Effect::ValidateProposal(proposal));
        }
        self.start_round(round, out);
    }

    /// Lines 11-21: StartRound(round).
    fn start_round(&mut self, round: Round, out: &mut Vec<Effect<V>>) {
        self.round = round;
        self.step = Step::Propose;
        self.awaiting_value = false;
        let is_proposer = self.me == Some(self.proposer(self.height, round));
        if is_proposer && self.may_sign {
            if let Some(valid) = self.valid.clone() {
                // Lines 15-16, 19: re-propose the valid value with its valid round.
                self.sign_proposal(valid.value, valid.id, Some(valid.round), out);
            } else {
                // Line 18: getValue(), answered later by Input::ProposeValue. Deviation: the
                // proposer also arms line 21's timeout, since the answer may be slow.
                self.awaiting_value = true;
                out.push(Effect::GetValue {
                    height: self.height,
                    round,
                });
                self.schedule(TimeoutStep::Propose, out);
            }
        } else {
            // Line 21.
            self.schedule(TimeoutStep::Propose, out);
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
            out.push(Effect::Equivocation(evidence));
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
            self.log.add_vote(vote, self.round)
        } else if self.height.checked_add(1) == Some(vote.height) {
            self.next.add_vote(vote, 0)
        } else {
            return;
        };
        if let Added::Equivocation(evidence) = added {
            out.push(Effect::Equivocation(evidence));
        }
    }

    /// Line 18-19, completed: the host's value arrives.
    fn on_propose_value(
        &mut self,
        height: Height,
        round: Round,
        value: V,
        out: &mut Vec<Effect<V>>,
    ) {
        if height != self.height
            || round != self.round
            || self.step != Step::Propose
            || !self.awaiting_value
        {
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
                || self.schedule_precommit_timeout(out);
            if !fired {
                break;
            }
        }
    }

    /// Lines 49-54: `q` precommits for one value in any round decide it.
    fn decide(&mut self, out: &mut Vec<Effect<V>>) -> bool {
        let Some((round, id)) = self.log.precommit_quorum(self.params.quorum) else {
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
            Some(value) => out.push(Effect::Decide {
                value: value.clone(),
                certificate,
            }),
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
                Some(vr)
                    if vr < self.round
                        && self.log.count(vr, VoteKind::Prevote, Some(&id)) >= quorum =>
                {
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
        if !matches!(self.step, Step::Prevote | Step::Precommit)
            || self.polka_round == Some(self.round)
        {
            return false;
        }
        let quorum = self.params.quorum;
        let round = self.round;
        let Some(held) = self
            .log
            .proposals(round)
            .iter()
            .find(|e| e.valid && self.log.count(round, VoteKind::Prevote, Some(&e.id)) >= quorum)
            .map(|e| Held {
                round,
                id: e.id,
                value: e.proposal.value.clone(),
            })
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
        if self.step != Step::Prevote
            || self.log.count(self.round, VoteKind::Prevote, None) < self.params.quorum
        {
            return false;
        }
        self.sign_vote(VoteKind::Precommit, None, out);
        self.step = Step::Precommit;
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
            timeout: Timeout {
                height: self.height,
                round: self.round,
                step,
            },
            after: self.params.timeouts.duration(step, self.round),
        });
    }

    /// Emits [`Effect::Persist`] unless the last one already covers a signature in the current
    /// round with the current lock and valid value.
    fn persist_before_signing(&mut self, out: &mut Vec<Effect<V>>) {
        let now = Persisted {
            height: self.height,
            round: self.round,
            locked: self.locked_round(),
            valid: self.valid_round(),
        };
        if self.persisted != Some(now) {
            self.persisted = Some(now);
            out.push(Effect::Persist(self.recovery_state()));
        }
    }

    /// Line 19: sign and broadcast this round's proposal; never a second one in a round.
    fn sign_proposal(
        &mut self,
        value: V,
        id: Hash,
        valid_round: Option<Round>,
        out: &mut Vec<Effect<V>>,
    ) {
        let Some(me) = self.me else {
            return;
        };
        if !self.may_sign
            || self
                .log
                .proposals(self.round)
                .iter()
                .any(|e| e.proposal.proposer == me)
        {
            return;
        }
        self.persist_before_signing(out);
        let bytes = sign::proposal_bytes(self.height, self.round, valid_round, &id);
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
        self.log
            .add_proposal(proposal.clone(), id, true, self.round);
        out.push(Effect::BroadcastProposal(proposal));
    }

    /// Sign and broadcast a vote of the current round; never two different ones of a kind.
    fn sign_vote(&mut self, kind: VoteKind, value: Option<Hash>, out: &mut Vec<Effect<V>>) {
        let Some(me) = self.me else {
            return;
        };
        if !self.may_sign || self.log.vote(self.round, kind, me).is_some() {
            // Already signed one (the step logic never asks twice; this is the backstop).
            return;
        }
        self.persist_before_signing(out);
        let vote = Vote::sign(kind, self.height, self.round, value, me, &self.key);
        self.log.add_vote(vote.clone(), self.round);
        out.push(Effect::BroadcastVote(vote));
    }
}
