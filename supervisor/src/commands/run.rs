//! `hotpocket run <dir> [--log-format json|text]`: validates the config, checks that the
//! contract's sandbox can be set up (`hp-execd --check-sandbox`), prepares `run/` and runs the
//! supervisor until SIGTERM/SIGINT.
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
    check_sandbox(&binaries, &dir)?;
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

/// Asks `hp-execd --check-sandbox` whether the contract's sandbox can be set up, before
/// anything starts: a node that cannot sandbox its contract (as its config asks) refuses to
/// start with execd's reason and exit status 3, instead of restarting execd in a loop.
fn check_sandbox(binaries: &spawn::Binaries, dir: &ContractDir) -> Result<(), CommandError> {
    use std::time::{Duration, Instant};
    const CHECK_WAIT: Duration = Duration::from_secs(30);
    let execd = binaries.path(crate::supervisor::Component::Execd);
    let io = |what: &str| {
        let what = format!("{what} {}", execd.display());
        move |source| CommandError::Io { what, source }
    };
    let mut child = std::process::Command::new(&execd)
        .arg("--check-sandbox")
        .arg(dir.root())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(io("cannot run"))?;
    let deadline = Instant::now() + CHECK_WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io("cannot wait for"))? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(CommandError::Sandbox(format!(
                "`{} --check-sandbox` did not answer within {CHECK_WAIT:?}",
                execd.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    let why = stderr.trim().trim_start_matches("hp-execd: ").to_string();
    tracing::error!(reason = %why, "the contract sandbox cannot be set up; not starting");
    Err(CommandError::Sandbox(why))
}
