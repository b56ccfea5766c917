//! Fault scenarios under client load (issue 10): each starts a real network running the fault
//! contract, loads it from several clients on different nodes, does one kind of harm to it, and
//! ends with every check of `hp_tests::harness::check` — no fork, each accepted input executed
//! exactly once, nothing lost on a connection that stayed open, outputs equal to the agreed
//! ones, state hashes certified, every chain verified. Scenarios run one at a time.
//!
//! Sized by `HP_FAULT_*` environment variables (see `hp_tests::harness::scenario`); CI runs
//! the short default, `scripts/soak` the long one. The list, with results, is in
//! `tests/SCENARIOS.md`.
//!
//! Modules: `crashes` (processes killed, data wiped), `network` (freeze, partitions through
//! the test's proxy), `hosts` (a node per network namespace: a link down, a lossy WAN),
//! `hostile_peers` (strangers, garbage, a byzantine UNL member), `hostile_users` (floods on the
//! user port), `relays` (a stranger between two nodes reads and swallows their links), `regressions` (one reduced
//! test per bug found), `checker` (the checks themselves, on planted faults).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod checker;
mod crashes;
mod hostile_peers;
mod hostile_users;
mod hosts;
mod network;
mod regressions;
mod relays;
