//! Inputs waiting for a ledger: this node's own accepted inputs and those gossiped by peers,
//! in arrival order, each instance once.

use hp_ledger::{Input, InputId};
use std::collections::{BTreeMap, HashMap};

/// What one pending input costs besides its bytes (its id, user, the two indexes), for
/// [`Mempool::footprint`]: inputs of a few bytes each must not slip past a limit in bytes.
pub const PER_INPUT_COST: usize = 128;

/// Pending inputs by arrival.
#[derive(Default)]
pub struct Mempool {
    by_arrival: BTreeMap<u64, Input>,
    index: HashMap<InputId, u64>,
    next: u64,
    bytes: usize,
}

impl Mempool {
    /// Adds an input unless that instance is already here. Returns whether it was new.
    pub fn insert(&mut self, input: Input) -> bool {
        if self.index.contains_key(&input.id) {
            return false;
        }
        self.next += 1;
        self.bytes += input.data.len();
        self.index.insert(input.id, self.next);
        self.by_arrival.insert(self.next, input);
        true
    }

    pub fn remove(&mut self, id: &InputId) {
        if let Some(arrival) = self.index.remove(id)
            && let Some(input) = self.by_arrival.remove(&arrival)
        {
            self.bytes -= input.data.len();
        }
    }

    pub fn contains(&self, id: &InputId) -> bool {
        self.index.contains_key(id)
    }

    /// The pending input with identity `id`.
    pub fn get(&self, id: &InputId) -> Option<&Input> {
        self.index.get(id).and_then(|arrival| self.by_arrival.get(arrival))
    }

    pub fn is_empty(&self) -> bool {
        self.by_arrival.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_arrival.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// About the memory the pending inputs take: their bytes plus [`PER_INPUT_COST`] each.
    pub fn footprint(&self) -> usize {
        self.bytes + self.by_arrival.len() * PER_INPUT_COST
    }

    /// The oldest inputs whose encoded size adds up to at most `max_bytes` (at least one, so a
    /// single large input is never stuck).
    pub fn take_for_ledger(&self, max_bytes: usize) -> Vec<Input> {
        let mut out = Vec::new();
        let mut size = 0usize;
        for input in self.by_arrival.values() {
            let len = input.encoded_len();
            if !out.is_empty() && size + len > max_bytes {
                break;
            }
            size += len;
            out.push(input.clone());
        }
        out
    }

    /// Inputs from `origin`, oldest first (re-gossip of this node's own).
    pub fn from_origin(&self, origin: &[u8; 32]) -> Vec<Input> {
        self.by_arrival.values().filter(|i| i.id.origin == *origin).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use bytes::Bytes;

    fn input(nonce: u64, len: usize) -> Input {
        let signature = ed25519_dalek::Signature::from_bytes(&[0; 64]);
        Input { id: InputId { origin: [1; 32], nonce }, user: [2; 32], data: Bytes::from(vec![0u8; len]), signature }
    }

    #[test]
    fn keeps_each_instance_once_in_arrival_order() {
        let mut pool = Mempool::default();
        assert!(pool.insert(input(5, 1)));
        assert!(pool.insert(input(3, 1)));
        assert!(!pool.insert(input(5, 1)));
        let taken = pool.take_for_ledger(usize::MAX);
        assert_eq!(taken.iter().map(|i| i.id.nonce).collect::<Vec<_>>(), vec![5, 3]);
        pool.remove(&InputId { origin: [1; 32], nonce: 5 });
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.bytes(), 1);
    }

    #[test]
    fn ledger_size_is_bounded_but_never_empty() {
        let mut pool = Mempool::default();
        pool.insert(input(1, 1000));
        pool.insert(input(2, 1000));
        assert_eq!(pool.take_for_ledger(10).len(), 1);
        assert_eq!(pool.take_for_ledger(100_000).len(), 2);
    }
}
