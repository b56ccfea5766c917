//! Answering peers' requests for stored data — ledgers (catch-up), agreed outcomes, the state
//! manifest and its chunks (state sync) — off the consensus loop, within a budget per peer.
//!
//! A peer can ask for a lot: one ledger request reads up to [`LEDGER_BATCH`] ledgers
//! (at most [`MAX_REPLY_BYTES`]) from disk, one chunk request a MiB through execd. Answered
//! inside the node loop, a faulty UNL member asking without pause would slow every height of
//! the honest nodes. So each request first takes a token from its peer's bucket
//! ([`REQUESTS_PER_SECOND`], bursts of [`BURST`]); a request over budget is dropped and counted,
//! and its asker retries after its own timeout (an honest node asks one batch at a time, far
//! below the rate). Store reads run on one worker thread with its own read-only connection to
//! the store (WAL: readers never block the node's writes); state requests run as tasks, at most
//! [`STATE_TASKS`] at once. The node loop only hands requests on.

use crate::executor::execd::Execd;
use crate::peer::PeerNet;
use crate::wire;
use hp_ledger::{LedgerRecord, Store};
use hp_proto::v1::peer as wire_pb;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, warn};

/// The most ledgers one reply carries.
pub const LEDGER_BATCH: u32 = 64;
/// A reply stops adding ledgers past this many bytes.
pub const MAX_REPLY_BYTES: usize = 32 * 1024 * 1024;
/// Requests a peer may make per second, sustained.
pub const REQUESTS_PER_SECOND: f64 = 100.0;
/// Requests a peer may make at once after a quiet spell.
pub const BURST: f64 = 200.0;
/// State requests (through execd) served at once, from all peers together.
pub const STATE_TASKS: usize = 8;
/// Store requests waiting for the worker, from all peers together.
const STORE_QUEUE: usize = 256;

/// A request from a peer.
#[derive(Debug)]
pub enum Request {
    Ledgers { request_id: u64, from_seq: u64, max_count: u32 },
    Outcome { seq: u64 },
    StateManifest { request_id: u64 },
    StateChunk(wire_pb::StateChunkRequest),
}

/// The requests the store worker answers.
#[derive(Debug)]
enum StoreRequest {
    Ledgers { request_id: u64, from_seq: u64, max_count: u32 },
    Outcome { seq: u64 },
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// Handed to a worker; the reply goes to the peer.
    Queued,
    /// The peer has used up its budget.
    OverBudget,
    /// Every worker slot is taken.
    Busy,
}

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * REQUESTS_PER_SECOND;
        self.tokens = (self.tokens + refill).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The budgets and the workers. Owned by the node loop.
pub struct Server {
    buckets: HashMap<usize, Bucket>,
    store_requests: mpsc::Sender<(usize, StoreRequest)>,
    state_slots: Arc<Semaphore>,
    exec: Execd,
    peers: PeerNet,
}

impl Server {
    /// Starts the store worker on its own thread; it ends when the server is dropped.
    pub fn start(store_path: PathBuf, exec: Execd, peers: PeerNet) -> std::io::Result<Self> {
        let (store_requests, rx) = mpsc::channel(STORE_QUEUE);
        let worker_peers = peers.clone();
        std::thread::Builder::new()
            .name("hp-serve-store".into())
            .spawn(move || store_worker(store_path, rx, worker_peers))?;
        Ok(Self {
            buckets: HashMap::new(),
            store_requests,
            state_slots: Arc::new(Semaphore::new(STATE_TASKS)),
            exec,
            peers,
        })
    }

    /// Takes `request` from peer `from` if its budget and the workers allow.
    pub fn offer(&mut self, from: usize, request: Request, now: Instant) -> Offered {
        let bucket = self.buckets.entry(from).or_insert(Bucket { tokens: BURST, at: now });
        if !bucket.take(now) {
            return Offered::OverBudget;
        }
        match request {
            Request::Ledgers { request_id, from_seq, max_count } => {
                self.queue_store(from, StoreRequest::Ledgers { request_id, from_seq, max_count })
            }
            Request::Outcome { seq } => self.queue_store(from, StoreRequest::Outcome { seq }),
            Request::StateManifest { request_id } => {
                self.spawn_state_task(|exec, peers| crate::state_sync::serve_manifest(exec, peers, from, request_id))
            }
            Request::StateChunk(chunk) => {
                self.spawn_state_task(|exec, peers| crate::state_sync::serve_chunk(exec, peers, from, chunk))
            }
        }
    }

