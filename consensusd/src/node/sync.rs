//! Starting a state copy from a peer, and picking up execution after it.

use super::{Event, Node};
use crate::state_sync::{Replies, StateSync, SyncError, SyncReport};
use hp_ledger::store::KEPT_OUTPUTS;
use std::time::Duration;
use tracing::{error, info, warn};

/// How long a node keeps trying peers before reporting the copy as failed (and trying again).
const ATTEMPTS: u32 = 20;

/// A state copy from a peer.
#[derive(Default)]
pub(super) struct StateCopy {
    /// Routes peers' replies to the copy waiting for them.
    pub replies: Replies,
    /// A copy is under way.
    pub running: bool,
}

impl Node {
    /// Copies the state from a peer in the background; one copy at a time.
    pub(super) fn start_state_sync(&mut self) {
        if self.state_copy.running {
            return;
        }
        self.state_copy.running = true;
        let mut sync = StateSync {
            net: self.peers.clone(),
            replies: self.state_copy.replies.clone(),
            exec: self.executor.execd(),
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
        self.state_copy.running = false;
        match result {
            Ok(report) => {
                info!(seq = report.seq, files = report.files, bytes = report.bytes, "state sync done");
                self.execution.diverged = false;
                self.execution.state_hash = report.state_hash;
                self.execution.uncertified.retain(|seq, _| *seq > report.seq);
                self.execution.done_up_to = self.execution.done_up_to.max(report.seq);
                self.want_skipped_outcomes(report.seq);
                if self.last.seq > report.seq {
                    // Run the ledgers after the copied state; the executor replays from the store.
                    self.execution.requested = report.seq;
                    self.request_execution(self.last.clone());
                }
            }
            Err(reason) => {
                error!(%reason, "state sync failed; trying again");
                let events = self.events.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = events.send(Event::RetryStateSync).await;
                });
                warn!("state copy will be retried");
            }
        }
    }

    /// The copied state is that after ledger `synced`: this node never runs the ledgers up to it
    /// that it has not released yet, so their outputs are fetched from peers instead — those
    /// peers surely still keep (half their window: the network moves on while this node asks),
    /// and for a node that started with an empty chain only if it accepted inputs meanwhile
    /// (see `releasable`).
    fn want_skipped_outcomes(&mut self, synced: u64) {
        let from = self.delivery.delivered_up_to.max(synced.saturating_sub(KEPT_OUTPUTS / 2)) + 1;
        let skipped = (from..=synced)
            .filter(|seq| {
                *seq > self.delivery.decided_elsewhere_up_to || !self.delivery.accepted_while_fresh.is_empty()
            })
            .collect();
        self.want_outcomes(skipped);
        self.delivery.delivered_up_to = self.delivery.delivered_up_to.max(synced);
    }
}
