//! Notifications to the HotPocket connections that subscribed:
//!
//! - `ledger_event`: each ledger consensusd reports (its outputs or a status of it) is announced
//!   as `ledger_created`, in order. One task looks each ledger up once, and only while someone
//!   subscribed; under a burst it announces at most [`MAX_BEHIND`] ledgers back.
//! - `health_event`: `connectivity` (peers connected, weakly connected or not) when it changes,
//!   and every [`HEALTH_EVERY`] regardless; `proposal` (how the last ledger's proposals reached
//!   the node) once per ledger; both checked every [`HEALTH_POLL`] while someone subscribed.
//!   `ledger_event` subscribers are told `vote_status` when the node goes in or out of sync.
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

/// Sends health events until `shutdown`: `connectivity` (the size of the UNL in force decides
/// "weakly connected": [`super::replies::weakly_connected`]) and `proposal` (once per ledger whose proposals
/// consensusd measured, at most one per [`HEALTH_POLL`]); and to each `ledger_event`
/// subscriber, `vote_status` when the node's being in sync is not what it was last told (a
/// new one holds the node in sync).
pub async fn health(registry: Registry, view: Arc<NodeView>, shutdown: CancellationToken) {
    let mut connectivity: Option<(u32, std::time::Instant)> = None;
    let mut proposal_seq: Option<u64> = None;
    let mut tick = tokio::time::interval(HEALTH_POLL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let health = subscribed(&registry, |h| &h.subscriptions.health_event);
        let ledger = subscribed(&registry, |h| &h.subscriptions.ledger_event);
        if health.is_empty() {
            (connectivity, proposal_seq) = (None, None);
        }
        if health.is_empty() && ledger.is_empty() {
            continue;
        }
        let Some(state) = view.state().await else { continue };
        let mut events = Vec::new();
        let due = match connectivity {
            None => true,
            Some((peers, at)) => peers != state.peers || at.elapsed() >= HEALTH_EVERY,
        };
        if !health.is_empty() && due {
            connectivity = Some((state.peers, std::time::Instant::now()));
            let weakly = super::replies::weakly_connected(state.peers, state.unl.len());
            let event = Outgoing::new("health_event")
                .str("event", "connectivity")
                .u64("peer_count", u64::from(state.peers))
                .bool("weakly_connected", weakly);
            events.push((&health, event));
        }
        if let Some(proposal) = state.proposal.filter(|p| !health.is_empty() && proposal_seq != Some(p.seq)) {
            proposal_seq = Some(proposal.seq);
            events.push((&health, proposal_event(&proposal)));
        }
        let status = if state.in_sync { "synced" } else { "desync" };
        let vote_status = Outgoing::new("ledger_event").str("event", "vote_status").str("vote_status", status);
        for handle in &ledger {
            let told = handle.subscriptions.told_in_sync.swap(state.in_sync, Ordering::Relaxed);
            if let Some(protocol) = handle.hotpocket.filter(|_| told != state.in_sync) {
                let _ = handle.outbox.push(vote_status.encode(protocol));
            }
        }
        for (subscribers, event) in events {
            for handle in subscribers {
                if let Some(protocol) = handle.hotpocket {
                    let _ = handle.outbox.push(event.encode(protocol));
                }
            }
        }
    }
}

/// A `proposal` health event: consensusd's figures for one ledger's proposals, in ms.
fn proposal_event(p: &hp_proto::v1::ProposalHealth) -> Outgoing {
    let latency = |min: u64, max: u64, avg: u64| {
        let ms = |v: u64| Bson::Int64(i64::try_from(v).unwrap_or(i64::MAX));
        Bson::Document(bson::doc! { "min": ms(min), "max": ms(max), "avg": ms(avg) })
    };
    Outgoing::new("health_event")
        .str("event", "proposal")
        .value("comm_latency", latency(p.comm_latency_min_ms, p.comm_latency_max_ms, p.comm_latency_avg_ms))
        .value("read_latency", latency(p.read_latency_min_ms, p.read_latency_max_ms, p.read_latency_avg_ms))
        .u64("batch_size", p.batch_size)
}

