//! `hp-userd <contract-dir>`: the user-facing daemon of one node. Wiring only; the logic is in
//! the library (see `lib.rs`).

use clap::Parser;
use hp_cfg::{Config, ContractDir};
use hp_daemon::exit;
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
    // HP_SUPERVISED=1: die with the supervisor (PR_SET_PDEATHSIG), exit if already orphaned.
    hp_daemon::process::die_with_parent();
    let dir = ContractDir::new(args.contract_dir);
    let config = match Config::load(&dir.config_file()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("hp-userd: {e}");
            return code(exit::CONFIG);
        }
    };
    hp_daemon::logging::init("userd", &config.loglevel, config.logformat);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("hp-userd: cannot start the async runtime: {e}");
            return code(exit::FAILURE);
        }
    };
    let result = runtime.block_on(async {
        let shutdown = hp_daemon::shutdown::on_signals().map_err(|e| format!("cannot install signal handlers: {e}"))?;
        let userd = Userd::start(Settings::from_config(&config, &dir), shutdown).await.map_err(|e| e.to_string())?;
        userd.wait().await;
        Ok::<(), String>(())
    });
    match result {
        Ok(()) => code(exit::OK),
        Err(e) => {
            tracing::error!(error = %e, "userd failed");
            eprintln!("hp-userd: {e}");
            code(exit::FAILURE)
        }
    }
}

fn code(value: i32) -> ExitCode {
    ExitCode::from(u8::try_from(value).unwrap_or(1))
}
