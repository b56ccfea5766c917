//! Who may hold a connection on the user port, so that no single address can starve it.
//!
//! Connections that have not signed in yet and signed-in users live in separate pools, each with
//! its own total and per-source cap:
//!
//! - a socket is admitted at accept time only while the pending pool (`max_unauth_connections`)
//!   and its source's share of it (`max_unauth_per_ip`) have room; otherwise it is closed at once,
//!   before a byte is read;
//! - a pending connection that completes the handshake moves to the signed-in pool
//!   (`max_connections`, `max_connections_per_ip`) and gives its pending slot back, or is told
//!   the node is full.
//!
//! So a flood of half-open or never-signing connections from one address takes at most
//! `max_unauth_per_ip` pending slots and none of the signed-in ones, and even a flood that signs
//! in with fresh keys holds at most `max_connections_per_ip` of them: a user from another
//! address still gets in. IPv6 sources are counted per /64, the block one host usually gets, so
//! rotating addresses inside it does not multiply the share.
//!
//! The counts sit behind one mutex: admission is a few integer updates per connection, far
//! cheaper than the handshake's signature check.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// The caps; built from the config (see the README's config table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Most signed-in users at once (`max_connections`).
    pub max_connections: usize,
    /// Most signed-in users from one source (`max_connections_per_ip`).
    pub max_connections_per_ip: usize,
    /// Most connections not signed in yet (`max_unauth_connections`).
    pub max_unauth_connections: usize,
    /// Most connections not signed in yet from one source (`max_unauth_per_ip`).
    pub max_unauth_per_ip: usize,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        Self { max_connections: 1024, max_connections_per_ip: 64, max_unauth_connections: 256, max_unauth_per_ip: 16 }
    }
}

/// Why a connection was not admitted, or not signed in. The `Display` text is what the user is
/// told (signing in) or what the debug log says (accept time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too many connections are signing in (max_unauth_connections {0})")]
    PendingFull(usize),
    #[error("too many connections from this address are signing in (max_unauth_per_ip {0})")]
    PendingFromSource(usize),
    #[error("the node is full: {0} users are connected (max_connections); try again later")]
    Full(usize),
    #[error("too many users are connected from this address (max_connections_per_ip {0}); try again later")]
    FullFromSource(usize),
}

/// The source a connection is counted under: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4(u32),
    V6Prefix(u64),
}

impl Source {
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Source::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(u32::from(v4)),
                None => Source::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    pending: usize,
    signed_in: usize,
}

#[derive(Debug, Default)]
struct State {
    total: Counts,
    /// Only sources with at least one connection.
    by_source: HashMap<Source, Counts>,
}

/// The admission state of one user port (all its listeners). Share it in an `Arc`.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    state: Mutex<State>,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Arc<Self> {
        Arc::new(Self { limits, state: Mutex::new(State::default()) })
    }

    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The counts stay consistent under a panic elsewhere: every update is a single step.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a freshly accepted socket from `ip` into the pending pool.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Pending, Refused> {
        let source = Source::of(ip);
        let mut state = self.lock();
        if state.total.pending >= self.limits.max_unauth_connections {
            return Err(Refused::PendingFull(self.limits.max_unauth_connections));
        }
        let counts = state.by_source.entry(source).or_default();
        if counts.pending >= self.limits.max_unauth_per_ip {
            return Err(Refused::PendingFromSource(self.limits.max_unauth_per_ip));
        }
        counts.pending += 1;
        state.total.pending += 1;
        Ok(Pending { admission: self.clone(), source, moved: false })
    }

    /// Connections not signed in yet, and signed-in users, now.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.lock();
        (state.total.pending, state.total.signed_in)
    }

    fn release(&self, source: Source, pending: usize, signed_in: usize) {
        let mut state = self.lock();
        state.total.pending = state.total.pending.saturating_sub(pending);
        state.total.signed_in = state.total.signed_in.saturating_sub(signed_in);
        if let Some(counts) = state.by_source.get_mut(&source) {
            counts.pending = counts.pending.saturating_sub(pending);
            counts.signed_in = counts.signed_in.saturating_sub(signed_in);
            if counts.pending == 0 && counts.signed_in == 0 {
                state.by_source.remove(&source);
            }
        }
    }
}

/// A pending-pool slot; given back when dropped or moved into the signed-in pool.
#[derive(Debug)]
pub struct Pending {
    admission: Arc<Admission>,
    source: Source,
    /// Set once [`Pending::sign_in`] has taken the slot over.
    moved: bool,
}

