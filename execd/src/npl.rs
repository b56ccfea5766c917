//! The node party line (NPL) of `hotpocket`-format contracts, on execd's side
//! (docs/contract-interface.md): what this node's contract writes during round `seq` goes to
//! consensusd, which signs it and sends it to every peer; what peers' contracts wrote during
//! their run of round `seq` comes back from consensusd and is handed to this node's run of
//! that same round, and only to it.
//!
//! Nodes do not run a round at the same moment, so a peer's message may come before this
//! node's run of its round has started: it waits here, within the sender's per-round budget,
//! for a few rounds ahead at most. A message for a round already run, or run on another
//! previous ledger (`lcl_hash`), is dropped. NPL never enters consensus: whatever a contract
//! makes of it is its own business, and a deterministic contract must not let the answer
//! depend on timing (wait for all members, or for a fixed count).
//!
//! The hub also carries the contract's control messages (`peer_changeset`) to consensusd.

use bytes::Bytes;
use hp_proto::v1 as pb;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Rounds ahead of the running one whose messages may wait.
const EARLY_ROUNDS: usize = 4;
/// Messages queued to one run's NPL socket before more are dropped (the contract reads slowly).
const DELIVER_QUEUE: usize = 4096;
/// Events queued to consensusd before more are dropped.
const EVENT_QUEUE: usize = 4096;

/// What one node may send per round (`npl_messages_per_round`, `npl_output_bytes`).
#[derive(Debug, Clone, Copy)]
pub struct NplLimits {
    pub messages: u64,
    pub bytes: u64,
}

/// A message as the contract receives it: the sender's key (`ed` + hex), then the data.
pub type Delivered = (String, Bytes);

/// One message a peer sent for a round this node has not started.
struct Early {
    lcl_hash: Bytes,
    sender: [u8; 32],
    data: Bytes,
}

struct Running {
    seq: u64,
    lcl_hash: Bytes,
    deliver: mpsc::Sender<Delivered>,
}

#[derive(Default)]
struct HubState {
    running: Option<Running>,
    /// The last round started here: messages for it or before are late.
    last_started: Option<u64>,
    early: BTreeMap<u64, Vec<Early>>,
    /// Per round and sender: messages and bytes taken (early and running alike).
    taken: BTreeMap<u64, HashMap<[u8; 32], (u64, u64)>>,
    /// The current stream to consensusd.
    events: Option<mpsc::Sender<pb::NplEvent>>,
}

/// Shared by the service (consensusd's stream), the engine (round runs) and read-only runs.
pub struct NplHub {
    state: Mutex<HubState>,
    limits: NplLimits,
    /// This node's key, as the contract sees it (`ed` + hex).
    own_key: String,
}

