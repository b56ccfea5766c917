//! How proposals reach this node, for the HotPocket users' `health_event` of kind `proposal`
//! (docs/hotpocket-protocol.md): over the proposals of the last closed ledger, how long they
//! took from their making to their arrival here (`comm`), and from their arrival on the peer
//! link to the consensus loop (`read`, this node's own queueing); and how many inputs that
//! ledger carried (`batch_size`).
//!
//! What it cannot see: `comm` compares the proposer's clock (the ledger's time, set when the
//! value is made) with this node's, so clock skew adds to it; and only proposals of a fresh
//! value count towards it, because one re-proposed (Tendermint's valid round) was made rounds
//! before.

use std::collections::HashSet;
use std::time::Instant;

/// The most proposals counted for one height: a member may sign proposals for any round, and
/// what it sends must not grow this node's memory. A height that needs more rounds than this
/// is reported from its first ones.
pub const MAX_COUNTED: usize = 64;

/// Least, most and mean of some milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    pub min_ms: u64,
    pub max_ms: u64,
    pub avg_ms: u64,
}

/// The figures of one closed ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProposalHealth {
    pub seq: u64,
    pub comm: Latency,
    pub read: Latency,
    pub batch_size: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Samples {
    min: u64,
    max: u64,
    sum: u64,
    count: u64,
}

impl Samples {
    fn add(&mut self, ms: u64) {
        self.min = if self.count == 0 { ms } else { self.min.min(ms) };
        self.max = self.max.max(ms);
        self.sum = self.sum.saturating_add(ms);
        self.count += 1;
    }

    fn latency(&self) -> Latency {
        Latency { min_ms: self.min, max_ms: self.max, avg_ms: self.sum.checked_div(self.count).unwrap_or(0) }
    }
}

/// Collects the proposals of the height being run; [`Self::closed`] turns them into the
/// figures of that ledger.
#[derive(Debug, Default)]
pub struct HealthTracker {
    height: u64,
    /// The (round, proposer) pairs already counted: a proposal sent again is not a new one.
    seen: HashSet<(u32, usize)>,
    comm: Samples,
    read: Samples,
    last: Option<ProposalHealth>,
}

impl HealthTracker {
    /// A proposal for `height`, `round` by member `proposer` that arrived on its link at
    /// `arrived` and is handled now, at `now_ms`; `made_ms` (ms since the Unix epoch) is when
    /// its value was made if it is a fresh one.
    pub fn proposal(
        &mut self,
        height: u64,
        (round, proposer): (u32, usize),
        made_ms: Option<u64>,
        arrived: Instant,
        now_ms: u64,
    ) {
        if height != self.height {
            *self = Self { height, last: self.last, ..Self::default() };
        }
        if self.seen.len() >= MAX_COUNTED || !self.seen.insert((round, proposer)) {
            return;
        }
        let queued_ms = u64::try_from(arrived.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.read.add(queued_ms);
        if let Some(made_ms) = made_ms {
            self.comm.add(now_ms.saturating_sub(queued_ms).saturating_sub(made_ms));
        }
    }

    /// Ledger `seq` closed with `inputs` inputs. A ledger for which no proposal arrived (this
    /// node's own, alone, or one caught up) leaves the figures of the last one in place.
    pub fn closed(&mut self, seq: u64, inputs: usize) {
        if self.height != seq || self.read.count == 0 {
            return;
        }
        self.last = Some(ProposalHealth {
            seq,
            comm: self.comm.latency(),
            read: self.read.latency(),
            batch_size: inputs as u64,
        });
    }

    /// The figures of the last ledger that had any.
    pub fn last(&self) -> Option<ProposalHealth> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_ledger_reports_its_proposals_once_each() {
        let mut health = HealthTracker::default();
        let now = Instant::now();
        health.proposal(7, (0, 1), Some(1_000), now, 1_040);
        health.proposal(7, (0, 1), Some(1_000), now, 1_900); // the same one, sent again
        health.proposal(7, (0, 2), Some(1_000), now, 1_020);
        health.proposal(7, (1, 1), None, now, 5_000); // a value re-proposed: no comm latency
        assert_eq!(health.last(), None, "nothing until the ledger closes");
        health.closed(7, 12);
        let last = health.last().unwrap_or_default();
        assert_eq!(last.seq, 7);
        assert_eq!(last.batch_size, 12);
        assert_eq!(last.comm, Latency { min_ms: 20, max_ms: 40, avg_ms: 30 });
        assert!(last.read.max_ms < Duration::from_secs(5).as_millis() as u64);
        // A ledger this node saw no proposal of leaves the last figures.
        health.closed(8, 0);
        assert_eq!(health.last().map(|h| h.seq), Some(7));
        health.proposal(9, (0, 1), Some(2_000), now, 2_000);
        health.closed(9, 0);
        assert_eq!(health.last().map(|h| (h.seq, h.comm.max_ms)), Some((9, 0)));
    }

    #[test]
    fn a_member_proposing_for_every_round_is_counted_only_so_far() {
        let mut health = HealthTracker::default();
        let now = Instant::now();
        for round in 0..100_000 {
            health.proposal(3, (round, 1), Some(1_000), now, 1_000 + u64::from(round));
        }
        assert_eq!(health.seen.len(), MAX_COUNTED);
        health.closed(3, 0);
        assert_eq!(health.last().map(|h| h.comm.max_ms), Some(MAX_COUNTED as u64 - 1));
    }
}
