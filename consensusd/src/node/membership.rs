//! Hand-overs: the network changing its own UNL (docs/consensus.md, "Membership").
//!
//! The contract writes a new UNL or threshold to `patch.cfg`; execd settles it with the state,
//! so every node that agrees on ledger `h`'s result agrees on the config in force after it.
//! Ledger `h + 1` then carries the hand-over (`next_membership`): its proposer puts in what its
//! own run of `h` gave, and every validator checks it against its own run. The old members
//! close and certify `h + 1`; the new ones close every ledger from `h + 2` on, until the next
//! hand-over.
//!
//! A node switches its consensus core and its result collector when it starts the first height
//! of the new epoch: by then the last ledger of the old one is certified. The peer layer learns
//! the new members as soon as the hand-over is stored, so their messages for the next height
//! verify; each message is stamped with the epoch it was checked against, and one checked
//! against other members than the node holds for its height by the time it reads it is dropped
//! (a node that had not stored the hand-over yet cannot tell a new member's vote from a forgery,
//! and a signer's index means another validator under other members).

use super::Node;
use crate::executor::AgreedConfig;
use hp_consensus::{Params, ResultCollector};
use hp_ledger::{Epochs, Ledger, Membership};
use tracing::{error, info, warn};

/// What the node knows of membership.
pub(super) struct Members {
    /// Which members close which ledgers, from the stored chain. The peer layer holds a copy.
    pub epochs: Epochs,
    /// The first ledger of the epoch the consensus core runs with.
    pub core_epoch: u64,
    /// The first ledger of the epoch the result collector counts votes for.
    pub results_epoch: u64,
    /// The config in force after this node's latest run, with that run's ledger: its members
    /// are the hand-over the next ledger must carry, if they differ from those in force.
    pub config_after: Option<(u64, AgreedConfig)>,
}

/// Whether a ledger proposed for height `seq` carries the hand-over it must.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum HandOver {
    /// This node's own run of the ledger before does not say (not run here yet): it proposes
    /// nothing and accepts only a ledger that hands over to no one.
    Unknown,
    None,
    To(Membership),
}

impl Node {
    /// The members that close the next ledger.
    pub(super) fn members(&self) -> &Membership {
        self.membership.epochs.members_at(self.last.seq + 1)
    }

    /// The members of the height the consensus core runs: those in force once the last ledger
    /// of their predecessors is certified (what status shows, and whose claims count).
    pub(super) fn running_members(&self) -> &Membership {
        self.membership.epochs.members_at(self.core.height().max(1))
    }

    /// The members that close ledger `seq`.
    pub(super) fn members_at(&self, seq: u64) -> &Membership {
        self.membership.epochs.members_at(seq)
    }

    /// This node's index in the consensus core's UNL (the height it runs).
    pub(super) fn core_me(&self) -> Option<usize> {
        self.me_at(self.core.height().max(1))
    }

    /// This node's index among the members that close ledger `seq`; `None` if it is not one.
    pub(super) fn me_at(&self, seq: u64) -> Option<usize> {
        self.membership.epochs.members_at(seq).position(&self.me_bytes())
    }

    /// This node's index among the members that close the next ledger.
    pub(super) fn me(&self) -> Option<usize> {
        self.me_at(self.last.seq + 1)
    }

    /// Notes what execd said of the config in force after ledger `seq`.
    pub(super) fn note_config(&mut self, seq: u64, config: Option<AgreedConfig>) {
        let Some(config) = config else { return };
        if self.membership.config_after.as_ref().is_none_or(|(ran, _)| seq >= *ran) {
            if let Some(roundtime) = config.roundtime {
                self.follow_roundtime(roundtime);
            }
            self.membership.config_after = Some((seq, config));
        }
    }

