//! The authenticated users of this node: public key → the one connection that serves them.
//!
//! A second connection with the same key replaces the first (docs/user-protocol.md step 5): the old one
//! gets an error frame and a close. Entries carry a connection id so that a replaced
//! connection, when it ends, cannot remove its successor.
//!
//! The registry is the truth about who is connected; the session reads it for the snapshot it
//! sends consensusd on every (re)connect and to decide each connected/disconnected event.

use crate::outbox::Outbox;
use hp_cfg::PublicKeyHex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// How the rest of userd reaches one connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Unique per connection for the life of the process.
    pub id: u64,
    pub outbox: Outbox,
    /// The message encoding of a HotPocket 0.6 connection; `None` on the seed port.
    pub hotpocket: Option<crate::hotpocket::Protocol>,
    /// The notification channels a HotPocket connection subscribed to; shared with it.
    pub subscriptions: Arc<Subscriptions>,
}

/// Which notification channels (`subscription` messages) a HotPocket connection is on.
#[derive(Debug, Default)]
pub struct Subscriptions {
    pub ledger_event: std::sync::atomic::AtomicBool,
    pub health_event: std::sync::atomic::AtomicBool,
    pub unl_change: std::sync::atomic::AtomicBool,
    /// The UNL this connection was last given (in the handshake, then by `unl_change`), so
    /// that it is told of a change exactly when what it holds differs from the UNL in force.
    pub told_unl: Mutex<Vec<[u8; 32]>>,
    /// Whether this connection holds the node as in sync: until told otherwise (`vote_status`)
    /// a client takes a node it reached to be.
    pub told_in_sync: std::sync::atomic::AtomicBool,
}

impl Subscriptions {
    /// Subscriptions of a connection that was given `unl` in its handshake.
    pub fn told(unl: Vec<[u8; 32]>) -> Self {
        Self { told_unl: Mutex::new(unl), told_in_sync: true.into(), ..Self::default() }
    }
}

/// Shared by the connections, the session and the status service.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    users: Arc<Mutex<HashMap<PublicKeyHex, ConnHandle>>>,
    next_id: Arc<AtomicU64>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh connection id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers `user` on `handle`. A connection the user already had is told it was replaced
    /// and closed; returns its id.
    pub fn insert(&self, user: PublicKeyHex, handle: ConnHandle) -> Option<u64> {
        let old = self.lock().insert(user, handle);
        old.map(|old| {
            // A seed connection learns why in an error frame; a HotPocket one from the close.
            let reason = if old.hotpocket.is_none() { Some(crate::frame::REPLACED) } else { None };
            old.outbox.close(reason, CloseCode::Policy);
            old.id
        })
    }

    /// Removes `user` if connection `id` still serves them. Returns whether it did.
    pub fn remove(&self, user: &PublicKeyHex, id: u64) -> bool {
        let mut users = self.lock();
        if users.get(user).is_some_and(|h| h.id == id) {
            users.remove(user);
            true
        } else {
            false
        }
    }

    pub fn get(&self, user: &PublicKeyHex) -> Option<ConnHandle> {
        self.lock().get(user).cloned()
    }

    pub fn contains(&self, user: &PublicKeyHex) -> bool {
        self.lock().contains_key(user)
    }

    /// Every connected user, sorted.
    pub fn users(&self) -> Vec<PublicKeyHex> {
        let mut users: Vec<_> = self.lock().keys().copied().collect();
        users.sort();
        users
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Every connection, for closing them all at shutdown.
    pub fn handles(&self) -> Vec<ConnHandle> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PublicKeyHex, ConnHandle>> {
        // A panic while holding the lock cannot leave the map half-updated (each operation is
        // one HashMap call), so a poisoned lock is still good to use.
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::outbox::{OutboxLimits, outbox};
    use tokio_util::sync::CancellationToken;

    fn handle(registry: &Registry) -> (ConnHandle, CancellationToken, crate::outbox::OutboxReceiver) {
        let kill = CancellationToken::new();
        let (outbox, rx) = outbox(OutboxLimits::default(), kill.clone());
        (ConnHandle { id: registry.next_id(), outbox, hotpocket: None, subscriptions: Default::default() }, kill, rx)
    }

    #[test]
    fn a_replaced_connection_cannot_remove_its_successor() {
        let registry = Registry::new();
        let key = PublicKeyHex([9; 32]);
        let (first, _k1, _r1) = handle(&registry);
        let (second, _k2, _r2) = handle(&registry);
        let (first_id, second_id) = (first.id, second.id);
        assert_eq!(registry.insert(key, first), None);
        assert_eq!(registry.insert(key, second), Some(first_id));
        assert!(!registry.remove(&key, first_id));
        assert!(registry.contains(&key));
        assert!(registry.remove(&key, second_id));
        assert!(registry.is_empty());
    }
}
