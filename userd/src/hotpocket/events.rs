//! `ledger_event` notifications: each ledger consensusd reports (its outputs or a status of it)
//! is announced as `ledger_created` to the HotPocket connections that subscribed, in order.
//! One task looks each ledger up once, and only while someone subscribed; under a burst it
//! announces at most [`MAX_BEHIND`] ledgers back, the newest last.

use super::message::Outgoing;
use super::node_view::NodeView;
use crate::registry::Registry;
use bson::Bson;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The most ledgers one wake-up announces (a subscriber that needs all of them queries).
pub const MAX_BEHIND: u64 = 64;

/// Announces new ledgers (`seen`, the newest ledger consensusd reported) until `shutdown`.
pub async fn announce(
    registry: Registry,
    view: Arc<NodeView>,
    mut seen: watch::Receiver<u64>,
    shutdown: CancellationToken,
) {
    let mut announced = *seen.borrow();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = seen.changed() => if changed.is_err() { return },
        }
        let newest = *seen.borrow();
        let subscribers: Vec<_> = registry
            .handles()
            .into_iter()
            .filter(|h| h.hotpocket.is_some() && h.ledger_events.load(Ordering::Relaxed))
            .collect();
        if subscribers.is_empty() {
            announced = newest;
            continue;
        }
        for seq in announced.max(newest.saturating_sub(MAX_BEHIND)) + 1..=newest {
            let query = hp_proto::v1::LedgerQuery { seq, inputs: false, outputs: false };
            let Some(reply) = view.ledger(query).await.filter(|r| r.found) else { continue };
            let ledger = super::replies::ledger_document(&reply);
            let event =
                Outgoing::new("ledger_event").str("event", "ledger_created").value("ledger", Bson::Document(ledger));
            for handle in &subscribers {
                if let Some(protocol) = handle.hotpocket {
                    // A full queue drops that connection (outbox), never this task.
                    let _ = handle.outbox.push(event.encode(protocol));
                }
            }
        }
        announced = newest;
    }
}
