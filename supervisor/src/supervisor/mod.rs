//! `hotpocket run`: the node's supervisor (docs/ARCHITECTURE.md, §7). It starts `hp-execd`,
//! `hp-consensusd` and `hp-userd`, restarts each one alone when it exits (with backoff), serves
//! the control socket, tells systemd how the node is, and stops everything in order.
//!
//! # Layout
//! - [`component`]: the three daemons and their reported states.
//! - [`spawn`]: finding the executables and starting a daemon cleanly; pid files.
//! - [`rundir`]: preparing `run/` and the one-supervisor-per-directory lock.
//! - [`backoff`]: restart delays and crash-loop detection.
//! - [`probe`]: readiness and status questions to the daemons over their sockets.
//! - [`node`]: the supervisor loop that owns the children.
//! - [`control`]: the `Supervisor` gRPC service.
//! - [`notify`]: systemd READY/STATUS/WATCHDOG/STOPPING.
//! - [`http`]: the optional HTTP listener: `/metrics`, `/status`, `/health`.

pub mod backoff;
pub mod component;
pub mod control;
pub mod http;
pub mod node;
pub mod notify;
pub mod probe;
pub mod rundir;
pub mod spawn;

pub use component::{Component, Snapshot, State};

use hp_cfg::{ContractDir, LogFormat};
use hp_daemon::ipc;
use hp_proto::v1::supervisor_server::SupervisorServer;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The supervisor's deadlines.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// `Restart`: how long a daemon has between SIGTERM and SIGKILL.
    pub restart_grace: Duration,
    /// Shutdown: how long each daemon, in stop order, has before the next one is asked to stop.
    pub shutdown_step: Duration,
    /// Shutdown: from the first SIGTERM to SIGKILL for whatever still runs. 3.5 s leaves the
    /// supervisor time to reap and clean up within 5 s, well inside systemd's TimeoutStopSec.
    pub shutdown_total: Duration,
    /// Shutdown: how long to wait for the killed daemons to be reaped.
    pub reap_after_kill: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            restart_grace: Duration::from_secs(3),
            shutdown_step: Duration::from_secs(1),
            shutdown_total: Duration::from_millis(3500),
            reap_after_kill: Duration::from_secs(1),
        }
    }
}

/// What `run` needs; see [`crate::commands::run`] for how it is put together.
#[derive(Debug, Clone)]
pub struct Options {
    /// The contract directory, absolute (the daemons get this path).
    pub dir: ContractDir,
    pub binaries: spawn::Binaries,
    /// Passed to the daemons as `HP_LOG_FORMAT`.
    pub log_format: LogFormat,
    pub timing: Timing,
    /// The metrics port (`metrics_port`), when one is configured.
    pub http: Option<http::HttpSettings>,
}

/// Why the supervisor could not run.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error(transparent)]
    Socket(#[from] ipc::IpcError),
    #[error(transparent)]
    Http(#[from] http::BindError),
}

/// How many control requests may queue for the supervisor loop.
const REQUEST_QUEUE: usize = 64;
/// How long in-flight control calls get to finish at the end.
const SERVER_DRAIN: Duration = Duration::from_millis(300);

/// Runs the node until `shutdown` is cancelled, then stops the daemons and removes the sockets.
/// `run/` must have been prepared ([`rundir::prepare`]) and held by the caller.
pub async fn run(options: Options, shutdown: CancellationToken) -> Result<(), SuperviseError> {
    let Options { dir, binaries, log_format, timing, http: http_settings } = options;
    let listeners = match &http_settings {
        Some(settings) => Some(http::bind(settings).await?),
        None => None,
    };
    let socket = dir.socket("supervisor");
    let incoming = ipc::bind(&socket)?;
    let _socket_guard = ipc::SocketGuard(socket.clone());
    let (requests_tx, requests) = mpsc::channel(REQUEST_QUEUE);
    let stop_server = CancellationToken::new();
    let control = control::Control::new(requests_tx, dir.clone());
    let http_server = match (listeners, http_settings) {
        (Some(listeners), Some(settings)) => {
            Some(tokio::spawn(http::serve(listeners, control.clone(), settings, stop_server.clone())))
        }
        _ => None,
    };
    let service = SupervisorServer::new(control);
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, stop_server.clone().cancelled_owned()),
    );
    tracing::info!(dir = %dir.root().display(), socket = %socket.display(), "supervisor started");

    let node = node::Node::new(dir.clone(), binaries, spawn::child_env(log_format), timing, requests);
    node.run(shutdown).await;

    stop_server.cancel();
    let mut server = server;
    match tokio::time::timeout(SERVER_DRAIN, &mut server).await {
        Ok(Ok(Err(error))) => tracing::warn!(%error, "control socket failed"),
        Ok(_) => {}
        Err(_) => server.abort(),
    }
    if let Some(mut http_server) = http_server
        && tokio::time::timeout(SERVER_DRAIN, &mut http_server).await.is_err()
    {
        http_server.abort();
    }
    for component in Component::START_ORDER {
        // Daemons remove their own sockets; these are left only by killed ones.
        let _ = std::fs::remove_file(dir.socket(component.name()));
        spawn::remove_pid_file(&dir, component);
    }
    tracing::info!("supervisor stopped");
    Ok(())
}
