//! The fault-test harness (issue 10): real clusters under checkable client load, faults done
//! to them from outside, and the checks that nothing was lost, forked or let in.
//!
//! # Layout
//! - [`contract`]: the C contract whose outputs attribute every input, and its model in Rust.
//! - [`load`]: clients sending unique tokens and recording everything they saw.
//! - [`faults`]: kill -9 of a component, SIGSTOP/SIGCONT of a node, wiping a node's data.
//! - [`proxy`]: a TCP proxy between peers that partitions the network on demand.
//! - [`rogue`]: the test acting as a UNL member or an outsider on the peer protocol.
//! - [`check`]: the invariants, from the ledger stores, logs and client records.
//! - [`scenario`]: one scenario from start to verdict, sized by environment variables.

pub mod check;
pub mod contract;
pub mod faults;
pub mod load;
pub mod netns;
pub mod proxy;
pub mod rogue;
pub mod scenario;

pub use scenario::{Scenario, ScenarioOptions, env_u64, outage};
