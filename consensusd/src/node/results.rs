//! After execution: this node's result vote, the result certificate, and releasing outputs to
//! users only once `q` nodes agree on them (docs/consensus.md).

use super::{Node, outcomes};
use crate::api::ToUserd;
use crate::executor::Executed;
use crate::wire;
use hp_consensus::{ResultCertificate, ResultEvent, ResultVote};
use hp_ledger::store::KEPT_OUTPUTS;
use hp_ledger::{InputId, Ledger, ResultSummary, Store, UserOutputs};
use std::collections::{BTreeMap, HashSet};
use tracing::{debug, error, info, warn};

/// How far this node's own execution of the chain has come.
pub(super) struct Execution {
    /// Highest sequence handed to the executor.
    pub requested: u64,
    /// Highest sequence execd's state is known to have reached (run here or copied).
    pub done_up_to: u64,
    /// This node's own execution outcomes not yet matched with a certificate.
    pub uncertified: BTreeMap<u64, Executed>,
    /// The state hash after this node's last execution; zero until execd says where its state
    /// stands.
    pub state_hash: [u8; 32],
    /// This node's result disagreed with the network's: it no longer votes on results.
    pub diverged: bool,
}

impl Execution {
    /// With `lcl_seq` closed: it is run (again) at start, execd being idempotent.
    pub fn at_start(lcl_seq: u64) -> Self {
        Self {
            requested: lcl_seq.saturating_sub(1),
            done_up_to: lcl_seq.saturating_sub(1),
            uncertified: BTreeMap::new(),
            state_hash: [0u8; 32],
            diverged: false,
        }
    }
}

/// Which ledgers' outputs went to users, and which are held back.
pub(super) struct Delivery {
    /// The last ledger whose outputs were released (stored for delivery): each ledger's outputs
    /// are released once, and a replay of those released before this process started does not
    /// release them again. userd's snapshot says which of them it has seen.
    pub delivered_up_to: u64,
    /// The last ledger whose outputs went to a userd session. Those released while no session
    /// was open are handed over from the store when one opens.
    pub handed_up_to: u64,
    /// Started with an empty chain (new, or hist/ wiped): the ledgers peers already hold were
    /// decided before this node could take part, and their outputs were delivered — by this
    /// node before a wipe, or by others. Cleared once the node has caught up with a peer.
    pub fresh_start: bool,
    /// While `fresh_start`: the last ledger peers were known to hold — announced by f+1 of
    /// them (one peer's unsigned status proves nothing), or received certified by catch-up. Of
    /// those ledgers, only the outputs of users whose inputs this node accepted since it
    /// started are released.
    pub decided_elsewhere_up_to: u64,
    /// The inputs this node accepted while `fresh_start`, until it has run every ledger up to
    /// `decided_elsewhere_up_to`.
    pub accepted_while_fresh: HashSet<InputId>,
    /// Certified ledgers whose outputs this node could not compute itself, being fetched from
    /// peers; the outputs of later ledgers wait for them.
    pub wanted_outcomes: BTreeMap<u64, outcomes::Wanted>,
}

impl Delivery {
    /// Where delivery stands with `lcl` the last closed ledger, `certified` if its result is.
    pub fn at_start(store: &Store, lcl: &Ledger, certified: bool) -> Self {
        let delivered_up_to = if certified || lcl.seq == 0 { lcl.seq } else { lcl.seq - 1 };
        let wanted_outcomes = outcomes::wanted_at_start(store, lcl.seq);
        // Outputs after the first ledger still wanted wait for it, as they did before a restart.
        let handed_up_to =
            wanted_outcomes.keys().next().map_or(delivered_up_to, |first| delivered_up_to.min(first.saturating_sub(1)));
        Self {
            delivered_up_to,
            handed_up_to,
            fresh_start: lcl.seq == 0,
            decided_elsewhere_up_to: 0,
            accepted_while_fresh: HashSet::new(),
            wanted_outcomes,
        }
    }
}

