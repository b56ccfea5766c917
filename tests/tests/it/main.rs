//! Whole-node tests with real processes. Each module is one topic; each test starts its own
//! cluster on its own ports and kills it when done, also on failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod catchup;
mod consensus;
mod hotpocket;
mod metrics;
mod nodejs_contract;
mod restarts;
mod sandbox;
mod single_node;
