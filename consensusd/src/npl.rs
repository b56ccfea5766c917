//! The node party line (HotPocket's NPL) between this node's contract and its peers', and the
//! contract's control channel. Neither ever enters consensus, so neither goes through the node
//! loop: this task holds execd's `Npl` stream, signs and broadcasts what the contract said, hands
//! execd what peers' contracts said, and applies the contract's `peer_changeset`s to the dial
//! list.
//!
//! A peer's message reaches this task only when its signature is its sender's and the sender is
//! the peer on the link it came over ([`crate::peer`]). Here each sender is held to
//! `npl_messages_per_round` messages and `npl_output_bytes` bytes per round, for the few
//! newest rounds it sent for: a member that floods, or names far-away rounds, costs a bounded
//! amount and reaches execd no more than an honest one. execd then delivers each message only
//! to the run of its round (`execd/src/npl.rs`); this node's own messages are looped
//! back there, not here.

use crate::executor::execd::Execd;
use crate::peer::PeerNet;
use crate::wire::{self, NplMessage};
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use hp_consensus::NetworkId;
use hp_proto::v1 as pb;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Rounds per sender whose counts are kept; a message for an older round than those is dropped.
const ROUNDS_KEPT: usize = 4;
/// Peers' messages waiting for this task, in messages and in bytes, before the peer links drop
/// new ones: what a flooding member can make this node hold before its budget is applied.
const INBOX_MESSAGES: usize = 4096;
const INBOX_BYTES: usize = 8 * 1024 * 1024;

/// Where the peer links hand over NPL messages: bounded in messages and in bytes.
#[derive(Clone)]
pub struct NplInbox {
    tx: mpsc::Sender<NplMessage>,
    bytes: Arc<AtomicUsize>,
}

/// The task's end of the [`NplInbox`].
pub struct NplReceiver {
    rx: mpsc::Receiver<NplMessage>,
    bytes: Arc<AtomicUsize>,
}

/// A new inbox and its receiver.
pub fn inbox() -> (NplInbox, NplReceiver) {
    let (tx, rx) = mpsc::channel(INBOX_MESSAGES);
    let bytes = Arc::new(AtomicUsize::new(0));
    (NplInbox { tx, bytes: bytes.clone() }, NplReceiver { rx, bytes })
}