impl std::fmt::Debug for NplHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NplHub").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl NplHub {
    pub fn new(own_key: [u8; 32], limits: NplLimits) -> Arc<Self> {
        Arc::new(Self { state: Mutex::new(HubState::default()), limits, own_key: ed_hex(&own_key) })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new stream to consensusd: events go to it from now on (an older stream gets no more).
    pub fn subscribe(&self) -> mpsc::Receiver<pb::NplEvent> {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        self.state().events = Some(tx);
        rx
    }

    fn send_event(&self, kind: pb::npl_event::Kind) {
        let state = self.state();
        if let Some(events) = &state.events
            && events.try_send(pb::NplEvent { kind: Some(kind) }).is_err()
        {
            tracing::debug!("consensusd is not taking NPL events; one dropped");
        }
    }

    /// A peer's message (checked by consensusd): to the run of its round, now or when it starts.
    pub fn deliver(&self, delivery: pb::NplDelivery) {
        let Ok(sender) = <[u8; 32]>::try_from(delivery.sender.as_ref()) else { return };
        let mut state = self.state();
        if state.last_started.is_some_and(|last| delivery.seq < last) {
            return;
        }
        if let Some(running) = &state.running
            && running.seq == delivery.seq
        {
            if running.lcl_hash != delivery.lcl_hash {
                tracing::debug!(seq = delivery.seq, "NPL message from a run on another previous ledger; dropped");
                return;
            }
            let deliver = running.deliver.clone();
            if self.take(&mut state, delivery.seq, sender, delivery.data.len())
                && deliver.try_send((ed_hex(&sender), delivery.data)).is_err()
            {
                tracing::debug!(seq = delivery.seq, "the contract is not reading NPL; a message dropped");
            }
            return;
        }
        if state.last_started.is_some_and(|last| delivery.seq == last) {
            return; // that run has ended
        }
        // Early: for a round not started, a few rounds ahead at most (the nearest ones).
        if !state.early.contains_key(&delivery.seq) && state.early.len() >= EARLY_ROUNDS {
            match state.early.last_key_value() {
                Some((&furthest, _)) if furthest > delivery.seq => {
                    state.early.remove(&furthest);
                    state.taken.remove(&furthest);
                }
                _ => return,
            }
        }
        if self.take(&mut state, delivery.seq, sender, delivery.data.len()) {
            state.early.entry(delivery.seq).or_default().push(Early {
                lcl_hash: delivery.lcl_hash,
                sender,
                data: delivery.data,
            });
        }
    }

    /// Counts a message against its sender's budget for `seq`; `false` past it.
    fn take(&self, state: &mut HubState, seq: u64, sender: [u8; 32], len: usize) -> bool {
        let (count, bytes) = state.taken.entry(seq).or_default().entry(sender).or_default();
        if *count + 1 > self.limits.messages || *bytes + len as u64 > self.limits.bytes {
            return false;
        }
        *count += 1;
        *bytes += len as u64;
        true
    }

    /// The NPL of round `seq`'s run on previous ledger `lcl_hash`: the messages that came
    /// early are queued to it at once. Ends when the returned value is dropped.
    pub fn begin(self: &Arc<Self>, seq: u64, lcl_hash: &[u8]) -> RoundNpl {
        let (tx, rx) = mpsc::channel(DELIVER_QUEUE);
        let mut state = self.state();
        let lcl_hash = Bytes::copy_from_slice(lcl_hash);
        let mut early = state.early.remove(&seq).unwrap_or_default();
        early.retain(|m| m.lcl_hash == lcl_hash);
        for m in early {
            let _ = tx.try_send((ed_hex(&m.sender), m.data));
        }
        state.early.retain(|s, _| *s > seq);
        state.taken.retain(|s, _| *s >= seq);
        state.last_started = Some(seq);
        state.running = Some(Running { seq, lcl_hash: lcl_hash.clone(), deliver: tx.clone() });
        let max_bytes = self.limits.bytes;
        RoundNpl { hub: self.clone(), seq, lcl_hash, incoming: Some(rx), loopback: tx, sent: (0, 0), max_bytes }
    }

    fn end(&self, seq: u64) {
        let mut state = self.state();
        if state.running.as_ref().is_some_and(|r| r.seq == seq) {
            state.running = None;
        }
    }

    /// The contract's `peer_changeset`, for consensusd to apply.
    pub fn peer_changeset(&self, add: Vec<String>, remove: Vec<String>) {
        self.send_event(pb::npl_event::Kind::PeerChangeset(pb::PeerChangeset { add, remove }));
    }
}

/// One round's NPL, as the runner uses it.
pub struct RoundNpl {
    hub: Arc<NplHub>,
    seq: u64,
    lcl_hash: Bytes,
    incoming: Option<mpsc::Receiver<Delivered>>,
    /// This run's own queue, for its own messages.
    loopback: mpsc::Sender<Delivered>,
    /// Messages and bytes the contract sent this round.
    sent: (u64, u64),
    /// The most bytes it may send: the node's `npl_output_bytes`, or the agreed config's when
    /// stricter ([`Self::limit_bytes`]).
    max_bytes: u64,
}

impl RoundNpl {
    /// Holds the contract to `agreed` bytes this round too (the agreed config's
    /// `round_limits.npl_output_bytes`; 0 is no limit): the stricter of it and the node's.
    pub fn limit_bytes(mut self, agreed: u64) -> Self {
        if agreed > 0 {
            self.max_bytes = self.max_bytes.min(agreed);
        }
        self
    }

    /// What is to be written to the contract's NPL socket (taken once, by the runner).
    pub fn take_incoming(&mut self) -> Option<mpsc::Receiver<Delivered>> {
        self.incoming.take()
    }