    /// Runs rounds by `roundtime` from now on: the heartbeat and the consensus timeouts. Only
    /// timing depends on it, never what is agreed, so each node switches when its own run
    /// names it, not at one ledger for all.
    fn follow_roundtime(&mut self, roundtime: std::time::Duration) {
        if roundtime == self.cfg.roundtime {
            return;
        }
        info!(
            from_ms = self.cfg.roundtime.as_millis() as u64,
            to_ms = roundtime.as_millis() as u64,
            "the agreed config changed the roundtime"
        );
        self.cfg.roundtime = roundtime;
        self.core.set_timeouts(crate::timeouts(roundtime));
    }

    /// The hand-over ledger `seq` must carry: to the members this node's run of `seq - 1` names,
    /// when they are not those in force.
    pub(super) fn hand_over_due(&self, seq: u64) -> HandOver {
        match &self.membership.config_after {
            Some((ran, config)) if *ran + 1 == seq => {
                if config.members == *self.membership.epochs.members_at(seq) {
                    HandOver::None
                } else {
                    HandOver::To(config.members.clone())
                }
            }
            _ => HandOver::Unknown,
        }
    }

    /// Whether `ledger`'s hand-over (or its lack of one) is what this node's own run says.
    pub(super) fn hand_over_valid(&self, ledger: &Ledger) -> Result<(), &'static str> {
        match (self.hand_over_due(ledger.seq), &ledger.next_membership) {
            (HandOver::Unknown | HandOver::None, None) => Ok(()),
            (HandOver::To(due), Some(carried)) if due == *carried => Ok(()),
            (HandOver::Unknown, Some(_)) => Err("hands over to other members, which this node has not run yet"),
            (HandOver::None, Some(_)) => Err("hands over to members the agreed config does not name"),
            (HandOver::To(_), Some(_)) => Err("hands over to other members than the agreed config names"),
            (HandOver::To(_), None) => Err("does not hand over to the members the agreed config names"),
        }
    }

    /// After `ledger` is stored: the peer layer checks the next height against the members
    /// that close it, and a hand-over starts an epoch.
    pub(super) fn after_stored_membership(&mut self, ledger: &Ledger) {
        if let Some(next) = &ledger.next_membership
            && self.membership.epochs.hand_over(ledger.seq, next.clone())
        {
            let role = if next.contains(&self.me_bytes()) { "validator" } else { "observer" };
            info!(
                seq = ledger.seq,
                from_seq = ledger.seq + 1,
                unl = next.unl().len(),
                quorum = next.quorum(),
                config_hash = %hex::encode(next.hash()),
                role,
                "the network hands over to new members"
            );
            self.peers.set_epochs(self.membership.epochs.clone());
            let gone = self.mempool.drop_origins(|origin| next.contains(origin));
            if gone > 0 {
                warn!(inputs = gone, "pending inputs of nodes no longer in the UNL dropped: no ledger may carry them");
            }
        }
        self.peers.set_known_through(ledger.seq + 1);
    }

    /// Before the core starts `height`: the core and the result collector run with the members
    /// of its epoch.
    pub(super) fn enter_epoch_of(&mut self, height: u64) {
        let epoch = self.membership.epochs.at(height).clone();
        let me = self.me_at(height);
        let members = &epoch.members;
        if epoch.first_seq != self.membership.results_epoch {
            match ResultCollector::new(members.unl().len(), members.quorum(), me, height) {
                Ok(results) => {
                    self.results = results;
                    self.membership.results_epoch = epoch.first_seq;
                }
                Err(e) => error!(height, error = %e, "cannot count result votes of the new members"),
            }
        }
        if epoch.first_seq == self.membership.core_epoch {
            return;
        }
        let params = Params {
            unl: members.keys().to_vec(),
            quorum: members.quorum(),
            timeouts: self.core.params().timeouts,
            network: self.cfg.network,
        };
        match self.core.change_members(params, me) {
            Ok(()) => {
                self.membership.core_epoch = epoch.first_seq;
                let role = if me.is_some() { "validator" } else { "observer" };
                info!(height, role, unl = members.unl().len(), quorum = members.quorum(), "new members in force");
            }
            Err(e) => error!(height, error = %e, "cannot run consensus with the new members"),
        }
    }
}
