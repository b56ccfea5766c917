//! hp-userd serves a Hot Pocket node's users: the public websocket port, the user handshake
//! and per-user limits of docs/user-protocol.md, and the session that carries inputs to consensusd and
//! certified outputs back to the users connected here.
//!
//! # Layout
//! - [`run`]: [`Settings`] from the config, and [`Userd`]: start everything, wait for shutdown.
//! - [`server`]: binding the user port (IPv4 + IPv6 for localhost) and the accept loop.
//! - [`admission`]: the pending and signed-in connection pools, with caps per source address.
//! - [`connection`]: one task per connection: upgrade, handshake deadline, binary mode, pings.
//! - [`handshake`]: the challenge and the helo check (pure).
//! - [`hotpocket`]: the HotPocket 0.6 user protocol on `hpport` (TLS) and `hpport_plain`.
//! - [`input`]: an input frame: limits, hand-off to consensusd, the ack.
//! - [`output`]: an output batch from consensusd to the users' queues.
//! - [`frame`]: the error frame and the reasons it carries.
//! - [`limits`]: `pubmaxsize` and the `pubmaxcpm` token bucket per user.
//! - [`metrics`]: users connected and inputs refused at the user port, for `/metrics`.
//! - [`outbox`]: a connection's bounded outgoing queue and its writer.
//! - [`registry`]: public key → connection; replacing and removing.
//! - [`session`]: the `Consensus.UserSession` client: snapshot, events, acks, reconnects.
//! - [`status`]: the `Userd` gRPC status service.
//! - [`metered`]: the read budget of unauthenticated peers.
//! - `testkit` (feature `testkit`, off by default): a stand-in consensusd for tests of userd
//!   and of programs that use it; not part of the production build.

pub mod admission;
pub mod connection;
pub mod frame;
pub mod handshake;
pub mod hotpocket;
pub mod input;
pub mod limits;
pub mod metered;
pub mod metrics;
pub mod outbox;
pub mod output;
pub mod registry;
pub mod run;
pub mod server;
pub mod session;
pub mod status;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use run::{HotPocketAddrs, HotPocketSettings, Settings, Userd, UserdError};