/// Sends `unl_change` to each connection subscribed to it whose UNL (the one it was given in
/// its handshake or by the last event) is not the UNL in force, until `shutdown`. Keeping
/// what each connection was told, not what this task saw last, means a user who connected
/// after a change is not told of it again, and one who connected before consensusd answered
/// (and was given hp.cfg's UNL) is told of the change when consensusd says.
pub async fn unl_changes(registry: Registry, view: Arc<NodeView>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(HEALTH_POLL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(state) = view.state().await else { continue };
        let told = tell_unl_change(&registry, &state.unl);
        if told > 0 {
            tracing::info!(unl = state.unl.len(), users = told, "the UNL in force changed; told subscribed users");
        }
    }
}

/// Sends `unl_change` naming `unl` to each subscribed connection that holds another UNL, and
/// records that it now holds `unl`. Returns how many were told.
fn tell_unl_change(registry: &Registry, unl: &[[u8; 32]]) -> usize {
    if unl.is_empty() {
        return 0;
    }
    let mut event = None;
    let mut told = 0;
    for handle in subscribed(registry, |h| &h.subscriptions.unl_change) {
        let Some(protocol) = handle.hotpocket else { continue };
        {
            let mut holds = handle.subscriptions.told_unl.lock().unwrap_or_else(|e| e.into_inner());
            if *holds == unl {
                continue;
            }
            *holds = unl.to_vec();
        }
        let event = event.get_or_insert_with(|| Outgoing::new("unl_change").keys("unl", unl));
        let _ = handle.outbox.push(event.encode(protocol));
        told += 1;
    }
    told
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::outbox::{OutboxLimits, outbox};
    use crate::registry::Subscriptions;

    fn subscriber(registry: &Registry, user: u8, told: Vec<[u8; 32]>) -> crate::outbox::OutboxReceiver {
        let (outbox, rx) = outbox(OutboxLimits::default(), CancellationToken::new());
        let subscriptions = Arc::new(Subscriptions::told(told));
        subscriptions.unl_change.store(true, Ordering::Relaxed);
        let handle = ConnHandle {
            id: registry.next_id(),
            outbox,
            hotpocket: Some(crate::hotpocket::Protocol::Json),
            subscriptions,
        };
        registry.insert(hp_cfg::PublicKeyHex([user; 32]), handle);
        rx
    }

    fn events(rx: &mut crate::outbox::OutboxReceiver) -> Vec<serde_json::Value> {
        std::iter::from_fn(|| rx.try_frame()).map(|m| serde_json::from_slice(&m.into_data()).expect("JSON")).collect()
    }

    #[test]
    fn a_user_is_told_of_a_unl_change_once_and_only_if_it_holds_another_unl() {
        let registry = Registry::new();
        let (old, new) = (vec![[1; 32], [2; 32]], vec![[1; 32], [2; 32], [3; 32]]);
        // One connected before the change, one after it (its handshake named the new UNL).
        let mut before = subscriber(&registry, 7, old.clone());
        let mut after = subscriber(&registry, 8, new.clone());
        assert_eq!(tell_unl_change(&registry, &old), 1, "only the one holding another UNL");
        assert_eq!(events(&mut before), Vec::<serde_json::Value>::new());
        let told = events(&mut after);
        assert_eq!(told.len(), 1);
        assert_eq!((told[0]["type"].as_str(), told[0]["unl"].as_array().map(Vec::len)), (Some("unl_change"), Some(2)));
        assert_eq!(tell_unl_change(&registry, &old), 0, "told once");
        assert_eq!(tell_unl_change(&registry, &new), 2);
        for rx in [&mut before, &mut after] {
            let told = events(rx);
            assert_eq!(told.len(), 1);
            assert_eq!(told[0]["unl"].as_array().map(Vec::len), Some(3));
        }
        assert_eq!(tell_unl_change(&registry, &new), 0);
    }
}
