//! hp-execd's integration tests: one binary, a module per topic. Contracts are written in C
//! (contracts/contract.c) and compiled once per run with `cc`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crash;
mod docs;
mod headers;
mod hotpocket_abi;
mod io;
mod overhead;
mod patch;
mod process;
mod sandbox;
mod state_hash;
mod state_sync;
mod support;
mod sync_paths_fuzz;
