//! hp-userd driven in-process against a fake consensusd: one module per topic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod binary_mode;
mod daemon;
mod docs;
mod handshake;
mod helo_property;
mod hotpocket_docs;
mod hotpocket_port;
mod limits;
mod listen;
mod registry;
mod robustness;
mod session;
mod support;
