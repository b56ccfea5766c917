//! Catching up ledgers this node missed (docs/consensus.md): peers announce where they stand; a
//! node that is behind asks one of them for the ledgers it lacks, checks each one against its
//! own chain and the UNL (hash link, commit quorum, result quorum) before storing it, and then
//! executes them in order. A peer that sends a bad ledger is avoided for a while.

use super::Node;
use crate::wire::{self, PeerStatus};
use hp_ledger::LedgerRecord;
use hp_ledger::chain::verify_next;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Ledgers asked for at once.
const BATCH: u32 = crate::serving::LEDGER_BATCH;
/// How long to wait for a reply before asking someone else.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a peer that sent bad data is avoided.
const AVOID_FOR: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(super) struct CatchUp {
    /// The highest sequence at least one honest peer has stored: f+1 distinct peers announced
    /// it (see [`Node::corroborated_lcl`]). One peer's word does not move it.
    best_known: u64,
    /// A height decided without this node having its ledger.
    wanted: Option<u64>,
    inflight: Option<(u64, usize, Instant)>,
    next_request_id: u64,
    avoid: HashMap<usize, Instant>,
}

impl CatchUp {
    pub fn want(&mut self, seq: u64) {
        self.wanted = Some(self.wanted.map_or(seq, |w| w.max(seq)));
    }

    pub fn behind(&self, lcl: u64) -> bool {
        self.best_known > lcl || self.wanted.is_some_and(|w| w > lcl)
    }

    /// The peer a ledger request is in flight to, if any.
    #[cfg(test)]
    pub fn asking(&self) -> Option<usize> {
        self.inflight.map(|(_, peer, _)| peer)
    }

    /// Drops the request in flight, as a timeout would.
    #[cfg(test)]
    pub fn forget_inflight(&mut self) {
        self.inflight = None;
    }
}

impl Node {
    /// How many peers must announce a thing for at least one honest one to have: f+1.
    fn one_correct(&self) -> usize {
        hp_consensus::quorum::one_correct_among(self.running_members().unl().len(), self.running_members().quorum())
    }

    /// The highest ledger sequence that f+1 distinct UNL peers announce they hold (the
    /// (f+1)-th highest claim; 0 while fewer have spoken): at least one honest peer holds it.
    /// A status is not signed, and one faulty peer's claim — a huge `lcl_seq`, or 0 — must not
    /// change what this node believes or releases.
    pub(super) fn corroborated_lcl(&self) -> u64 {
        let mut claims: Vec<u64> =
            // Only validators' claims count: an observer's link is not one of the UNL's.
            self.peer_status
                .iter()
                .filter(|(peer, _)| self.is_member_link(**peer))
                .map(|(_, s)| s.lcl_seq)
                .collect();
        claims.sort_unstable_by(|a, b| b.cmp(a));
        claims.get(self.one_correct() - 1).copied().unwrap_or(0)
    }

    pub(super) fn on_peer_status(&mut self, from: usize, status: PeerStatus) {
        self.users.of_peers.insert(from, status.users.clone());
        let (height, round) = (status.height, status.round);
        let before = self.peer_status.insert(from, status).map(|s| s.height);
        if height == self.core.height()
            && before.is_some_and(|h| h < height)
            && self.membership.epochs.at(height).first_seq == height
        {
            // The peer just entered this epoch's first height: what it heard of it before was
            // checked against the old members and dropped.
            self.resend_consensus_to(from);
        }
        let tip = self.corroborated_lcl();
        if self.delivery.fresh_start {
            let not_ahead = self.peer_status.values().filter(|s| s.lcl_seq <= self.last.seq).count();
            if tip > self.last.seq {
                self.delivery.decided_elsewhere_up_to = self.delivery.decided_elsewhere_up_to.max(tip);
            } else if self.last.seq > 0 && not_ahead >= self.one_correct() {
                // Caught up with at least one honest peer: from now on every ledger is live for
                // this node.
                self.delivery.fresh_start = false;
            }
        }
        if height == self.core.height() && round < self.core.round() {
            // The peer is in an earlier round of this height: hand it what moves it forward.
            for message in self.core.catch_up() {
                match message {
                    hp_consensus::Message::Proposal(p) => self.peers.send(from, &wire::proposal(&p)),
                    hp_consensus::Message::Vote(v) => self.peers.send(from, &wire::vote(&v)),
                }
            }
        }
        self.catchup.best_known = self.catchup.best_known.max(tip);
        self.maybe_catch_up();
    }

