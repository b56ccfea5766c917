//! What a round is made of, as the engine, the runner, the service's conversions and the
//! recorded result all see it: the request, each user's inputs and the result. How the
//! contract ended is the ledger's [`ExitKind`], the one exit type that the outcome hash covers.
//! A leaf: it imports none of the modules that use it, so they need not import each other.

use crate::state_hash::Hash;
use bytes::Bytes;
use hp_ledger::ExitKind;

/// One round to execute (from `ExecuteRequest`).
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub seq: u64,
    /// This ledger's hash.
    pub ledger_hash: Vec<u8>,
    pub prev_hash: Vec<u8>,
    pub time_ms: u64,
    /// Every listed user with its inputs; sorted by the engine.
    pub users: Vec<UserInput>,
}

/// One user's inputs for the round.
#[derive(Debug, Clone)]
pub struct UserInput {
    pub pubkey: [u8; 32],
    /// In ledger order; written without separators.
    pub inputs: Vec<Bytes>,
}

/// The result of a round, as recorded and replied (`ExecuteReply`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundResult {
    pub seq: u64,
    pub state_hash: Hash,
    /// Users that wrote something, in pubkey order.
    pub outputs: Vec<([u8; 32], Bytes)>,
    /// How the contract ended: what the nodes agree on.
    pub exit: ExitKind,
    /// Why the run counts as [`ExitKind::SpawnError`], when it does: for the logs and the
    /// reply's `spawn_error`, not agreed on. `None` for every other exit.
    pub spawn_error: Option<String>,
    pub run_micros: u64,
    /// Everything else execd did for the round, up to recording it (the final fsyncs excluded).
    pub overhead_micros: u64,
}

/// The committed state: what `StateInfo` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateInfo {
    pub seq: Option<u64>,
    pub state_hash: Hash,
}
