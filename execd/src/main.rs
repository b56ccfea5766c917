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
    /// Only check that the contract's sandbox can be set up as the config asks, and exit: 0 if
    /// it can, 3 (with the reason on stderr) if not. `hotpocket run` does this before starting.
    #[arg(long)]
    check_sandbox: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.check_sandbox {
        return hp_execd::run::check_sandbox(&args.dir);
    }
    // Two workers: the engine runs rounds on a thread of its own; these only serve gRPC.
    Daemon { name: "execd", worker_threads: Some(2) }.main(&args.dir, hp_execd::run::run)
}
