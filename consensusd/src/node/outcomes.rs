//! Outputs this node could not compute itself. When its run of a certified ledger differs from
//! the network's (a non-deterministic contract, a timeout only this node saw) or a state copy
//! skipped ledgers, the users connected here would never get those outputs. So the agreed
//! outcome is asked of peers, one peer at a time, checked against the ledger's result
//! certificate, kept like an own one, and released in ledger order: the outputs of later ledgers
//! wait for it, at most [`GIVE_UP_AFTER`].

use super::Node;
use crate::wire;
use hp_ledger::Outcome;
use hp_ledger::store::KEPT_OUTPUTS;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

/// How long a peer gets to answer before the next one is asked.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(1);
/// After this long without the agreed outcome its outputs are given up (and logged), so that
/// later ledgers' outputs are not held back for good.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);
/// Most requests sent per tick: outcomes can be large, and they share the bulk lane.
const ASKS_PER_TICK: usize = 8;
/// Most ledgers waited for at once; peers keep no more than that anyway.
const MAX_WANTED: usize = KEPT_OUTPUTS as usize;

/// A ledger whose agreed outcome is being asked of peers.
#[derive(Debug)]
pub(super) struct Wanted {
    since: Instant,
    asked: Option<Instant>,
    attempts: usize,
}

impl Wanted {
    fn new() -> Self {
        Wanted { since: Instant::now(), asked: None, attempts: 0 }
    }
}

/// The outcomes a previous run of this node was still waiting for (the store notes them), those
/// peers still keep: this run asks for them again. Ledgers after the first of them are handed to
/// userd only once it is in, as before the restart.
pub(super) fn wanted_at_start(store: &hp_ledger::Store, last_seq: u64) -> BTreeMap<u64, Wanted> {
    let oldest_kept = last_seq.saturating_sub(KEPT_OUTPUTS);
    match store.wanted_outcomes() {
        Ok(seqs) => {
            let wanted: BTreeMap<u64, Wanted> =
                seqs.into_iter().filter(|seq| *seq > oldest_kept).map(|seq| (seq, Wanted::new())).collect();
            if let Some(first) = wanted.keys().next() {
                info!(first, ledgers = wanted.len(), "still fetching the agreed outputs of ledgers from peers");
            }
            wanted
        }
        Err(e) => {
            error!(error = %e, "cannot read which ledgers' outputs were being fetched");
            BTreeMap::new()
        }
    }
}

impl Node {
    /// Ledgers `seqs` are certified and this node has no outputs of its own for them: asks
    /// peers, and notes it in the store so that a restart does not forget them.
    pub(super) fn want_outcomes(&mut self, seqs: Vec<u64>) {
        let mut room = MAX_WANTED.saturating_sub(self.delivery.wanted_outcomes.len());
        let seqs: Vec<u64> = seqs
            .into_iter()
            .filter(|seq| {
                if self.delivery.wanted_outcomes.contains_key(seq) {
                    return true;
                }
                if room == 0 {
                    warn!(seq, "too many ledgers' outputs missing at once; this one is not fetched");
                    return false;
                }
                room -= 1;
                true
            })
            .collect();
        let durable: Vec<u64> = seqs.iter().copied().filter(|seq| self.want_survives_restart(*seq)).collect();
        if let Err(e) = self.store.want_outcomes(&durable) {
            error!(error = %e, "cannot note which ledgers' outputs are fetched; a restart would forget them");
        }
        for seq in seqs {
            self.delivery.wanted_outcomes.entry(seq).or_insert_with(Wanted::new);
        }
        // Once for all of them, so that `ASKS_PER_TICK` holds.
        self.ask_for_outcomes();
    }

    /// Whether the note that ledger `seq`'s outcome is wanted may outlive this process. Not for
    /// a ledger peers decided before this node started with an empty chain: of those, only the
    /// outputs of inputs accepted since then are released (`releasable`), which a restarted
    /// process no longer knows.
    pub(super) fn want_survives_restart(&self, seq: u64) -> bool {
        seq > self.delivery.decided_elsewhere_up_to
    }

