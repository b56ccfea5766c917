//! `hp-consensusd <dir>`: wires config, logging, signals and [`hp_consensusd::run`].

use clap::Parser;
use hp_cfg::{Config, ContractDir};
use hp_daemon::exit;

/// Hot Pocket's consensus daemon (started by `hotpocket run`).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The contract directory.
    dir: std::path::PathBuf,
}

fn main() {
    let args = Args::parse();
    let dir = ContractDir::new(&args.dir);
    let cfg = match Config::load(&dir.config_file()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("hp-consensusd: {e}");
            std::process::exit(exit::CONFIG);
        }
    };
    hp_daemon::logging::init("consensusd", &cfg.loglevel, cfg.logformat);
    hp_daemon::process::die_with_parent();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hp-consensusd: cannot start the runtime: {e}");
            std::process::exit(exit::FAILURE);
        }
    };
    let code = runtime.block_on(async {
        let shutdown = match hp_daemon::shutdown::on_signals() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot install signal handlers");
                return exit::FAILURE;
            }
        };
        match hp_consensusd::run(dir, cfg, shutdown).await {
            Ok(()) => exit::OK,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "consensusd failed");
                exit::FAILURE
            }
        }
    });
    std::process::exit(code);
}
