//! `hp-consensusd <dir>`: the consensus daemon of one node. Wiring only; see the library.

use clap::Parser;
use hp_daemon::Daemon;
use std::process::ExitCode;

/// Hot Pocket's consensus daemon (started by `hotpocket run`).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The contract directory.
    dir: std::path::PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    Daemon { name: "consensusd", worker_threads: None }.main(&args.dir, hp_consensusd::run)
}
