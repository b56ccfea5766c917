//! `hp-userd <contract-dir>`: the user-facing daemon of one node. Wiring only; the logic is in
//! the library (see `lib.rs`).

use clap::Parser;
use hp_daemon::Daemon;
use hp_userd::{Settings, Userd};
use std::path::PathBuf;
use std::process::ExitCode;

/// Serves the node's users: the public websocket port, handshakes, limits, and the session
/// with consensusd. Stops on SIGINT/SIGTERM after sending every user a close frame.
#[derive(Debug, Parser)]
#[command(name = "hp-userd", version)]
struct Args {
    /// The contract directory (its cfg/hp.cfg is read, its run/ holds the sockets).
    contract_dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    Daemon { name: "userd", worker_threads: None }.main(&args.contract_dir, |dir, config, shutdown| async move {
        let userd = Userd::start(Settings::from_config(&config, &dir), shutdown).await?;
        userd.wait().await;
        Ok::<(), hp_userd::UserdError>(())
    })
}
