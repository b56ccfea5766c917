//! Notifications to the HotPocket connections that subscribed:
//!
//! - `ledger_event`: each ledger consensusd reports (its outputs or a status of it) is announced
//!   as `ledger_created`, in order. One task looks each ledger up once, and only while someone
//!   subscribed; under a burst it announces at most [`MAX_BEHIND`] ledgers back.
//! - `health_event`: `connectivity` (peers connected, weakly connected or not) when it changes,
//!   and every [`HEALTH_EVERY`] regardless, checked every [`HEALTH_POLL`] while someone
//!   subscribed.
//!
//! - `unl_change`: the UNL in force (docs/consensus.md, "Membership") whenever it changes,
//!   checked every [`HEALTH_POLL`]. The client takes it as its new trusted keys.

use super::message::Outgoing;
use super::node_view::NodeView;
use crate::registry::{ConnHandle, Registry};
use bson::Bson;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The most ledgers one wake-up announces (a subscriber that needs all of them queries).
pub const MAX_BEHIND: u64 = 64;
/// How often the node's connectivity is looked at while someone subscribed to health events.
pub const HEALTH_POLL: std::time::Duration = std::time::Duration::from_secs(1);
/// How often a `connectivity` event goes out even when nothing changed.
pub const HEALTH_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Sends `connectivity` health events until `shutdown`; the size of the UNL in force (hp.cfg's,
/// `unl_size`, until consensusd says) decides "weakly connected"
/// ([`super::replies::weakly_connected`]).
pub async fn health(registry: Registry, view: Arc<NodeView>, unl_size: usize, shutdown: CancellationToken) {
    let mut last: Option<(u32, std::time::Instant)> = None;
    let mut tick = tokio::time::interval(HEALTH_POLL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let subscribers = subscribed(&registry, |h| &h.subscriptions.health_event);
        if subscribers.is_empty() {
            last = None;
            continue;
        }
        let Some(state) = view.state().await else { continue };
        let due = match last {
            None => true,
            Some((peers, at)) => peers != state.peers || at.elapsed() >= HEALTH_EVERY,
        };
        if !due {
            continue;
        }
        last = Some((state.peers, std::time::Instant::now()));
        let size = if state.unl.is_empty() { unl_size } else { state.unl.len() };
        let weakly = super::replies::weakly_connected(state.peers, size);
        let event = Outgoing::new("health_event")
            .str("event", "connectivity")
            .u64("peer_count", u64::from(state.peers))
            .bool("weakly_connected", weakly);
        for handle in &subscribers {
            if let Some(protocol) = handle.hotpocket {
                let _ = handle.outbox.push(event.encode(protocol));
            }
        }
    }
}

/// Sends `unl_change` to the connections subscribed to it whenever the UNL in force changes,
/// until `shutdown`, starting from `first` (hp.cfg's): a node started after a hand-over tells
/// those who connected before consensusd answered, and were given hp.cfg's UNL.
pub async fn unl_changes(registry: Registry, view: Arc<NodeView>, first: Vec<[u8; 32]>, shutdown: CancellationToken) {
    let mut known = first;
    let mut tick = tokio::time::interval(HEALTH_POLL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(state) = view.state().await else { continue };
        if state.unl.is_empty() || state.unl == known {
            continue;
        }
        tracing::info!(unl = state.unl.len(), "the UNL in force changed; telling subscribed users");
        known = state.unl;
        let event = Outgoing::new("unl_change").keys("unl", &known);
        for handle in subscribed(&registry, |h| &h.subscriptions.unl_change) {
            if let Some(protocol) = handle.hotpocket {
                let _ = handle.outbox.push(event.encode(protocol));
            }
        }
    }
}

/// The HotPocket connections whose subscription flag `flag` picks is on.
fn subscribed(registry: &Registry, flag: impl Fn(&ConnHandle) -> &AtomicBool) -> Vec<ConnHandle> {
    registry.handles().into_iter().filter(|h| h.hotpocket.is_some() && flag(h).load(Ordering::Relaxed)).collect()
}

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
        let subscribers = subscribed(&registry, |h| &h.subscriptions.ledger_event);
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
