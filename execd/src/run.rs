//! Running hp-execd for one contract directory: the process set-up a contract runner needs
//! (descriptor limit, subreaper, the contract's sandbox), the engine on its thread, and the `Exec` service on
//! `run/execd.sock` until shutdown. `main.rs` only hands this to the shared daemon entry.

use crate::engine::{self, Engine, EngineConfig, EngineError};
use crate::sandbox::Sandbox;
use crate::{process, service};
use hp_cfg::{Config, ContractDir};
use hp_daemon::{CancellationToken, ipc};
use std::time::{Duration, Instant};

/// How long shutdown waits for the engine to kill a running contract and stop.
const ENGINE_STOP_WAIT: Duration = Duration::from_secs(5);

/// Why execd could not start or stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot raise the open-file limit: {0}")]
    FileLimit(nix::Error),
    #[error("cannot become the subreaper of the contract's processes: {0}")]
    Subreaper(nix::Error),
    #[error("the contract: {0}")]
    Contract(std::io::Error),
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot start the engine thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot serve the execd socket: {0}")]
    Socket(#[from] ipc::IpcError),
    #[error("the execd service failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// `hp-execd --check-sandbox <dir>`: whether the contract's sandbox can be set up as the config
/// asks (exit 0), or why not (on stderr, exit [`hp_daemon::exit::CONFIG`]: like a bad config,
/// the node refuses to start and a restart will not help).
pub fn check_sandbox(root: &std::path::Path) -> std::process::ExitCode {
    let code = |c: i32| std::process::ExitCode::from(u8::try_from(c).unwrap_or(1));
    let dir = ContractDir::new(root);
    let cfg = match Config::load(&dir.config_file()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("hp-execd: {e}");
            return code(hp_daemon::exit::CONFIG);
        }
    };
    let checked = EngineConfig::new(dir.root(), &cfg)
        .map_err(|e| format!("the contract: {e}"))
        .and_then(|engine| Sandbox::start(&engine.dir, &cfg, &engine.contract.program).map_err(|e| e.to_string()));
    match checked {
        Ok(_) => code(hp_daemon::exit::OK),
        Err(e) => {
            eprintln!("hp-execd: {e}");
            code(hp_daemon::exit::CONFIG)
        }
    }
}

/// Runs execd for the contract directory until `shutdown`.
pub async fn run(dir: ContractDir, cfg: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let limit = process::raise_nofile_limit().map_err(RunError::FileLimit)?;
    tracing::debug!(limit, "open file limit raised");
    // A round holds four fds per user while the contract starts; a ledger may list
    // `max_ledger_users` of them. Past the limit such a ledger cannot run here (consensusd then
    // copies the state from a peer): say so now, not in the middle of a round.
    let needed = cfg.max_ledger_users.saturating_mul(4).saturating_add(256);
    if limit < needed {
        tracing::warn!(
            limit,
            needed,
            max_ledger_users = cfg.max_ledger_users,
            "the open-file limit (RLIMIT_NOFILE) is too low for a ledger with max_ledger_users users; \
             such a ledger cannot run on this node: raise the limit or lower max_ledger_users"
        );
    }
    process::become_subreaper().map_err(RunError::Subreaper)?;
    let mut engine_cfg = EngineConfig::new(dir.root(), &cfg).map_err(RunError::Contract)?;
    engine_cfg.reap_strays = true;
    let sandbox = Sandbox::start(&engine_cfg.dir, &cfg, &engine_cfg.contract.program)?;
    engine_cfg.contract.sandbox = sandbox.map(std::sync::Arc::new);
    let socket = engine_cfg.dir.socket("execd");
    let npl = engine_cfg.npl.clone();
    let engine = Engine::open(engine_cfg)?;
    let (handle, thread) = engine::handle::spawn(engine, shutdown.clone()).map_err(RunError::Thread)?;
    let incoming = ipc::bind(&socket)?;
    let _guard = ipc::SocketGuard(socket.clone());
    tracing::info!(socket = %socket.display(), "execd serving");
    let scratch = dir.exec_data().join("reads");
    // Copies left by reads a crash cut short.
    let _ = std::fs::remove_dir_all(&scratch);
    let reads = service::Reads::new(scratch, shutdown.clone());
    let served = service::serve(incoming, handle, reads, npl, shutdown.clone().cancelled_owned()).await;
    shutdown.cancel();
    let deadline = Instant::now() + ENGINE_STOP_WAIT;
    while !thread.is_finished() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::info!("execd stopped");
    Ok(served?)
}