impl Node {
    pub(super) fn on_executed(&mut self, done: Executed) {
        let seq = done.seq;
        // A run reported after a state copy past it says nothing of the state now.
        if seq >= self.execution.done_up_to {
            self.execution.state_hash = done.state_hash;
            self.execution.done_up_to = seq;
        }
        self.note_config(seq, done.config.clone());
        let outputs_hash = done.outcome.hash();
        debug!(seq, state_hash = %hex::encode(done.state_hash), outputs = done.outcome.outputs.len(), "executed");
        // A certificate may already be known (catch-up, or peers were faster).
        let known = self
            .store
            .get(seq)
            .ok()
            .flatten()
            .and_then(|r| r.result)
            .or_else(|| self.results.certificate(seq).cloned());
        self.execution.uncertified.insert(seq, done);
        if let Some(cert) = known {
            self.on_result_certified(cert);
            return;
        }
        // An observer only follows: the validators' votes certify its result or not.
        let Some(me) = self.me_at(seq).filter(|_| !self.execution.diverged) else {
            return;
        };
        let vote = ResultVote::sign(&self.cfg.network, seq, self.execution.state_hash, outputs_hash, me, &self.cfg.key);
        let outcome = self.execution.uncertified.get(&seq).map(|done| done.outcome.clone());
        let root_sig = outcome.and_then(|outcome| self.sign_output_root(seq, &outcome));
        self.peers.broadcast(&wire::result_with_root(&vote, root_sig.as_ref()));
        let events = self.results.add(vote);
        self.on_result_events(events);
        // A proposal may have waited for this run to know whether it hands over.
        self.try_propose(false);
    }

    pub(super) fn on_result_vote(&mut self, vote: ResultVote) {
        if vote.height > self.last.seq + 1 || vote.height + 64 < self.last.seq {
            return;
        }
        if self.membership.epochs.at(vote.height).first_seq != self.membership.results_epoch {
            // Counted by index, so only among the members the collector counts for: a vote of
            // the next epoch before this node enters it, or a late one of the last epoch.
            return;
        }
        let events = self.results.add(vote);
        self.on_result_events(events);
    }

    fn on_result_events(&mut self, events: Vec<ResultEvent>) {
        for event in events {
            match event {
                ResultEvent::Certified(cert) => self.on_result_certified(cert),
                ResultEvent::Diverged { own, certificate } => {
                    error!(
                        seq = own.height,
                        own_state = %hex::encode(own.state_hash),
                        agreed_state = %hex::encode(certificate.state_hash),
                        "this node's execution differs from the network's (non-deterministic contract?); it stops voting on results"
                    );
                    self.execution.diverged = true;
                    self.on_result_certified(certificate);
                    self.start_state_sync();
                }
                ResultEvent::Unreachable { height, voters, best } => {
                    error!(
                        seq = height,
                        voters,
                        best,
                        "no result can reach a quorum for this ledger; the network cannot agree on its execution"
                    );
                }
                ResultEvent::Equivocation { first, second } => {
                    warn!(
                        validator = first.validator,
                        seq = first.height,
                        ?second,
                        "validator signed two different results"
                    );
                }
            }
        }
    }

