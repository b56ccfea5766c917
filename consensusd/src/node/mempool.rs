//! Inputs waiting for a ledger: this node's own accepted inputs and those gossiped by peers,
//! in arrival order, each instance once.

use hp_ledger::user_signed::{Opened, Rejection, open_input};
use hp_ledger::{Input, InputId};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What one pending input costs besides its bytes (its id, user, the two indexes), for
/// [`Mempool::footprint`]: inputs of a few bytes each must not slip past a limit in bytes.
pub const PER_INPUT_COST: usize = 128;

/// What one ledger may carry (`max_ledger_input_bytes`, `max_ledger_inputs`,
/// `max_ledger_users`); the same bounds judge a peer's proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerBounds {
    /// Encoded input bytes (a single larger input may still go alone).
    pub bytes: usize,
    pub inputs: usize,
    /// Distinct users, connected users and senders of inputs together.
    pub users: usize,
}

impl LedgerBounds {
    pub const UNBOUNDED: Self = Self { bytes: usize::MAX, inputs: usize::MAX, users: usize::MAX };
}

/// Pending inputs by arrival.
#[derive(Default)]
pub struct Mempool {
    by_arrival: BTreeMap<u64, Input>,
    index: HashMap<InputId, u64>,
    /// The user-signed inputs, opened once on arrival (their user's signature checked).
    opened: HashMap<InputId, Result<Opened, Rejection>>,
    next: u64,
    bytes: usize,
}

impl Mempool {
    /// Adds an input unless that instance is already here. Returns whether it was new.
    pub fn insert(&mut self, input: Input) -> bool {
        if self.index.contains_key(&input.id) {
            return false;
        }
        match open_input(&input) {
            Some(opened) => self.insert_opened(input, opened),
            None => self.add(input),
        }
    }

    /// Adds a user-signed input already opened (its user's signature checked) by the caller.
    pub fn insert_opened(&mut self, input: Input, opened: Result<Opened, Rejection>) -> bool {
        if self.index.contains_key(&input.id) {
            return false;
        }
        self.opened.insert(input.id, opened);
        self.add(input)
    }

    fn add(&mut self, input: Input) -> bool {
        self.next += 1;
        self.bytes += input.data.len();
        self.index.insert(input.id, self.next);
        self.by_arrival.insert(self.next, input);
        true
    }