    /// Asks a peer for missing ledgers when some peer is ahead (or this node's last result is
    /// missing) and no request is in flight.
    pub(super) fn maybe_catch_up(&mut self) {
        let lcl = self.last.seq;
        let need_result = !self.last_certified();
        if let Some((_, peer, since)) = self.catchup.inflight {
            if since.elapsed() < REQUEST_TIMEOUT {
                return;
            }
            // It announced ledgers it does not deliver: ask someone else for a while.
            warn!(peer, "peer did not answer a ledger request in time; avoiding it");
            self.catchup.inflight = None;
            self.avoid(peer);
        }
        let now = Instant::now();
        self.catchup.avoid.retain(|_, until| *until > now);
        // A peer that holds more than this node, or the same last ledger with its result. One
        // that claims more than any other may still be asked (it may be the only one ahead), but
        // a peer whose claim f others back comes first: of those that reach the corroborated tip,
        // the one claiming least, so that a liar announcing a far-off chain is asked last.
        let tip = self.corroborated_lcl().max(lcl + 1);
        let candidate = self
            .peer_status
            .iter()
            .filter(|(peer, _)| !self.catchup.avoid.contains_key(peer))
            .filter(|(_, s)| s.lcl_seq > lcl || (need_result && s.lcl_seq == lcl && s.height > lcl))
            .max_by_key(|(peer, s)| (s.lcl_seq.min(tip), std::cmp::Reverse(s.lcl_seq), std::cmp::Reverse(**peer)))
            .map(|(peer, _)| *peer);
        let wanted = self.catchup.wanted.is_some_and(|w| w > lcl);
        let Some(peer) = candidate.or_else(|| if wanted { self.peers.connected().first().copied() } else { None })
        else {
            return;
        };
        let from = if need_result { lcl } else { lcl + 1 };
        self.catchup.next_request_id += 1;
        let id = self.catchup.next_request_id;
        self.catchup.inflight = Some((id, peer, now));
        self.peers.send(peer, &wire::ledger_request(id, from, BATCH));
    }

    pub(super) fn on_ledger_reply(&mut self, from: usize, request_id: u64, records: Vec<LedgerRecord>) {
        if self.catchup.inflight.is_none_or(|(id, peer, _)| id != request_id || peer != from) {
            return;
        }
        self.catchup.inflight = None;
        let claimed = self.peer_status.get(&from).map_or(0, |s| s.lcl_seq);
        if records.iter().all(|r| r.ledger.seq <= self.last.seq) && claimed > self.last.seq {
            warn!(
                peer = from,
                claimed,
                lcl_seq = self.last.seq,
                "peer announced ledgers it does not send; avoiding it"
            );
            self.avoid(from);
            return;
        }
        let mut stored = 0;
        for record in records {
            let seq = record.ledger.seq;
            if seq == self.last.seq {
                // The result of the ledger this node already holds.
                if record.ledger.hash() != self.last.hash() {
                    warn!(peer = from, seq, "peer sent a different ledger at this node's last sequence");
                    self.avoid(from);
                    return;
                }
                if self.last_result.is_none()
                    && let Some(cert) = record.result
                {
                    if cert.height != seq
                        || cert
                            .verify(&self.cfg.network, self.members_at(seq).keys(), self.members_at(seq).quorum())
                            .is_err()
                    {
                        warn!(peer = from, seq, "peer sent a bad result certificate");
                        self.avoid(from);
                        return;
                    }
                    self.on_result_certified(cert);
                }
                continue;
            }
            if seq < self.last.seq {
                continue;
            }
            if !self.last_certified() {
                // Cannot check the next ledger's carried result yet.
                break;
            }
            if let Err(e) =
                verify_next(&record, &self.last, self.last_result.as_ref(), &self.cfg.network, self.members())
            {
                warn!(peer = from, seq, error = %e, "peer sent a ledger that does not verify; avoiding it");
                self.avoid(from);
                return;
            }
            if let Some(wanted) = self.catchup.wanted
                && wanted <= seq
            {
                self.catchup.wanted = None;
            }
            if self.delivery.fresh_start {
                // A certified ledger a peer had before this node caught up: decided elsewhere.
                self.delivery.decided_elsewhere_up_to = self.delivery.decided_elsewhere_up_to.max(seq);
            }
            self.on_decide(record);
            self.metrics.catchup_ledgers.inc();
            stored += 1;
        }
        if stored > 0 {
            info!(peer = from, stored, lcl_seq = self.last.seq, "caught up ledgers");
            self.maybe_catch_up();
        }
    }

    fn avoid(&mut self, peer: usize) {
        self.peers.count_bad_frame();
        self.catchup.avoid.insert(peer, Instant::now() + AVOID_FOR);
    }
}