    /// `q` nodes agree on the result of ledger `cert.height`: store the certificate, release the
    /// outputs if this node computed the same ones, and move to the next height.
    pub(super) fn on_result_certified(&mut self, cert: ResultCertificate) {
        let seq = cert.height;
        if seq > self.last.seq {
            // Peers certified the ledger after this node's last before this node closed it: there
            // is nothing to store it with yet. The collector keeps the certificate, and this
            // node's own run of that ledger picks it up (`on_executed`).
            debug!(seq, lcl_seq = self.last.seq, "result certified ahead of this node's chain");
            return;
        }
        self.settle_earlier_runs(seq);
        self.metrics.certificate("result", self.members_at(seq).unl(), cert.signatures.iter().map(|(i, _)| *i));
        let summary = ResultSummary { state_hash: cert.state_hash, outputs_hash: cert.outputs_hash };
        let (mut agreed, mut release) = (None, None);
        let mut differs = false;
        if let Some(done) = self.execution.uncertified.remove(&seq) {
            if done.state_hash == cert.state_hash && done.outcome.hash() == cert.outputs_hash {
                // Each ledger's outputs are released once: not again when a ledger is re-run
                // after a restart, a replay or a state copy.
                if seq > self.delivery.delivered_up_to {
                    release = Some(self.releasable(seq, done.outcome.outputs.clone()));
                }
                agreed = Some(done.outcome);
            } else {
                if !self.execution.diverged {
                    error!(
                        seq,
                        "own result differs from the certified one; copying the state and the outputs from peers"
                    );
                    self.execution.diverged = true;
                    self.start_state_sync();
                }
                differs = seq > self.delivery.delivered_up_to;
            }
        }
        // The outcome and the outputs are stored with the certificate before any goes out, so
        // that a restart right after can hand them over again (`hand_over_released`), and peers
        // that could not compute them can ask for them (`serve_outcome`).
        let stored = if agreed.is_some() || release.is_some() {
            self.store.set_result_with_outcome(&cert, agreed.as_ref(), release.as_deref(), &self.root_sigs(seq))
        } else if differs && self.want_survives_restart(seq) {
            self.store.set_result_wanting_outcome(&cert)
        } else {
            self.store.set_result(&cert)
        };
        if let Err(e) = stored {
            error!(seq, error = %e, "cannot store the result certificate");
            return;
        }
        if differs {
            self.track_wanted(seq);
        }
        if let Some(outputs) = release {
            self.delivery.delivered_up_to = seq;
            if self.session_ready() && !self.outputs_held_before(seq) {
                if self.delivery.handed_up_to + 1 == seq {
                    self.hand_over(seq, outputs);
                } else {
                    // Outputs fetched from peers may be waiting in the store before this one.
                    self.hand_over_held();
                }
            }
        }
        if seq == self.last.seq && self.last_result.is_none() {
            self.last_result = Some(summary);
            self.last_progress = std::time::Instant::now();
            debug!(seq, state_hash = %hex::encode(cert.state_hash), "result certified");
            self.start_height(seq + 1);
        }
    }

    /// Settles this node's runs of ledgers before `seq` still waiting for their certificate,
    /// in order, before `seq`'s outputs go out. The chain moves past a ledger only once its
    /// result is certified, so theirs is stored; a run is never dropped unmatched, or its
    /// outputs would silently never be released.
    fn settle_earlier_runs(&mut self, seq: u64) {
        let earlier: Vec<u64> = self.execution.uncertified.range(..seq).map(|(s, _)| *s).collect();
        for earlier_seq in earlier {
            match self.store.get(earlier_seq).map(|record| record.and_then(|r| r.result)) {
                Ok(Some(cert)) => self.on_result_certified(cert),
                outcome => {
                    // Not expected: fetch the agreed outputs from peers rather than lose them.
                    let problem = outcome.err().map(|e| e.to_string());
                    error!(
                        seq = earlier_seq,
                        ?problem,
                        "a ledger's run has no stored certificate; asking peers for its outputs"
                    );
                    self.execution.uncertified.remove(&earlier_seq);
                    self.want_outcomes(vec![earlier_seq]);
                }
            }
        }
    }

