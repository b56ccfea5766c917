//! `hp-execd <contract-dir>`: the execution daemon of one node. Wiring only; see the library.

use clap::Parser;
use hp_cfg::{Config, ContractDir};
use hp_daemon::{exit, ipc, logging, shutdown};
use hp_execd::{Engine, EngineConfig, engine, process, service};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Runs the contract of one Hot Pocket node, round by round, and owns its state/ directory.
#[derive(Parser)]
#[command(name = "hp-execd", version)]
struct Args {
    /// The contract directory (cfg/, bin/, state/, hist/, run/).
    dir: PathBuf,
}

/// How long shutdown waits for the engine to kill a running contract and stop.
const ENGINE_STOP_WAIT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let args = Args::parse();
    let dir = ContractDir::new(&args.dir);
    let cfg = match Config::load(&dir.config_file()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("hp-execd: {e}");
            return ExitCode::from(exit::CONFIG as u8);
        }
    };
    logging::init("execd", &cfg.loglevel, cfg.logformat);
    match run(&args.dir, &cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("hp-execd: {e:#}");
            ExitCode::from(exit::FAILURE as u8)
        }
    }
}

fn run(root: &std::path::Path, cfg: &Config) -> anyhow::Result<()> {
    if std::env::var_os("HP_SUPERVISED").is_some_and(|v| v == "1") && !process::die_with_parent()? {
        anyhow::bail!("the supervisor is already gone");
    }
    process::ensure_std_fds()?;
    let limit = process::raise_nofile_limit()?;
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
    process::become_subreaper()?;
    let mut engine_cfg = EngineConfig::new(root, cfg)?;
    engine_cfg.reap_strays = true;
    let socket = engine_cfg.dir.socket("execd");
    let engine = Engine::open(engine_cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let stop = shutdown::on_signals()?;
        let (handle, thread) = engine::handle::spawn(engine, stop.clone())?;
        let incoming = ipc::bind(&socket)?;
        let _guard = ipc::SocketGuard(socket.clone());
        tracing::info!(socket = %socket.display(), "execd serving");
        service::serve(incoming, handle, stop.clone().cancelled_owned()).await?;
        stop.cancel();
        let deadline = std::time::Instant::now() + ENGINE_STOP_WAIT;
        while !thread.is_finished() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::info!("execd stopped");
        Ok(())
    })
}
