//! Read-only runs (HotPocket's `contract_read_request`, docs/contract-interface.md): the
//! contract runs on a copy of the committed state, with one user and that user's request as
//! its only input, outside consensus. What it writes to the user is the answer; whatever it
//! changes in its copy is thrown away. A JSON header says `"readonly":true`.
//!
//! The copy is made on the engine's thread between rounds (one committed state, never half of
//! one); the run itself happens off that thread, so reads do not hold up rounds. At most
//! [`CONCURRENT_READS`] run at once.

use crate::engine::EngineError;
use crate::engine::handle::{EngineGone, EngineHandle};
use crate::header::{self, RoundInfo};
use crate::round::UserInput;
use crate::runner::{self, Abi, Contract, HotPocketRun, RunError};
use bytes::Bytes;
use hp_cfg::StdinFormat;
use hp_daemon::CancellationToken;
use hp_ledger::ExitKind;
use std::path::Path;

/// Read-only runs at once; more wait.
pub const CONCURRENT_READS: usize = 2;

/// How to run the contract on a prepared copy.
pub struct Prepared {
    pub contract: Contract,
    pub round: RoundInfo,
    pub format: StdinFormat,
}

/// What a read-only run gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    pub output: Vec<u8>,
    pub exit: ExitKind,
    /// `output` is length-prefixed messages (a `hotpocket`-format contract).
    pub length_prefixed: bool,
}

/// Why a read could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot make a scratch folder for the read: {0}")]
    Scratch(std::io::Error),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("execd is stopping")]
    Gone,
    #[error(transparent)]
    Run(#[from] RunError),
}

impl From<EngineGone> for ReadError {
    fn from(_: EngineGone) -> Self {
        ReadError::Gone
    }
}

/// Runs `request` from `user` read-only, with a scratch copy of the state under `scratch_in`.
pub async fn run(
    engine: &EngineHandle,
    scratch_in: &Path,
    user: [u8; 32],
    request: Bytes,
    cancel: &CancellationToken,
) -> Result<ReadResult, ReadError> {
    std::fs::create_dir_all(scratch_in).map_err(ReadError::Scratch)?;
    let scratch = tempfile::Builder::new().prefix("read-").tempdir_in(scratch_in).map_err(ReadError::Scratch)?;
    let dst = scratch.path().join("state");
    let prepared = engine.call(move |engine, _| engine.prepare_read(&dst)).await??;
    let head = header::build_read(prepared.format, &prepared.round, &user, request.len());
    let users = [UserInput { pubkey: user, inputs: vec![request] }];
    // No NPL, and the control channel is not listened to: a read is no round.
    let abi = match prepared.format {
        StdinFormat::Text | StdinFormat::Json => Abi::Pipes,
        StdinFormat::Hotpocket => Abi::HotPocket(HotPocketRun::default()),
    };
    let outcome = runner::run(&prepared.contract, 0, head, &users, abi, cancel, &mut |_| {}).await?;
    let output = outcome.outputs.into_iter().find(|(u, _)| *u == user).map(|(_, o)| o).unwrap_or_default();
    Ok(ReadResult { output, exit: outcome.exit, length_prefixed: prepared.format.length_prefixed_outputs() })
}

/// Copies a folder tree (files with their permission bits, folders; symbolic links are not
/// part of the state and are left out).
pub fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = dst.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
