//! The whole-node tests' kit: real Hot Pocket nodes from [`hp_localnet`] (`hotpocket run`, real
//! processes, real sockets on 127.0.0.1), talking to them as users do, and looking at what they
//! did. Every process a test starts is killed when its [`Cluster`] is dropped, also when the
//! test fails, and every wait polls with a deadline. What is here is what only tests need:
//! panicking waits, user helpers, test contracts, and the fault harness.
//!
//! # Layout
//! - [`bins`], [`ports`], [`cluster`]: hp-localnet's, re-exported.
//! - [`wait`]: polling with a deadline, panicking when it passes.
//! - [`contracts`], [`user`]: test contracts in C, and users sending one input.
//! - [`harness`]: fault scenarios under client load, and their checks (issue 10).
//! - [`js`]: the published HotPocket 0.6 JS client, run by Node.js against real nodes.

pub mod contracts;
pub mod harness;
pub mod js;
pub mod user;
pub mod wait;

pub use hp_localnet::{Cluster, ClusterOptions, Host, Node, bins, cluster, ports};
pub use wait::{OrPanic, wait_until};