impl NplInbox {
    /// Queues `message`; `false` (dropped) when the inbox is full.
    pub fn push(&self, message: NplMessage) -> bool {
        let len = message.data.len();
        if self.bytes.fetch_add(len, Ordering::Relaxed) + len > INBOX_BYTES {
            self.bytes.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        if self.tx.try_send(message).is_err() {
            self.bytes.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        true
    }
}

impl NplReceiver {
    async fn recv(&mut self) -> Option<NplMessage> {
        let message = self.rx.recv().await?;
        self.bytes.fetch_sub(message.data.len(), Ordering::Relaxed);
        Some(message)
    }

    fn try_recv(&mut self) -> Option<NplMessage> {
        let message = self.rx.try_recv().ok()?;
        self.bytes.fetch_sub(message.data.len(), Ordering::Relaxed);
        Some(message)
    }
}
/// Deliveries waiting for execd's stream before new ones are dropped.
const DELIVERY_QUEUE: usize = 4096;

/// What one member may send per round.
#[derive(Debug, Clone, Copy)]
pub struct NplLimits {
    pub messages: u64,
    pub bytes: u64,
}

/// Counts what each sender sent for its newest rounds.
#[derive(Default)]
struct Budgets {
    by_sender: HashMap<[u8; 32], BTreeMap<u64, (u64, u64)>>,
}

impl Budgets {
    /// Whether `message` is within its sender's budget for its round; counts it if so.
    fn admit(&mut self, message: &NplMessage, limits: NplLimits) -> bool {
        let rounds = self.by_sender.entry(message.sender).or_default();
        if !rounds.contains_key(&message.seq) {
            if rounds.len() >= ROUNDS_KEPT {
                match rounds.first_key_value() {
                    Some((&oldest, _)) if oldest < message.seq => {
                        rounds.remove(&oldest);
                    }
                    _ => return false,
                }
            }
            rounds.insert(message.seq, (0, 0));
        }
        let Some((count, bytes)) = rounds.get_mut(&message.seq) else { return false };
        let len = message.data.len() as u64;
        if *count + 1 > limits.messages || *bytes + len > limits.bytes {
            return false;
        }
        *count += 1;
        *bytes += len;
        true
    }
}

/// Starts the task; it ends with `shutdown`.
pub fn spawn(
    execd: Execd,
    peers: PeerNet,
    key: SigningKey,
    network: NetworkId,
    limits: NplLimits,
    from_peers: NplReceiver,
    shutdown: CancellationToken,
) {
    tokio::spawn(run(execd, peers, key, network, limits, from_peers, shutdown));
}

async fn run(
    mut execd: Execd,
    peers: PeerNet,
    key: SigningKey,
    network: NetworkId,
    limits: NplLimits,
    mut from_peers: NplReceiver,
    shutdown: CancellationToken,
) {
    let me = key.verifying_key().to_bytes();
    let mut budgets = Budgets::default();
    let mut backoff = Duration::from_millis(50);
    loop {
        let (to_execd, deliveries) = mpsc::channel::<pb::NplDelivery>(DELIVERY_QUEUE);
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = execd.npl(deliveries) => s,
        };
        let mut events = match stream {
            Ok(events) => {
                backoff = Duration::from_millis(50);
                debug!("NPL stream to execd open");
                events
            }
            Err(e) => {
                debug!(error = %e, "no NPL stream to execd yet");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                // What peers said meanwhile has no run to go to.
                while from_peers.try_recv().is_some() {}
                continue;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                event = events.message() => match event {
                    Ok(Some(event)) => on_event(event, &peers, &key, &network, me),
                    Ok(None) | Err(_) => break,
                },
                Some(message) = from_peers.recv() => {
                    if !budgets.admit(&message, limits) {
                        debug!(seq = message.seq, sender = %hex::encode(message.sender), "NPL message past its sender's budget; dropped");
                        continue;
                    }
                    let delivery = pb::NplDelivery {
                        seq: message.seq,
                        lcl_hash: Bytes::copy_from_slice(&message.lcl_hash),
                        sender: Bytes::copy_from_slice(&message.sender),
                        data: message.data,
                    };
                    if to_execd.try_send(delivery).is_err() {
                        debug!("execd is not taking NPL messages; one dropped");
                    }
                }
            }
        }
        debug!("NPL stream to execd closed; reopening");
    }
}

fn on_event(event: pb::NplEvent, peers: &PeerNet, key: &SigningKey, network: &NetworkId, me: [u8; 32]) {
    match event.kind {
        Some(pb::npl_event::Kind::Npl(out)) => {
            let Ok(lcl_hash) = <[u8; 32]>::try_from(out.lcl_hash.as_ref()) else {
                warn!(seq = out.seq, "execd sent an NPL message without a 32-byte ledger hash; dropped");
                return;
            };
            if !peers.is_validator(&me) {
                // Only the UNL speaks on the NPL; an observer's contract is heard by itself.
                debug!(seq = out.seq, "an observer's NPL message is not sent to peers");
                return;
            }
            let message = NplMessage { seq: out.seq, lcl_hash, sender: me, data: out.data };
            peers.broadcast(&wire::npl(&message, key, network));
        }
        Some(pb::npl_event::Kind::PeerChangeset(change)) => {
            let valid = |list: Vec<String>| -> Vec<String> {
                list.into_iter()
                    .filter(|peer| match hp_cfg::config::validate_peer_address(peer) {
                        Ok(()) => true,
                        Err(problem) => {
                            warn!(%peer, %problem, "peer_changeset names a bad peer address; ignored");
                            false
                        }
                    })
                    .collect()
            };
            let (add, remove) = (valid(change.add), valid(change.remove));
            info!(?add, ?remove, "the contract changed the peers to dial");
            peers.change_peers(&add, &remove);
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(sender: u8, seq: u64, len: usize) -> NplMessage {
        NplMessage { seq, lcl_hash: [0; 32], sender: [sender; 32], data: Bytes::from(vec![0; len]) }
    }

    #[test]
    fn the_inbox_holds_a_bounded_number_of_bytes() {
        let (inbox, mut receiver) = inbox();
        let big = |seq| NplMessage { seq, lcl_hash: [0; 32], sender: [1; 32], data: Bytes::from(vec![0; 128 * 1024]) };
        let taken = (0..100).filter(|s| inbox.push(big(*s))).count();
        assert_eq!(taken, INBOX_BYTES / (128 * 1024), "a flood stops at the byte bound");
        assert!(receiver.try_recv().is_some());
        assert!(inbox.push(big(100)), "room again once one is taken");
    }

    #[test]
    fn a_sender_is_held_to_its_budget_per_round_and_to_its_newest_rounds() {
        let limits = NplLimits { messages: 2, bytes: 100 };
        let mut budgets = Budgets::default();
        assert!(budgets.admit(&message(1, 10, 10), limits));
        assert!(budgets.admit(&message(1, 10, 10), limits));
        assert!(!budgets.admit(&message(1, 10, 10), limits), "a third message in one round");
        assert!(budgets.admit(&message(2, 10, 10), limits), "another sender has its own budget");
        assert!(!budgets.admit(&message(1, 11, 101), limits), "more bytes than the round allows");
        for seq in 11..=14 {
            assert!(budgets.admit(&message(1, seq, 1), limits));
        }
        assert!(!budgets.admit(&message(1, 10, 1), limits), "a round older than the kept ones");
        assert!(!budgets.admit(&message(1, 9, 1), limits));
    }
}