impl Pending {
    /// Moves this connection to the signed-in pool, giving its pending slot back either way.
    pub fn sign_in(mut self) -> Result<SignedIn, Refused> {
        let limits = self.admission.limits;
        let mut state = self.admission.lock();
        let from_source = state.by_source.get(&self.source).map(|c| c.signed_in).unwrap_or(0);
        let refusal = if state.total.signed_in >= limits.max_connections {
            Some(Refused::Full(limits.max_connections))
        } else if from_source >= limits.max_connections_per_ip {
            Some(Refused::FullFromSource(limits.max_connections_per_ip))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            drop(state);
            return Err(refusal); // dropping self gives the pending slot back
        }
        state.total.pending = state.total.pending.saturating_sub(1);
        state.total.signed_in += 1;
        let counts = state.by_source.entry(self.source).or_default();
        counts.pending = counts.pending.saturating_sub(1);
        counts.signed_in += 1;
        drop(state);
        self.moved = true;
        Ok(SignedIn { admission: self.admission.clone(), source: self.source })
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.moved {
            self.admission.release(self.source, 1, 0);
        }
    }
}

/// A signed-in-pool slot; given back when the connection ends (dropped).
#[derive(Debug)]
pub struct SignedIn {
    admission: Arc<Admission>,
    source: Source,
}

impl Drop for SignedIn {
    fn drop(&mut self) {
        self.admission.release(self.source, 0, 1);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn limits() -> AdmissionLimits {
        AdmissionLimits {
            max_connections: 4,
            max_connections_per_ip: 2,
            max_unauth_connections: 5,
            max_unauth_per_ip: 2,
        }
    }

    #[test]
    fn one_source_takes_at_most_its_share_of_the_pending_pool() {
        let admission = Admission::new(limits());
        let held: Vec<_> = (0..2).map(|_| admission.admit(ip("10.0.0.1")).unwrap()).collect();
        assert_eq!(admission.admit(ip("10.0.0.1")).unwrap_err(), Refused::PendingFromSource(2));
        let other = admission.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(admission.counts(), (3, 0));
        drop(held);
        assert_eq!(admission.counts(), (1, 0));
        assert!(admission.admit(ip("10.0.0.1")).is_ok());
        drop(other);
    }

    #[test]
    fn the_pending_pool_has_a_total_cap() {
        let admission = Admission::new(limits());
        let held: Vec<_> = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]
            .map(|a| admission.admit(ip(a)).unwrap())
            .into();
        assert_eq!(admission.admit(ip("10.0.0.6")).unwrap_err(), Refused::PendingFull(5));
        drop(held);
        assert_eq!(admission.counts(), (0, 0));
    }

    #[test]
    fn signing_in_moves_the_slot_and_signed_in_users_do_not_use_pending_room() {
        let admission = Admission::new(limits());
        let a = admission.admit(ip("10.0.0.1")).unwrap().sign_in().unwrap();
        let b = admission.admit(ip("10.0.0.1")).unwrap().sign_in().unwrap();
        assert_eq!(admission.counts(), (0, 2));
        // Two signed in from 10.0.0.1 leave its pending share whole...
        let p1 = admission.admit(ip("10.0.0.1")).unwrap();
        let p2 = admission.admit(ip("10.0.0.1")).unwrap();
        // ...but a third signed-in user from it is refused, and its pending slot is given back.
        assert_eq!(p1.sign_in().unwrap_err(), Refused::FullFromSource(2));
        assert_eq!(admission.counts(), (1, 2));
        drop((a, b, p2));
        assert_eq!(admission.counts(), (0, 0));
        assert!(admission.lock().by_source.is_empty(), "no entry outlives its connections");
    }

    #[test]
    fn the_signed_in_pool_has_a_total_cap() {
        let admission = Admission::new(limits());
        let users: Vec<_> = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
            .map(|a| admission.admit(ip(a)).unwrap().sign_in().unwrap())
            .into();
        assert_eq!(admission.admit(ip("10.0.0.5")).unwrap().sign_in().unwrap_err(), Refused::Full(4));
        assert_eq!(admission.counts(), (0, 4));
        drop(users);
    }

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let admission = Admission::new(limits());
        let _a = admission.admit(ip("2001:db8:1:2::1")).unwrap();
        let _b = admission.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(admission.admit(ip("2001:db8:1:2::77")).unwrap_err(), Refused::PendingFromSource(2));
        assert!(admission.admit(ip("2001:db8:1:3::1")).is_ok(), "another /64 is another source");
        let _c = admission.admit(ip("10.0.0.9")).unwrap();
        let _d = admission.admit(ip("::ffff:10.0.0.9")).unwrap();
        assert_eq!(admission.admit(ip("10.0.0.9")).unwrap_err(), Refused::PendingFromSource(2));
    }
}