    /// Asks peers for ledger `seq`'s outcome (the store already notes it where it should).
    pub(super) fn track_wanted(&mut self, seq: u64) {
        self.delivery.wanted_outcomes.entry(seq).or_insert_with(Wanted::new);
        self.ask_for_outcomes();
    }

    /// Whether the outputs of ledger `seq` must wait for an earlier ledger's outcome.
    pub(super) fn outputs_held_before(&self, seq: u64) -> bool {
        self.delivery.wanted_outcomes.keys().next().is_some_and(|first| *first < seq)
    }

    /// Asks a peer for each wanted outcome not asked recently, rotating through the connected
    /// peers; gives up on those waited for too long or no longer kept by peers.
    pub(super) fn ask_for_outcomes(&mut self) {
        if self.delivery.wanted_outcomes.is_empty() {
            return;
        }
        let now = Instant::now();
        let peers = self.peers.connected();
        let oldest_kept = self.last.seq.saturating_sub(KEPT_OUTPUTS);
        let mut given_up = Vec::new();
        let mut asks = Vec::new();
        for (seq, wanted) in &mut self.delivery.wanted_outcomes {
            if now.duration_since(wanted.since) > GIVE_UP_AFTER || *seq <= oldest_kept {
                given_up.push(*seq);
                continue;
            }
            let due = wanted.asked.is_none_or(|at| now.duration_since(at) >= ASK_AGAIN_AFTER);
            if peers.is_empty() || !due || asks.len() >= ASKS_PER_TICK {
                continue;
            }
            asks.push((peers[(wanted.attempts + *seq as usize) % peers.len()], *seq));
            wanted.asked = Some(now);
            wanted.attempts += 1;
        }
        for (peer, seq) in asks {
            debug!(peer, seq, "asking a peer for a ledger's agreed outputs");
            self.peers.send(peer, &wire::outcome_request(seq));
        }
        if !given_up.is_empty() {
            for seq in given_up {
                self.delivery.wanted_outcomes.remove(&seq);
                if let Err(e) = self.store.forget_wanted_outcome(seq) {
                    warn!(seq, error = %e, "cannot note that a ledger's outputs are given up");
                }
                error!(seq, "no peer sent the agreed outputs of this ledger; its users on this node do not get them");
            }
            self.hand_over_held();
        }
    }

    /// A peer's answer: released when it is the certified outcome.
    pub(super) fn on_outcome_reply(&mut self, from: usize, seq: u64, outcome: Option<Outcome>) {
        let Some(wanted) = self.delivery.wanted_outcomes.get_mut(&seq) else {
            return;
        };
        let Some(outcome) = outcome else {
            debug!(peer = from, seq, "the peer does not keep that outcome; asking another");
            wanted.asked = None;
            return;
        };
        let certified = match self.store.get(seq) {
            Ok(record) => record.and_then(|r| r.result),
            Err(e) => {
                error!(seq, error = %e, "cannot read the ledger to check a peer's outcome");
                return;
            }
        };
        let Some(cert) = certified else {
            return;
        };
        if outcome.hash() != cert.outputs_hash {
            warn!(peer = from, seq, "a peer sent outputs that are not the certified ones; ignored");
            wanted.asked = None;
            return;
        }
        self.delivery.wanted_outcomes.remove(&seq);
        // Released now, like an own result: ledgers are certified in order, so every earlier
        // one is released or still wanted (and holds this one back).
        self.delivery.delivered_up_to = self.delivery.delivered_up_to.max(seq);
        let released = self.releasable(seq, outcome.outputs.clone());
        if let Err(e) = self.store.keep_outcome(seq, &outcome, &released, &self.root_sigs(seq)) {
            error!(seq, error = %e, "cannot keep the outputs fetched from a peer");
        }
        info!(seq, peer = from, outputs = released.len(), "agreed outputs fetched from a peer");
        self.hand_over_held();
    }
}
