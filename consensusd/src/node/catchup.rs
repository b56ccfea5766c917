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

/// Ledgers asked for at once, at most.
const BATCH: u32 = crate::serving::LEDGER_BATCH;
/// How many times a timeout halves the ledgers asked for at once (down to one).
const MAX_SHRINK: u32 = BATCH.ilog2();
/// Requests remembered after they timed out: a reply to one of them that arrives late (a slow
/// link delivers it after the timeout) still carries ledgers that verify on their own.
const LATE_KEPT: usize = 8;
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
    /// How many times the ledgers asked for at once were halved: each timeout halves them, each
    /// reply that brings ledgers doubles them again, so that a link too slow to carry a full
    /// batch within the timeout still carries a smaller one.
    shrink: u32,
    /// (request id, peer) of requests that timed out, the latest last.
    late: std::collections::VecDeque<(u64, usize)>,
}

/// How a ledger reply relates to this node's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reply {
    /// The answer to the request in flight.
    Current,
    /// The answer to a request that timed out: its ledgers are used, nothing else is judged.
    Late,
    /// Nothing this node asked that peer.
    Unasked,
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

    /// How many ledgers the next request asks for.
    pub fn batch(&self) -> u32 {
        (BATCH >> self.shrink).max(1)
    }

    /// The request in flight to `peer` got no reply in time: remember it, ask for fewer next.
    fn timed_out(&mut self, id: u64, peer: usize) {
        self.inflight = None;
        self.shrink = (self.shrink + 1).min(MAX_SHRINK);
        self.late.push_back((id, peer));
        while self.late.len() > LATE_KEPT {
            self.late.pop_front();
        }
    }

    /// What a reply with `id` from `peer` answers; the request in flight or a late one is
    /// settled by it.
    fn settle(&mut self, id: u64, peer: usize) -> Reply {
        if self.inflight.is_some_and(|(i, p, _)| i == id && p == peer) {
            self.inflight = None;
            return Reply::Current;
        }
        match self.late.iter().position(|&(i, p)| i == id && p == peer) {
            Some(at) => {
                self.late.remove(at);
                Reply::Late
            }
            None => Reply::Unasked,
        }
    }

    /// A reply brought ledgers: the link carries them, ask for more again.
    fn brought_ledgers(&mut self) {
        self.shrink = self.shrink.saturating_sub(1);
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
        if let Some((id, peer, since)) = self.catchup.inflight {
            if since.elapsed() < REQUEST_TIMEOUT {
                return;
            }
            // It announced ledgers it does not deliver, or its link is slow: ask someone else
            // for a while, and for fewer ledgers at once.
            self.catchup.timed_out(id, peer);
            warn!(peer, next_batch = self.catchup.batch(), "peer did not answer a ledger request in time; avoiding it");
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
        self.peers.send(peer, &wire::ledger_request(id, from, self.catchup.batch()));
    }

    pub(super) fn on_ledger_reply(&mut self, from: usize, request_id: u64, records: Vec<LedgerRecord>) {
        let reply = self.catchup.settle(request_id, from);
        if reply == Reply::Unasked {
            return;
        }
        let claimed = self.peer_status.get(&from).map_or(0, |s| s.lcl_seq);
        // A late reply may hold only what this node has since stored from someone else.
        if reply == Reply::Current && records.iter().all(|r| r.ledger.seq <= self.last.seq) && claimed > self.last.seq {
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
            self.catchup.brought_ledgers();
            info!(peer = from, stored, lcl_seq = self.last.seq, late = reply == Reply::Late, "caught up ledgers");
            self.maybe_catch_up();
        }
    }

    fn avoid(&mut self, peer: usize) {
        self.peers.count_bad_frame();
        self.catchup.avoid.insert(peer, Instant::now() + AVOID_FOR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_halve_the_batch_down_to_one_and_ledgers_that_arrive_double_it_again() {
        let mut c = CatchUp::default();
        assert_eq!(c.batch(), BATCH);
        for (id, expected) in (1..).zip([32, 16, 8, 4, 2, 1, 1, 1]) {
            c.inflight = Some((id, 0, Instant::now()));
            c.timed_out(id, 0);
            assert_eq!(c.batch(), expected, "after {id} timeouts");
        }
        c.brought_ledgers();
        assert_eq!(c.batch(), 2);
        for _ in 0..10 {
            c.brought_ledgers();
        }
        assert_eq!(c.batch(), BATCH);
    }

    #[test]
    fn a_late_reply_is_taken_once_from_the_peer_asked_and_no_other_reply_is() {
        let mut c = CatchUp { inflight: Some((1, 3, Instant::now())), ..Default::default() };
        c.timed_out(1, 3);
        c.inflight = Some((2, 4, Instant::now()));
        assert_eq!(c.settle(1, 4), Reply::Unasked, "another peer cannot answer request 1");
        assert_eq!(c.settle(9, 3), Reply::Unasked, "nothing asked");
        assert_eq!(c.settle(1, 3), Reply::Late);
        assert_eq!(c.settle(1, 3), Reply::Unasked, "a late reply counts once");
        assert!(c.inflight.is_some(), "a late reply leaves the request in flight waiting");
        assert_eq!(c.settle(2, 4), Reply::Current);
        assert!(c.inflight.is_none());
        // Only the latest timed-out requests are remembered.
        for id in 10..10 + LATE_KEPT as u64 + 2 {
            c.timed_out(id, 1);
        }
        assert_eq!(c.settle(10, 1), Reply::Unasked);
        assert_eq!(c.settle(10 + LATE_KEPT as u64 + 1, 1), Reply::Late);
    }
}
