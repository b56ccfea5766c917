//! `hp-execd <contract-dir>`: the execution daemon of one node. Wiring only; see the library.

use clap::Parser;
use hp_daemon::Daemon;
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs the contract of one Hot Pocket node, round by round, and owns its state/ directory.
#[derive(Parser)]
#[command(name = "hp-execd", version)]
struct Args {
    /// The contract directory (cfg/, bin/, state/, hist/, run/).
    dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Two workers: the engine runs rounds on a thread of its own; these only serve gRPC.
    Daemon { name: "execd", worker_threads: Some(2) }.main(&args.dir, hp_execd::run::run)
}