    /// The contract wrote `data`: to every peer and to itself. `false` when it is past the
    /// round's limits (the message is dropped).
    pub fn send(&mut self, data: Bytes) -> bool {
        let limits = self.hub.limits;
        if self.sent.0 + 1 > limits.messages || self.sent.1 + data.len() as u64 > self.max_bytes {
            return false;
        }
        self.sent.0 += 1;
        self.sent.1 += data.len() as u64;
        let _ = self.loopback.try_send((self.hub.own_key.clone(), data.clone()));
        self.hub.send_event(pb::npl_event::Kind::Npl(pb::NplOut {
            seq: self.seq,
            lcl_hash: self.lcl_hash.clone(),
            data,
        }));
        true
    }
}

impl Drop for RoundNpl {
    fn drop(&mut self) {
        self.hub.end(self.seq);
    }
}

/// A key as the HotPocket ABI writes it: `ed` and 64 hex digits.
pub fn ed_hex(key: &[u8; 32]) -> String {
    format!("ed{}", hex::encode(key))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn delivery(seq: u64, lcl: u8, sender: u8, data: &'static [u8]) -> pb::NplDelivery {
        pb::NplDelivery {
            seq,
            lcl_hash: Bytes::from(vec![lcl; 32]),
            sender: Bytes::from(vec![sender; 32]),
            data: Bytes::from_static(data),
        }
    }

    fn drain(rx: &mut mpsc::Receiver<Delivered>) -> Vec<(String, Bytes)> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            out.push(m);
        }
        out
    }

    #[test]
    fn early_messages_wait_for_their_round_and_late_or_forked_ones_are_dropped() {
        let hub = NplHub::new([9; 32], NplLimits { messages: 10, bytes: 1000 });
        let mut events = hub.subscribe();
        hub.deliver(delivery(5, 1, 2, b"early"));
        hub.deliver(delivery(5, 7, 3, b"other previous ledger"));
        hub.deliver(delivery(6, 1, 2, b"next round"));
        let mut round = hub.begin(5, &[1; 32]);
        let mut incoming = round.take_incoming().unwrap();
        hub.deliver(delivery(5, 1, 3, b"during"));
        assert!(round.send(Bytes::from_static(b"mine")));
        let got: Vec<(String, Bytes)> = drain(&mut incoming);
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, [ed_hex(&[2; 32]), ed_hex(&[3; 32]), ed_hex(&[9; 32])]);
        assert_eq!(got[2].1, Bytes::from_static(b"mine"));
        assert!(matches!(events.try_recv().unwrap().kind, Some(pb::npl_event::Kind::Npl(ref o)) if o.seq == 5));
        drop(round);
        hub.deliver(delivery(5, 1, 4, b"late"));
        let mut next = hub.begin(6, &[1; 32]);
        let got = drain(&mut next.take_incoming().unwrap());
        assert_eq!(got.len(), 1, "only round 6's own early message: {got:?}");
    }

    #[test]
    fn a_sender_and_the_contract_are_each_held_to_the_round_limits() {
        let hub = NplHub::new([9; 32], NplLimits { messages: 2, bytes: 1000 });
        for _ in 0..5 {
            hub.deliver(delivery(1, 1, 2, b"flood"));
        }
        for seq in 2..20 {
            hub.deliver(delivery(seq, 1, 2, b"ahead"));
        }
        assert!(hub.state().early.len() <= EARLY_ROUNDS);
        let mut round = hub.begin(1, &[1; 32]);
        assert_eq!(drain(&mut round.take_incoming().unwrap()).len(), 2);
        assert!(round.send(Bytes::from_static(b"a")));
        assert!(round.send(Bytes::from_static(b"b")));
        assert!(!round.send(Bytes::from_static(b"c")), "past npl_messages_per_round");
    }

    #[test]
    fn the_agreed_npl_output_bytes_hold_the_contract_when_stricter_than_the_nodes() {
        let hub = NplHub::new([9; 32], NplLimits { messages: 10, bytes: 10 });
        let mut looser = hub.begin(1, &[1; 32]).limit_bytes(1000);
        assert!(looser.send(Bytes::from_static(b"0123456789")));
        assert!(!looser.send(Bytes::from_static(b"x")), "the node's 10 bytes hold");
        drop(looser);
        let mut stricter = hub.begin(2, &[1; 32]).limit_bytes(4);
        assert!(stricter.send(Bytes::from_static(b"0123")));
        assert!(!stricter.send(Bytes::from_static(b"4")), "the agreed 4 bytes hold");
        let mut none = hub.begin(3, &[1; 32]).limit_bytes(0);
        assert!(none.send(Bytes::from_static(b"0123456789")), "0: only the node's limit");
    }
}
