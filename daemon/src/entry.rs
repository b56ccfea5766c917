//! The one shape of a daemon's `main`: make sure fds 0–2 are taken, die with the supervisor, load the config, start logging
//! and the runtime, turn signals into a shutdown token, run, and map the outcome to an exit
//! code (docs/command-line.md). Each daemon's `main.rs` only names itself and what it runs.

use crate::{exit, logging, process, shutdown};
use hp_cfg::{Config, ContractDir};
use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// What differs between the daemons at start.
#[derive(Debug, Clone, Copy)]
pub struct Daemon {
    /// Its name in logs and messages: `userd`, `consensusd`, `execd`.
    pub name: &'static str,
    /// Tokio worker threads; `None` for one per core.
    pub worker_threads: Option<usize>,
}

impl Daemon {
    /// Runs `run` for the contract directory `dir` until it returns, and says how the process
    /// should exit: [`exit::CONFIG`] for a config it cannot load, [`exit::FAILURE`] for a
    /// failure (logged with its whole chain of causes), [`exit::OK`] otherwise.
    pub fn main<F, Fut, E>(self, dir: &Path, run: F) -> ExitCode
    where
        F: FnOnce(ContractDir, Config, CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: std::error::Error,
    {
        let name = self.name;
        if let Err(e) = process::ensure_std_fds() {
            eprintln!("hp-{name}: cannot open /dev/null for the standard descriptors: {e}");
            return code(exit::FAILURE);
        }
        // HP_SUPERVISED=1: die with the supervisor (PR_SET_PDEATHSIG), exit if already orphaned.
        process::die_with_parent();
        let dir = ContractDir::new(dir);
        let cfg = match Config::load(&dir.config_file()) {
            Ok(cfg) => cfg,
            Err(e) => {
                eprintln!("hp-{name}: {e}");
                return code(exit::CONFIG);
            }
        };
        logging::init(name, &cfg.loglevel, cfg.logformat);
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(threads) = self.worker_threads {
            builder.worker_threads(threads);
        }
        let runtime = match builder.enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                eprintln!("hp-{name}: cannot start the async runtime: {e}");
                return code(exit::FAILURE);
            }
        };
        let result = runtime.block_on(async {
            let shutdown = shutdown::on_signals().map_err(|e| format!("cannot install signal handlers: {e}"))?;
            run(dir, cfg, shutdown).await.map_err(|e| causes(&e))
        });
        match result {
            Ok(()) => code(exit::OK),
            Err(error) => {
                tracing::error!(daemon = name, %error, "daemon failed");
                eprintln!("hp-{name}: {error}");
                code(exit::FAILURE)
            }
        }
    }
}

/// An error with its causes, outermost first: "a: b: c".
pub fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // thiserror's `#[error("…: {0}")]` already shows its source; say it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn code(value: i32) -> ExitCode {
    ExitCode::from(u8::try_from(value).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("shown: {0}")]
    struct Shown(#[source] std::io::Error);

    #[test]
    fn causes_lists_each_cause_once() {
        let io = || std::io::Error::other("disk full");
        assert_eq!(causes(&Outer(io())), "outer: disk full");
        assert_eq!(causes(&Shown(io())), "shown: disk full");
    }
}
