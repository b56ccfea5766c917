//! The cluster kit: start real Hot Pocket nodes (`hotpocket run`, real processes, real sockets
//! on 127.0.0.1), talk to them as users do, and look at what they did. Every process a test
//! starts is killed when its [`Cluster`] is dropped, also when the test fails, and every wait
//! polls with a deadline.
//!
//! # Layout
//! - [`bins`]: finding the workspace's binaries.
//! - [`ports`]: ports that cannot collide between tests.
//! - [`cluster`]: nodes, their processes, status, ledgers.
//! - [`wait`]: polling with a deadline.
//! - [`harness`]: fault scenarios under client load, and their checks (issue 10).

pub mod bins;
pub mod cluster;
pub mod contracts;
pub mod harness;
pub mod ports;
pub mod user;
pub mod wait;

pub use cluster::{Cluster, ClusterOptions, Host, Node};
pub use wait::wait_until;