    /// The outputs of ledger `seq` this node may release. Those of a ledger its peers decided
    /// before it started with an empty chain went out already, except to users whose inputs
    /// this node itself accepted since then.
    pub(super) fn releasable(&mut self, seq: u64, outputs: UserOutputs) -> UserOutputs {
        if seq > self.delivery.decided_elsewhere_up_to {
            // Not needed any more — unless an earlier ledger's outcome is still being fetched.
            let earlier_pending = self
                .delivery
                .wanted_outcomes
                .keys()
                .next()
                .is_some_and(|w| *w <= self.delivery.decided_elsewhere_up_to);
            if !earlier_pending {
                self.delivery.accepted_while_fresh = Default::default();
            }
            return outputs;
        }
        if self.delivery.accepted_while_fresh.is_empty() {
            return Vec::new();
        }
        let ledger = match self.store.get(seq) {
            Ok(Some(record)) => record.ledger,
            Ok(None) => return Vec::new(),
            Err(e) => {
                error!(seq, error = %e, "cannot read the ledger to release its outputs");
                return Vec::new();
            }
        };
        let senders: HashSet<[u8; 32]> = ledger
            .inputs
            .iter()
            .filter(|input| self.delivery.accepted_while_fresh.remove(&input.id))
            .map(|input| input.user)
            .collect();
        outputs.into_iter().filter(|(user, _)| senders.contains(user)).collect()
    }

    /// Whether a userd session is open and has said who is connected.
    fn session_ready(&self) -> bool {
        self.users.session.is_some() && !self.users.awaiting_snapshot
    }

    /// Sends userd ledger `seq`'s outputs for the users connected there: one batch per released
    /// ledger, empty when none is for them, so that userd knows how far it got.
    fn hand_over(&mut self, seq: u64, outputs: UserOutputs) {
        let outputs: Vec<_> = outputs.into_iter().filter(|(user, _)| self.users.local.contains(user)).collect();
        let proof = if outputs.is_empty() { None } else { self.outputs_proof(seq) };
        self.send_to_session(ToUserd::Outputs { seq, outputs, proof, framing: self.cfg.output_framing });
        self.delivery.handed_up_to = seq;
    }

    /// A new userd session reported its users and the last ledger it received outputs of
    /// (`userd_through`, 0 for a userd that has received none): hands it, from the store, the
    /// released outputs it has not seen — those in flight when this process or the previous
    /// session ended, and those released while no session was open.
    pub(super) fn hand_over_released(&mut self, userd_through: u64) {
        // userd has seen ledgers this process does not know were released (hist/ wiped while
        // userd ran on): they are not released again.
        self.delivery.delivered_up_to = self.delivery.delivered_up_to.max(userd_through);
        let from = if userd_through > 0 { userd_through } else { self.delivery.handed_up_to };
        self.hand_over_from_store(from);
    }

    /// Hands userd the released outputs it has not got yet: those held back while an earlier
    /// ledger's outcome was being fetched from peers (`outcomes`), now that it is in or given up.
    pub(super) fn hand_over_held(&mut self) {
        if self.session_ready() {
            self.hand_over_from_store(self.delivery.handed_up_to);
        }
    }

    /// Hands userd, from the store, the outputs released after ledger `from`, up to the first
    /// ledger whose outcome is still being fetched.
    fn hand_over_from_store(&mut self, from: u64) {
        let through = match self.delivery.wanted_outcomes.keys().next() {
            Some(first) => self.delivery.delivered_up_to.min(first - 1),
            None => self.delivery.delivered_up_to,
        };
        let from = from.max(through.saturating_sub(KEPT_OUTPUTS));
        let kept = if from < through {
            self.store.outputs_after(from, through).unwrap_or_else(|e| {
                error!(error = %e, from, "cannot read released outputs to hand over");
                Vec::new()
            })
        } else {
            Vec::new()
        };
        if !kept.is_empty() {
            info!(from = from + 1, to = through, ledgers = kept.len(), "handing released outputs to userd");
        }
        for (seq, outputs) in kept {
            self.hand_over(seq, outputs);
        }
        self.delivery.handed_up_to = self.delivery.handed_up_to.max(through);
    }

    /// This node's result vote for the last ledger while that is not certified yet.
    pub(super) fn own_result_vote(&self) -> Option<ResultVote> {
        if self.last_result.is_some() || self.execution.diverged {
            return None;
        }
        let me = self.me_at(self.last.seq)?;
        let done = self.execution.uncertified.get(&self.last.seq)?;
        Some(ResultVote::sign(&self.cfg.network, done.seq, done.state_hash, done.outcome.hash(), me, &self.cfg.key))
    }
}
