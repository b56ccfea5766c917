//! hp-localnet: a local cluster of real Hot Pocket nodes and a user load generator, written once
//! for everything that runs whole nodes — the tests (`hp-tests`) and the benchmark
//! (`hp-bench`). Nodes are real processes (`hotpocket run`) with real sockets; every process a
//! [`Cluster`] starts is stopped when it is dropped, also when its user failed or panicked, and
//! every wait polls with a deadline.
//!
//! # Layout
//! - [`bins`]: finding `hotpocket` and the daemons.
//! - [`ports`]: ports that cannot collide between processes using this crate.
//! - [`cluster`]: node folders, their processes, status, ledgers, stopping them.
//! - [`contract`]: compiling C contracts.
//! - [`load`]: users that keep a window of inputs in flight and record what came back.
//! - [`wait`]: polling with a deadline.
//! - [`error`]: why a step failed.

pub mod bins;
pub mod cluster;
pub mod contract;
pub mod error;
pub mod load;
pub mod ports;
pub mod wait;

pub use cluster::{Cluster, ClusterOptions, ConfigEdit, Host, Node};
pub use error::LocalnetError;
