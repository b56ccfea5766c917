//! `hotpocket run <dir> [--log-format json|text]`: validates the config, prepares `run/` and
//! runs the supervisor until SIGTERM/SIGINT.
//!
//! With `HP_EXIT_WITH_PARENT=1` it also stops (as on SIGTERM) when the process that started it
//! exits: for launchers other than systemd, and for test kits, whose nodes must not outlive a
//! test runner that was killed.

use super::CommandError;
use crate::cli::RunArgs;
use crate::supervisor::{self, Options, Timing, rundir, spawn};
use hp_cfg::{Config, ContractDir};

/// Set to `1`: stop when the parent process exits.
pub const EXIT_WITH_PARENT_ENV: &str = "HP_EXIT_WITH_PARENT";

pub async fn run(args: &RunArgs) -> Result<(), CommandError> {
    // Signals first: a SIGTERM that arrives while the daemons start must still stop them.
    let shutdown = hp_daemon::shutdown::on_signals()
        .map_err(|source| CommandError::Io { what: "cannot install signal handlers".into(), source })?;
    let config = Config::load(&ContractDir::new(&args.dir).config_file())?;
    let log_format = args.log_format.map_or(config.logformat, Into::into);
    hp_daemon::logging::init("supervisor", &config.loglevel, log_format);
    // After logging is up, so that a refused request is logged; a parent that died meanwhile
    // is caught by the check itself.
    if std::env::var_os(EXIT_WITH_PARENT_ENV).is_some_and(|v| v == "1")
        && !hp_daemon::process::sigterm_when_parent_dies()
    {
        return Err(CommandError::ParentGone { var: EXIT_WITH_PARENT_ENV });
    }

    let root = std::fs::canonicalize(&args.dir)
        .map_err(|source| CommandError::Io { what: format!("cannot resolve {}", args.dir.display()), source })?;
    let dir = ContractDir::new(root);
    let bin_dir = spawn::default_bin_dir()
        .map_err(|source| CommandError::Io { what: "cannot find the daemons' folder".into(), source })?;
    let binaries = spawn::Binaries::locate(&bin_dir)?;
    let _run_dir = rundir::prepare(&dir)?;
    let http = config.metrics_port.map(|port| supervisor::http::HttpSettings {
        ip: config.metrics_ip,
        port,
        validators: config.unl.len(),
        quorum: config.quorum(),
        stale_after: supervisor::http::stale_after(
            std::time::Duration::from_millis(config.roundtime_ms),
            std::time::Duration::from_millis(config.contract_timeout_ms),
        ),
        endpoints: crate::status::Endpoints::of(&config),
    });
    let options = Options { dir, binaries, log_format, timing: Timing::default(), http };
    supervisor::run(options, shutdown).await?;
    Ok(())
}
