//! hp-execd runs the contract once per closed ledger and owns `state/`: its hash, its crash-safe
//! committed copy, and state sync with peers (docs/contract-interface.md, §7).
//!
//! # Layout
//! - [`read`]: read-only runs on a copy of the committed state (HotPocket read requests).
//! - [`run`]: the daemon: process set-up, the engine thread, the service until shutdown.
//! - [`service`]: the `Exec` gRPC service; handlers call the engine on its thread.
//! - [`engine`]: the one owner of the state: rounds in order, idempotent per seq, recovery;
//!   [`engine::handle`]: the engine's thread and the handle the service sends it work through.
//! - [`round`]: what a round is made of (request, inputs, result); imports none of the modules
//!   that use it. How the contract ended is the ledger's `hp_ledger::ExitKind`.
//! - [`recorded_result`]: the bytes of a round's recorded result in `hist/exec/record`.
//! - [`awake`]: timers that do not count the time this process was stopped.
//! - [`runner`]: spawning the contract with per-user pipes (or the HotPocket ABI's file and
//!   sockets), timeout, kill and reap (with [`sandbox`], the only `unsafe`).
//! - [`sandbox`]: what the contract may do: its file-system view (landlock), no sockets
//!   (seccomp), its own user, resource limits; applied by the runner in the child.
//! - [`process`]: killing and reaping process groups and sessions, `/proc` scanning, and the
//!   process setup of `hp-execd` (subreaper, open-file limit, standard fds, parent death).
//! - [`header`]: the stdin header, text, JSON or HotPocket's, byte-exact.
//! - [`npl`]: the node party line and control channel of `hotpocket`-format runs, between
//!   the runner and consensusd's `Npl` stream.
//! - [`state_hash`]: the state hash, its byte layout and incremental re-hashing.
//! - [`snapshot`]: the committed copy, its `record`, the marker and the journal; tree diff and copy.
//! - [`sync`]: state sync paths, staging and building the target tree.
//! - [`metrics`]: contract run durations and results for `/metrics`.
//! - [`convert`]: the service's protobuf ⇄ domain conversions (not used by the engine).

pub mod awake;
pub mod convert;
pub mod engine;
pub mod header;
pub mod metrics;
pub mod npl;
pub mod process;
pub mod read;
pub mod recorded_result;
pub mod round;
pub mod run;
pub mod runner;
pub mod sandbox;
pub mod service;
pub mod snapshot;
pub mod state_hash;
pub mod sync;

pub use engine::handle::EngineHandle;
pub use engine::{Engine, EngineConfig, EngineError};
pub use round::{ExecRequest, RoundResult, StateInfo, UserInput};
