//! Carrying out the core's effects, and the two judgments the core leaves to its host: what
//! to propose (a fresh ledger from the mempool, or a heartbeat) and whether a proposed ledger
//! is valid on this node's chain (the paper's `valid(v)`).

use super::Event;
use super::Node;
use crate::wire;
use hp_consensus::{Effect, Input};
use hp_ledger::{Ledger, LedgerBody, LedgerRecord};
use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{debug, error, info, warn};

/// How far ahead of this node's clock a proposed ledger time may be.
const MAX_CLOCK_AHEAD: Duration = Duration::from_secs(15);

pub(super) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Node {
    /// How long to wait for a proposal: not at all when the round's proposer is another node
    /// this one has no connection to. Prevoting nil at once is always safe, and it spares the
    /// network a full propose timeout at every height a stopped node would propose.
    fn propose_wait(&self, timeout: hp_consensus::Timeout, after: Duration) -> Duration {
        if timeout.step != hp_consensus::TimeoutStep::Propose {
            return after;
        }
        let proposer = self.core.proposer(timeout.height, timeout.round);
        let proposer_link = self.core.params().unl.get(proposer).and_then(|key| self.peers.link_of(key.as_bytes()));
        if Some(proposer) == self.core_me() || proposer_link.is_some_and(|link| self.peers.is_connected(link)) {
            return after;
        }
        debug!(height = timeout.height, round = timeout.round, proposer, "proposer not connected; not waiting for it");
        Duration::ZERO
    }

    pub(super) fn apply(&mut self, effects: Vec<Effect<Ledger>>) {
        // Each Persist supersedes the ones before it (it records everything signed so far), so
        // the last one is written — once, durably — where the first one stands: before any
        // message that follows a Persist leaves the node (the core's contract).
        let mut latest = effects.iter().rev().find_map(|e| match e {
            Effect::Persist(state) => Some(state.clone()),
            _ => None,
        });
        for effect in effects {
            match effect {
                Effect::Persist(_) => {
                    if let Some(state) = latest.take() {
                        self.persist(&state);
                    }
                }
                Effect::BroadcastProposal(p) => {
                    debug!(height = p.height, round = p.round, inputs = p.value.inputs.len(), "proposing");
                    self.peers.broadcast(&wire::proposal(&p));
                }
                Effect::BroadcastVote(v) => self.peers.broadcast(&wire::vote(&v)),
                Effect::ScheduleTimeout { timeout, after } => {
                    let after = self.propose_wait(timeout, after);
                    let events = self.events.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = events.send(Event::Timeout(timeout)).await;
                    });
                }
                Effect::GetValue { height, round } => {
                    self.awaiting_value = Some((height, round));
                    self.try_propose(false);
                }
                Effect::ValidateProposal(proposal) => {
                    let valid = self.validate(&proposal.value);
                    self.feed(Input::Proposal { proposal, valid });
                }
                Effect::Decide { value, certificate } => {
                    self.on_decide(LedgerRecord { ledger: value, commit: Some(certificate), result: None });
                }
                Effect::DecideWithoutValue { certificate } => {
                    info!(height = certificate.height, "decided a ledger this node never received; fetching it");
                    self.catchup.want(certificate.height);
                    self.maybe_catch_up();
                }
                Effect::Equivocation(evidence) => {
                    warn!(validator = evidence.validator(), evidence = ?evidence, "peer equivocated; ignoring it for this height");
                }
            }
        }
    }

    fn persist(&mut self, state: &hp_consensus::RecoveryState<Ledger>) {
        // A nested effect list (an answer fed back while applying) may already have written a
        // newer state; never go back to an older one.
        let rank = (state.height, state.round, state.signed.len());
        if self.recovery.persisted_rank.is_some_and(|r| r > rank) {
            return;
        }
        self.recovery.persisted_rank = Some(rank);
        if let Err(e) = tokio::task::block_in_place(|| self.recovery.file.save(state)) {
            error!(error = %e, "cannot persist consensus recovery state");
        }
    }

    /// Answers the core's `GetValue` once there is something to propose: at once with pending
    /// inputs, otherwise when `roundtime` has passed since the last ledger (a heartbeat).
    pub(super) fn try_propose(&mut self, heartbeat_due: bool) {
        let Some((height, round)) = self.awaiting_value else { return };
        if height != self.core.height() || height != self.last.seq + 1 || !self.last_certified() {
            return;
        }
        if self.hand_over_due(height) == super::membership::HandOver::Unknown
            && self.execution.done_up_to < self.last.seq
            && !self.execution.diverged
        {
            // Its own run of the last ledger says whether this ledger hands over: it is due
            // any moment (`on_executed` proposes then).
            return;
        }
        let now = now_ms();
        let due_at = self.last.time_ms.saturating_add(self.cfg.roundtime.as_millis() as u64);
        if self.mempool.is_empty() && !heartbeat_due && now < due_at {
            let events = self.events.clone();
            let wait = Duration::from_millis(due_at - now);
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let _ = events.send(Event::Heartbeat { height, round }).await;
            });
            return;
        }
        let (ledger, given_up) = self.build_ledger(now);
        self.give_up_on(given_up);
        self.awaiting_value = None;
        self.feed(Input::ProposeValue { height, round, value: ledger });
    }

    /// The connected users a new ledger lists besides the senders of its inputs (`senders`):
    /// at most `room` of them. This node's own users come first; then the users peers announce
    /// (unsigned: a faulty peer may list a million made-up keys), taken in turn from each peer,
    /// so that one peer's list cannot crowd out the others'.
    fn connected_users(&self, senders: &BTreeSet<[u8; 32]>, room: usize) -> Vec<[u8; 32]> {
        let mut users = BTreeSet::new();
        let mut left_out = 0usize;
        let mut add = |user: &[u8; 32]| {
            if senders.contains(user) || users.contains(user) {
                return;
            }
            if users.len() < room {
                users.insert(*user);
            } else {
                left_out += 1;
            }
        };
        self.users.local.iter().for_each(&mut add);
        let mut peers: Vec<(&usize, &Vec<[u8; 32]>)> = self.users.of_peers.iter().collect();
        peers.sort_unstable_by_key(|(peer, _)| **peer);
        let longest = peers.iter().map(|(_, list)| list.len()).max().unwrap_or(0);
        for i in 0..longest {
            for (_, list) in &peers {
                if let Some(user) = list.get(i) {
                    add(user);
                }
            }
        }
        if left_out > 0 {
            debug!(room, left_out, "more connected users than max_ledger_users; the ledger lists those that fit");
        }
        users.into_iter().collect()
    }

    /// The next ledger from the mempool, and the signed inputs the replay rules refused.
    pub(super) fn build_ledger(
        &self,
        now: u64,
    ) -> (Ledger, Vec<(hp_ledger::Input, hp_ledger::user_signed::Rejection)>) {
        // The mempool holds only inputs no stored ledger carries: they are checked on arrival
        // and removed when a ledger with them is stored.
        let bounds = self.cfg.ledger_bounds;
        let per_user = self.members().user_input_bytes();
        let (inputs, given_up) = self.admit_signed(self.last.seq + 1, self.mempool.take_for_ledger(bounds, per_user));
        let senders: BTreeSet<[u8; 32]> = inputs.iter().map(|i| i.user).collect();
        let users = self.connected_users(&senders, bounds.users.saturating_sub(senders.len()));
        let ledger = Ledger::new(LedgerBody {
            seq: self.last.seq + 1,
            prev_hash: self.last.hash(),
            time_ms: now.max(self.last.time_ms + 1),
            inputs,
            users,
            prev_result: self.last_result,
            config_hash: self.members().hash(),
            next_membership: match self.hand_over_due(self.last.seq + 1) {
                super::membership::HandOver::To(next) => Some(next),
                _ => None,
            },
        });
        (ledger, given_up)
    }

    /// The paper's `valid(v)` for a ledger proposed at the next height.
    pub(super) fn validate(&self, ledger: &Ledger) -> bool {
        let reject = |why: &str| {
            info!(seq = ledger.seq, reason = why, "prevoting nil on an invalid proposal");
            false
        };
        if ledger.seq != self.last.seq + 1 {
            return reject("wrong sequence");
        }
        if ledger.prev_hash != self.last.hash() {
            return reject("does not link to the last closed ledger");
        }
        if ledger.time_ms <= self.last.time_ms {
            return reject("time does not increase");
        }
        if ledger.time_ms > now_ms() + MAX_CLOCK_AHEAD.as_millis() as u64 {
            return reject("time is too far ahead of this node's clock");
        }
        if ledger.prev_result != self.last_result {
            return reject("carries a result other than the certified one");
        }
        if ledger.config_hash != self.members().hash() {
            return reject("names a membership other than the one in force");
        }
        if let Err(why) = self.hand_over_valid(ledger) {
            return reject(why);
        }
        // The bounds every node shares (docs/config.md): a ledger past them is never run.
        let bounds = self.cfg.ledger_bounds;
        if ledger.inputs.len() > bounds.inputs {
            return reject("carries more inputs than max_ledger_inputs");
        }
        if ledger.users.len() > bounds.users || ledger.contract_users().len() > bounds.users {
            return reject("lists more users than max_ledger_users");
        }
        let mut seen = HashSet::with_capacity(ledger.inputs.len());
        let mut bytes = 0usize;
        // Inputs not known here as they are: their origin's signature is checked below.
        let mut unverified = Vec::new();
        for input in &ledger.inputs {
            if !seen.insert(input.id) {
                return reject("lists one input twice");
            }
            if !self.members().contains(&input.id.origin) {
                return reject("an input's origin is not in the UNL");
            }
            if input.data.len() > self.cfg.max_input_bytes {
                return reject("an input is larger than pubmaxsize");
            }
            bytes += input.encoded_len();
            match self.mempool.get(&input.id) {
                // Known uncommitted (see build_ledger), its signature checked on arrival.
                Some(known) if known == input => continue,
                // The same identity with other bytes: only its origin's signature can vouch.
                Some(_) => {
                    unverified.push(input);
                    continue;
                }
                None => unverified.push(input),
            }
            match self.store.is_committed(&input.id) {
                Ok(false) => {}
                Ok(true) => return reject("an input is already in the chain"),
                Err(e) => {
                    warn!(error = %e, "cannot check input");
                    return false;
                }
            }
        }
        if ledger.inputs.len() > 1 && bytes > bounds.bytes {
            return reject("inputs exceed max_ledger_input_bytes");
        }
        if !self.members().users_within_input_bytes(&ledger.inputs) {
            return reject("a user's inputs exceed user_input_bytes");
        }
        if let Err(e) = hp_ledger::input::verify_origins(&self.cfg.network, &unverified) {
            info!(seq = ledger.seq, error = %e, "prevoting nil on a proposal with an input its origin did not sign");
            return false;
        }
        if let Err(why) = self.signed_inputs_valid(ledger) {
            info!(seq = ledger.seq, reason = %why, "prevoting nil on a proposal with a user-signed input the rules refuse");
            return false;
        }
        true
    }

    /// A ledger is decided: store it durably before anything else, then run it.
    pub(super) fn on_decide(&mut self, record: LedgerRecord) {
        let seq = record.ledger.seq;
        if seq != self.last.seq + 1 {
            debug!(seq, lcl = self.last.seq, "decision for a height already stored");
            return;
        }
        // Execution runs in execd while the ledger is made durable here: nothing of it leaves
        // the node before the ledger is stored, and a crash in between re-runs it (execd is
        // idempotent per sequence).
        self.request_execution(record.ledger.clone());
        if let Err(e) = tokio::task::block_in_place(|| self.store.append(&record)) {
            error!(seq, error = %e, "cannot store the decided ledger");
            return;
        }
        self.metrics.closed(seq);
        self.health.closed(seq, record.ledger.inputs.len());
        self.after_stored_membership(&record.ledger);
        if let Some(commit) = &record.commit {
            self.metrics.ledger_rounds.observe(f64::from(commit.round) + 1.0);
            self.metrics.certificate("commit", self.members_at(seq).unl(), commit.signatures.iter().map(|(i, _)| *i));
        }
        if self.last.seq > 0 {
            let interval_ms = record.ledger.time_ms.saturating_sub(self.last.time_ms);
            self.metrics.ledger_interval.observe(interval_ms as f64 / 1000.0);
        }
        for input in &record.ledger.inputs {
            self.mempool.remove(&input.id);
        }
        self.after_signed_stored(&record.ledger);
        if seq.is_multiple_of(64) {
            let _ = self.store.prune_pending(self.me_bytes());
        }
        if record.ledger.inputs.is_empty() {
            debug!(seq, hash = %hex::encode(record.ledger.hash()), "heartbeat ledger closed");
        } else {
            info!(seq, hash = %hex::encode(record.ledger.hash()), inputs = record.ledger.inputs.len(), "ledger closed");
        }
        self.last = record.ledger.clone();
        // Set by `on_result_certified` below when the record already carries its result (a
        // caught-up ledger), which also starts the next height.
        self.last_result = None;
        self.last_progress = std::time::Instant::now();
        self.results.prune_below(seq.saturating_sub(1).max(1));
        if let Some(cert) = &record.result {
            self.on_result_certified(cert.clone());
        }
        self.broadcast_status();
    }

    pub(super) fn request_execution(&mut self, ledger: Ledger) {
        if ledger.seq <= self.execution.requested && ledger.seq != self.last.seq && ledger.seq != self.last.seq + 1 {
            return;
        }
        self.execution.requested = self.execution.requested.max(ledger.seq);
        if !self.executor.run(ledger) {
            error!("executor stopped");
        }
    }
}
