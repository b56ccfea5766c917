//! Starting a state copy from a peer, and picking up execution after it.

use super::{Event, Node};
use crate::state_sync::{StateSync, SyncError, SyncReport};
use hp_ledger::store::KEPT_OUTPUTS;
use std::time::Duration;
use tracing::{error, info, warn};

/// Ledgers behind which a node copies the state rather than running them one by one (about
/// five seconds of contract starts).
pub const FAR_BEHIND: u64 = 1024;

/// How long a node keeps trying peers before reporting the copy as failed (and trying again).
const ATTEMPTS: u32 = 20;

impl Node {
    /// Copies the state from a peer in the background; one copy at a time.
    pub(super) fn start_state_sync(&mut self) {
        if self.syncing {
            return;
        }
        self.syncing = true;
        let mut sync = StateSync {
            net: self.peers.clone(),
            replies: self.sync_replies.clone(),
            exec: self.exec_client.clone(),
            store_path: self.store_path.clone(),
        };
        let events = self.events.clone();
        let peers = self.peers.clone();
        tokio::spawn(async move {
            let mut result = Err("no attempt".to_string());
            for attempt in 0..ATTEMPTS {
                let mut candidates = peers.connected();
                // Spread the load, and step past a peer that keeps failing.
                if !candidates.is_empty() {
                    let shift = attempt as usize % candidates.len();
                    candidates.rotate_left(shift);
                }
                match sync.run(candidates).await {
                    Ok(report) => {
                        result = Ok(report);
                        break;
                    }
                    Err(SyncError::NotYetCertified { seq, .. }) => {
                        info!(seq, "waiting for the certified result of the peer's state");
                        result = Err(format!("ledger {seq} not certified yet"));
                    }
                    Err(e) => result = Err(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt + 1).min(8))).await;
            }
            let _ = events.send(Event::StateSynced(result)).await;
        });
    }

    pub(super) fn on_state_synced(&mut self, result: Result<SyncReport, String>) {
        self.syncing = false;
        match result {
            Ok(report) => {
                info!(seq = report.seq, files = report.files, bytes = report.bytes, "state sync done");
                self.diverged = false;
                self.state_hash = report.state_hash;
                self.executed.retain(|seq, _| *seq > report.seq);
                self.executed_up_to = self.executed_up_to.max(report.seq);
                self.want_skipped_outcomes(report.seq);
                if self.last.seq > report.seq {
                    // Run the ledgers after the copied state; the executor replays from the store.
                    self.exec_requested = report.seq;
                    self.request_execution(self.last.clone());
                }
            }
            Err(reason) => {
                error!(%reason, "state sync failed; trying again");
                let events = self.events.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = events
                        .send(Event::ExecFailed(crate::executor::ExecFailure::NeedsStateSync {
                            seq: 0,
                            reason: "retrying the state copy".into(),
                        }))
                        .await;
                });
                warn!("state copy will be retried");
            }
        }
    }

    /// A node this far behind the network in running the chain (it rebuilds it from peers, or
    /// was down a long time) copies a peer's state instead of running every ledger since:
    /// running them takes a contract start each, a copy only what differs. Measured against
    /// the network's tip, not this node's: catch-up and replay run at once. The ledgers skipped are run by no one
    /// here; their outputs are fetched from peers (`want_skipped_outcomes`).
    pub(super) fn maybe_copy_state_instead_of_replaying(&mut self) {
        let tip = self.last.seq.max(self.network_tip());
        if self.syncing || tip <= self.executed_up_to + FAR_BEHIND {
            return;
        }
        info!(
            executed = self.executed_up_to,
            lcl_seq = self.last.seq,
            network_lcl_seq = tip,
            "far behind in running the chain; copying the state from a peer instead"
        );
        self.start_state_sync();
    }

    /// The last ledger the network holds as far as peers' status says, counting only what at
    /// least one honest peer must have announced: with at most `n - q` faulty nodes, the
    /// `(n - q + 1)`-th highest announcement (0 while fewer peers have spoken), so a peer that
    /// claims a chain it does not have cannot set it.
    fn network_tip(&self) -> u64 {
        let faulty = self.cfg.unl.len().saturating_sub(self.cfg.quorum);
        let mut announced: Vec<u64> = self.peer_status.values().map(|s| s.lcl_seq).collect();
        announced.sort_unstable_by(|a, b| b.cmp(a));
        announced.get(faulty).copied().unwrap_or(0)
    }

    /// The copied state is that after ledger `synced`: this node never runs the ledgers up to it
    /// that it has not released yet, so their outputs are fetched from peers instead — those
    /// peers still keep, and for a node that started with an empty chain only if it accepted
    /// inputs meanwhile (see `releasable`).
    fn want_skipped_outcomes(&mut self, synced: u64) {
        let from = self.delivered_up_to.max(synced.saturating_sub(KEPT_OUTPUTS)) + 1;
        for seq in from..=synced {
            if seq <= self.decided_elsewhere_up_to && self.accepted_while_fresh.is_empty() {
                continue;
            }
            self.want_outcome(seq);
        }
        self.delivered_up_to = self.delivered_up_to.max(synced);
    }
}
