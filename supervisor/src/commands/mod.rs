//! One file per subcommand, each with a `run` that does the work and returns a
//! [`CommandError`] that knows its exit code ([`hp_daemon::exit`]).

pub mod cluster;
pub mod ledger;
pub mod new;
pub mod rekey;
pub mod restart;
pub mod run;
pub mod status;
pub mod verify;

use crate::cli::{Cli, ClusterCommand, Command};
use hp_cfg::create::CreateError;
use hp_daemon::exit;
use std::path::PathBuf;

/// Why a command failed; its [`exit_code`](CommandError::exit_code) is what the process returns.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Config(#[from] hp_cfg::ConfigError),
    #[error(transparent)]
    Create(#[from] CreateError),
    #[error("node not running ({dir})")]
    NotRunning { dir: PathBuf },
    #[error("{0}")]
    Control(String),
    #[error(transparent)]
    Spawn(#[from] crate::supervisor::spawn::SpawnError),
    #[error(transparent)]
    RunDir(#[from] crate::supervisor::rundir::RunDirError),
    #[error(transparent)]
    Supervise(#[from] crate::supervisor::SuperviseError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("the process that started `hotpocket run` has already exited ({var}=1)")]
    ParentGone { var: &'static str },
    /// `hp-execd --check-sandbox` refused: a protection the config does not allow to be missing
    /// is missing, or `contract_user` cannot be used (docs/contract-interface.md, §5).
    #[error("the node cannot start: {0}")]
    Sandbox(String),
}

impl CommandError {
    /// The process exit code: [`exit::CONFIG`] for a missing or invalid config, else
    /// [`exit::FAILURE`] (docs/command-line.md fixes 1 for "node not running").
    pub fn exit_code(&self) -> i32 {
        match self {
            CommandError::Config(_) | CommandError::Create(CreateError::Config(_)) | CommandError::Sandbox(_) => {
                exit::CONFIG
            }
            _ => exit::FAILURE,
        }
    }
}

/// Runs the parsed command line.
pub async fn dispatch(cli: Cli) -> Result<(), CommandError> {
    match cli.command {
        Command::New(args) => new::run(&args),
        Command::Rekey(args) => rekey::run(&args),
        Command::Run(args) => run::run(&args).await,
        Command::Status(args) => status::run(&args).await,
        Command::Ledger(args) => ledger::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Restart(args) => restart::run(&args).await,
        Command::Cluster(ClusterCommand::New(args)) => cluster::run(&args),
    }
}