    pub fn remove(&mut self, id: &InputId) {
        self.opened.remove(id);
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

    /// A pending user-signed input, opened on arrival; `None` for other inputs.
    pub fn opened(&self, id: &InputId) -> Option<Result<Opened, Rejection>> {
        self.opened.get(id).cloned()
    }

    /// Every pending user-signed input with what opening it gave.
    pub fn user_signed(&self) -> impl Iterator<Item = (&InputId, &Result<Opened, Rejection>)> {
        self.opened.iter()
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

    /// The oldest inputs, in arrival order, up to the first that would take the ledger past one
    /// of its bounds: encoded size, number of inputs, distinct senders. At least one, so a
    /// single large input is never stuck; the rest waits for the next ledger. A user whose
    /// next input would take their data in the ledger past `user_input_bytes` (0: no limit)
    /// has no more inputs in it (their first always goes), so their inputs keep their order.
    pub fn take_for_ledger(&self, bounds: LedgerBounds, user_input_bytes: u64) -> Vec<Input> {
        let mut out = Vec::new();
        let mut size = 0usize;
        let mut senders = HashSet::new();
        // Each user's data taken so far; `u64::MAX` once a user has no more room.
        let mut user_bytes: std::collections::HashMap<[u8; 32], u64> = std::collections::HashMap::new();
        for input in self.by_arrival.values() {
            if user_input_bytes > 0 {
                let len = input.data.len() as u64;
                match user_bytes.get_mut(&input.user) {
                    Some(taken) if taken.saturating_add(len) > user_input_bytes => {
                        *taken = u64::MAX;
                        continue;
                    }
                    Some(taken) => *taken += len,
                    None => {
                        user_bytes.insert(input.user, len);
                    }
                }
            }
            if out.len() >= bounds.inputs.max(1) {
                break;
            }
            let len = input.encoded_len();
            if !out.is_empty() && size + len > bounds.bytes {
                break;
            }
            if !out.is_empty() && !senders.contains(&input.user) && senders.len() >= bounds.users {
                break;
            }
            senders.insert(input.user);
            size += len;
            out.push(input.clone());
        }
        out
    }

    /// Drops the inputs whose origin `keep` refuses (no longer a UNL member: no ledger may carry
    /// them); returns how many.
    pub fn drop_origins(&mut self, keep: impl Fn(&[u8; 32]) -> bool) -> usize {
        let gone: Vec<InputId> = self.by_arrival.values().filter(|i| !keep(&i.id.origin)).map(|i| i.id).collect();
        for id in &gone {
            self.remove(id);
        }
        gone.len()
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
        Input {
            id: InputId { origin: [1; 32], nonce },
            user: [2; 32],
            data: Bytes::from(vec![0u8; len]),
            signature,
            user_signed: None,
        }
    }

    #[test]
    fn keeps_each_instance_once_in_arrival_order() {
        let mut pool = Mempool::default();
        assert!(pool.insert(input(5, 1)));
        assert!(pool.insert(input(3, 1)));
        assert!(!pool.insert(input(5, 1)));
        let taken = pool.take_for_ledger(LedgerBounds::UNBOUNDED, 0);
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
        assert_eq!(pool.take_for_ledger(LedgerBounds { bytes: 10, ..LedgerBounds::UNBOUNDED }, 0).len(), 1);
        assert_eq!(pool.take_for_ledger(LedgerBounds { bytes: 100_000, ..LedgerBounds::UNBOUNDED }, 0).len(), 2);
    }

    #[test]
    fn a_ledger_stops_at_the_input_count_and_sender_bounds_in_arrival_order() {
        let mut pool = Mempool::default();
        for nonce in 1..=5 {
            let mut i = input(nonce, 10);
            // Senders 1, 1, 2, 3, 1.
            i.user = [[1u8; 32], [1; 32], [2; 32], [3; 32], [1; 32]][nonce as usize - 1];
            pool.insert(i);
        }
        let nonces = |taken: Vec<Input>| taken.iter().map(|i| i.id.nonce).collect::<Vec<_>>();
        assert_eq!(
            nonces(pool.take_for_ledger(LedgerBounds { inputs: 3, ..LedgerBounds::UNBOUNDED }, 0)),
            vec![1, 2, 3]
        );
        // A third sender would pass two: the ledger stops there, the rest waits.
        assert_eq!(
            nonces(pool.take_for_ledger(LedgerBounds { users: 2, ..LedgerBounds::UNBOUNDED }, 0)),
            vec![1, 2, 3]
        );
        assert_eq!(nonces(pool.take_for_ledger(LedgerBounds { users: 1, ..LedgerBounds::UNBOUNDED }, 0)), vec![1, 2]);
        assert_eq!(nonces(pool.take_for_ledger(LedgerBounds { inputs: 0, users: 0, bytes: 0 }, 0)), vec![1]);
    }

    #[test]
    fn a_user_past_user_input_bytes_has_no_more_inputs_in_the_ledger_but_the_first_always_goes() {
        let mut pool = Mempool::default();
        // Users 1, 2, 1, 1 with 10, 10, 30, 5 bytes.
        for (nonce, (user, len)) in [(1u8, 10), (2, 10), (1, 30), (1, 5)].into_iter().enumerate() {
            let mut i = input(nonce as u64 + 1, len);
            i.user = [user; 32];
            pool.insert(i);
        }
        let nonces = |taken: Vec<Input>| taken.iter().map(|i| i.id.nonce).collect::<Vec<_>>();
        assert_eq!(nonces(pool.take_for_ledger(LedgerBounds::UNBOUNDED, 0)), vec![1, 2, 3, 4]);
        // User 1's 30 bytes would pass 20: neither it nor their later 5 go, so their order holds.
        assert_eq!(nonces(pool.take_for_ledger(LedgerBounds::UNBOUNDED, 20)), vec![1, 2]);
        assert_eq!(nonces(pool.take_for_ledger(LedgerBounds::UNBOUNDED, 40)), vec![1, 2, 3]);
        // A first input larger than the limit goes alone.
        assert_eq!(nonces(pool.take_for_ledger(LedgerBounds::UNBOUNDED, 5)), vec![1, 2]);
    }
}
