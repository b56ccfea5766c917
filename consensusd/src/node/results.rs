//! After execution: this node's result vote, the result certificate, and releasing outputs to
//! users only once `q` nodes agree on them (DESIGN.md §5).

use super::Node;
use crate::executor::{ExecFailure, Executed};
use crate::wire;
use hp_consensus::{ResultCertificate, ResultEvent, ResultVote};
use hp_ledger::ResultSummary;
use hp_proto::v1 as pb;
use tracing::{debug, error, warn};

/// Ledgers whose outputs are kept while userd is not connected.
const MAX_UNDELIVERED_LEDGERS: usize = 256;

impl Node {
    pub(super) fn on_executed(&mut self, done: Executed) {
        let seq = done.seq;
        self.state_hash = done.state_hash;
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
        self.executed.insert(seq, done);
        if let Some(cert) = known {
            self.on_result_certified(cert);
            return;
        }
        if self.diverged {
            return;
        }
        let vote = ResultVote::sign(seq, self.state_hash, outputs_hash, self.cfg.me, &self.cfg.key);
        self.peers.broadcast(&wire::result(&vote));
        let events = self.results.add(vote);
        self.on_result_events(events);
    }

    pub(super) fn on_result_vote(&mut self, vote: ResultVote) {
        if vote.height > self.last.seq + 1 || vote.height + 64 < self.last.seq {
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
                    self.diverged = true;
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
        if let Err(e) = self.store.set_result(&cert) {
            error!(seq, error = %e, "cannot store the result certificate");
            return;
        }
        let summary = ResultSummary { state_hash: cert.state_hash, outputs_hash: cert.outputs_hash };
        if let Some(done) = self.executed.remove(&seq) {
            if done.state_hash == cert.state_hash && done.outcome.hash() == cert.outputs_hash {
                // Each ledger's outputs go out once: not again when a ledger is re-run after a
                // restart, a replay or a state copy.
                if seq > self.delivered_up_to {
                    self.delivered_up_to = seq;
                    self.deliver(seq, &done);
                }
            } else if !self.diverged {
                error!(
                    seq,
                    "own result differs from the certified one; outputs withheld, copying the state from peers"
                );
                self.diverged = true;
                self.start_state_sync();
            }
        }
        self.executed.retain(|s, _| *s > seq);
        if seq == self.last.seq && self.last_result.is_none() {
            self.last_result = Some(summary);
            self.last_progress = std::time::Instant::now();
            debug!(seq, state_hash = %hex::encode(cert.state_hash), "result certified");
            self.start_height(seq + 1);
        }
    }

    /// Sends each locally connected user its output of ledger `seq`.
    fn deliver(&mut self, seq: u64, done: &Executed) {
        if self.session.is_none() || self.awaiting_snapshot {
            // userd is not connected yet (consensusd or userd restarted): keep the outputs of
            // recent ledgers and hand them over once userd says who is connected.
            self.undelivered.push_back((seq, done.outcome.outputs.clone()));
            while self.undelivered.len() > MAX_UNDELIVERED_LEDGERS {
                self.undelivered.pop_front();
            }
            return;
        }
        let outputs: Vec<pb::UserOutput> = done
            .outcome
            .outputs
            .iter()
            .filter(|(user, _)| self.local_users.contains(user))
            .map(|(user, data)| pb::UserOutput { pubkey: user.to_vec().into(), data: data.clone() })
            .collect();
        if outputs.is_empty() {
            return;
        }
        self.send_to_session(pb::ConsensusMessage {
            kind: Some(pb::consensus_message::Kind::Outputs(pb::OutputBatch { seq, outputs })),
        });
    }

    /// Hands userd the outputs kept while it was not connected, for the users it now reports.
    pub(super) fn deliver_undelivered(&mut self) {
        let kept = std::mem::take(&mut self.undelivered);
        for (seq, outputs) in kept {
            let outputs: Vec<pb::UserOutput> = outputs
                .into_iter()
                .filter(|(user, _)| self.local_users.contains(user))
                .map(|(user, data)| pb::UserOutput { pubkey: user.to_vec().into(), data })
                .collect();
            if !outputs.is_empty() {
                self.send_to_session(pb::ConsensusMessage {
                    kind: Some(pb::consensus_message::Kind::Outputs(pb::OutputBatch { seq, outputs })),
                });
            }
        }
    }

    /// Re-sends this node's result vote for the last ledger while it is not certified.
    pub(super) fn resend_result_vote(&mut self) {
        if self.last_result.is_some() || self.diverged {
            return;
        }
        if let Some(done) = self.executed.get(&self.last.seq) {
            let vote = ResultVote::sign(done.seq, done.state_hash, done.outcome.hash(), self.cfg.me, &self.cfg.key);
            self.peers.broadcast(&wire::result(&vote));
        }
    }

    pub(super) fn on_exec_failed(&mut self, failure: ExecFailure) {
        match failure {
            ExecFailure::NeedsStateSync { seq, reason } => {
                error!(seq, %reason, "execd cannot run the chain's next ledger; copying the state from a peer");
                self.start_state_sync();
            }
        }
    }
}