    /// Hands a store read to the worker if its queue has room.
    fn queue_store(&self, from: usize, request: StoreRequest) -> Offered {
        match self.store_requests.try_send((from, request)) {
            Ok(()) => Offered::Queued,
            Err(_) => Offered::Busy,
        }
    }

    /// Runs one state request through execd if one of the [`STATE_TASKS`] slots is free.
    fn spawn_state_task<F, Fut>(&self, serve: F) -> Offered
    where
        F: FnOnce(Execd, PeerNet) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let Ok(slot) = self.state_slots.clone().try_acquire_owned() else { return Offered::Busy };
        let task = serve(self.exec.clone(), self.peers.clone());
        tokio::spawn(async move {
            task.await;
            drop(slot);
        });
        Offered::Queued
    }
}

/// Serves ledger and outcome requests in order, with a read-only store opened on first use
/// (and again after an error).
fn store_worker(path: PathBuf, mut requests: mpsc::Receiver<(usize, StoreRequest)>, peers: PeerNet) {
    let mut store: Option<Store> = None;
    while let Some((to, request)) = requests.blocking_recv() {
        if store.is_none() {
            match Store::open_read_only(&path) {
                Ok(opened) => store = Some(opened),
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "cannot open the ledger store to answer a peer");
                    continue;
                }
            }
        }
        let Some(open) = store.as_ref() else { continue };
        let frame = match request {
            StoreRequest::Ledgers { request_id, from_seq, max_count } => match ledgers(open, from_seq, max_count) {
                Ok(records) => wire::ledger_reply(request_id, &records),
                Err(e) => {
                    warn!(from_seq, error = %e, "cannot read the ledgers a peer asked for");
                    store = None;
                    continue;
                }
            },
            StoreRequest::Outcome { seq } => wire::outcome_reply(seq, outcome(open, seq)),
        };
        peers.send(to, &frame);
    }
    debug!("store worker stopped");
}

/// The stored ledgers from `from_seq` on: at most `max_count` (and [`LEDGER_BATCH`]), stopping
/// once past [`MAX_REPLY_BYTES`].
pub fn ledgers(store: &Store, from_seq: u64, max_count: u32) -> Result<Vec<LedgerRecord>, hp_ledger::StoreError> {
    let max = u64::from(max_count.clamp(1, LEDGER_BATCH));
    let mut records = Vec::new();
    let mut bytes = 0usize;
    for seq in from_seq..from_seq.saturating_add(max) {
        let Some(record) = store.get(seq)? else { break };
        bytes += record.ledger.encoded_len();
        records.push(record);
        if bytes >= MAX_REPLY_BYTES {
            break;
        }
    }
    Ok(records)
}

/// The agreed outcome of ledger `seq` as stored, empty when it is not kept (or too large for a
/// frame).
fn outcome(store: &Store, seq: u64) -> Vec<u8> {
    match store.agreed_outcome(seq) {
        Ok(Some(bytes)) if bytes.len() <= crate::peer::codec::MAX_FRAME - 1024 => bytes,
        Ok(Some(bytes)) => {
            warn!(seq, bytes = bytes.len(), "an outcome too large for one frame cannot be sent to a peer");
            Vec::new()
        }
        Ok(None) => Vec::new(),
        Err(e) => {
            warn!(seq, error = %e, "cannot read a kept outcome");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_a_burst_then_the_sustained_rate() {
        let start = Instant::now();
        let mut bucket = Bucket { tokens: BURST, at: start };
        let burst = (0..1000).filter(|_| bucket.take(start)).count();
        assert_eq!(burst, BURST as usize);
        // A tenth of a second later: a tenth of the rate more.
        let later = start + Duration::from_millis(100);
        let more = (0..1000).filter(|_| bucket.take(later)).count();
        assert_eq!(more, (REQUESTS_PER_SECOND / 10.0) as usize);
        // Long quiet: the bucket is full again, never fuller.
        let much_later = later + Duration::from_secs(3600);
        assert_eq!((0..1000).filter(|_| bucket.take(much_later)).count(), BURST as usize);
    }
}
