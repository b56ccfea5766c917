//! Where the statuses of HotPocket users' signed inputs go: the connection that sent an input
//! waits for its fate by the input's hash (BLAKE3 of the user's signature), and the session
//! with consensusd settles it when consensusd says in which ledger it is, or why not. It also
//! keeps the newest ledger consensusd reported, which no client here can be ahead of.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, watch};

/// In ledger `(seq, hash)`, or given up with hpcore's reason.
pub type Fate = Result<(u64, [u8; 32]), String>;

/// The waiting connections, by input hash. Each connection has at most its in-flight limit
/// here; a connection that went away leaves a closed sender, swept as the map grows.
#[derive(Clone, Debug)]
pub struct Statuses(Arc<Mutex<HashMap<[u8; 32], oneshot::Sender<Fate>>>>, Arc<watch::Sender<u64>>);

impl Default for Statuses {
    fn default() -> Self {
        Self(Default::default(), Arc::new(watch::channel(0).0))
    }
}

/// Sweep closed waits whenever the map has grown by this many since the last sweep.
const SWEEP_EVERY: usize = 1024;

impl Statuses {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], oneshot::Sender<Fate>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the fate of `hash`; `None` if a connection already waits for that input (the
    /// same signed input sent twice).
    pub fn wait(&self, hash: [u8; 32]) -> Option<oneshot::Receiver<Fate>> {
        let mut map = self.lock();
        if map.get(&hash).is_some_and(|waiting| !waiting.is_closed()) {
            return None;
        }
        if map.len().is_multiple_of(SWEEP_EVERY) {
            map.retain(|_, waiting| !waiting.is_closed());
        }
        let (tx, rx) = oneshot::channel();
        map.insert(hash, tx);
        Some(rx)
    }

    /// Stops waiting for `hash` (the input was refused before consensusd took it).
    pub fn forget(&self, hash: &[u8; 32]) {
        self.lock().remove(hash);
    }

    /// Tells the connection waiting for `hash`; `false` if none does.
    pub fn settle(&self, hash: &[u8; 32], fate: Fate) -> bool {
        match self.lock().remove(hash) {
            Some(waiting) => waiting.send(fate).is_ok(),
            None => false,
        }
    }

    /// Notes that consensusd reported ledger `seq` (a status or outputs of it).
    pub fn saw_ledger(&self, seq: u64) {
        self.1.send_if_modified(|newest| {
            let newer = seq > *newest;
            if newer {
                *newest = seq;
            }
            newer
        });
    }

    /// The newest ledger consensusd reported: never behind what a client here was told.
    pub fn seen_ledger(&self) -> u64 {
        *self.1.borrow()
    }

    /// Follows [`Self::seen_ledger`] (the `ledger_event` announcer).
    pub fn watch_ledgers(&self) -> watch::Receiver<u64> {
        self.1.subscribe()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}
