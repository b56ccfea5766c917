//! Starting and stopping the whole daemon: the user port, the session with consensusd and the
//! status service, under one shutdown token.

use crate::admission::{Admission, AdmissionLimits};
use crate::connection::{ConnSettings, Shared};
use crate::limits::InputLimits;
use crate::metrics::UserdMetrics;
use crate::registry::Registry;
use crate::server::{self, ServerError};
use crate::session::{self, SessionHandle, SessionSettings};
use crate::status::StatusService;
use hp_cfg::{Config, ContractDir};
use hp_daemon::ipc::{IpcError, SocketGuard};
use hp_proto::v1::UserdStatus;
use hp_proto::v1::userd_server::UserdServer;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Everything userd needs to run, from the config or from a test.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address (`ip`); `None` = localhost on IPv4 and IPv6.
    pub ip: Option<IpAddr>,
    /// `pubport`; `None` = a validator-only node with no user port. 0 picks a free port.
    pub pubport: Option<u16>,
    /// The pending and signed-in pools and their per-source caps.
    pub admission: AdmissionLimits,
    pub pubmaxsize: u64,
    pub pubmaxcpm: u64,
    pub connection: ConnSettings,
    pub session: SessionSettings,
    /// Where to serve the `Userd` status service (`run/userd.sock`); `None` serves none.
    pub status_socket: Option<PathBuf>,
    /// At shutdown, how long connections get to send their close frames.
    pub shutdown_grace: Duration,
}

impl Settings {
    pub fn from_config(config: &Config, dir: &ContractDir) -> Self {
        Self {
            ip: config.ip,
            pubport: config.pubport,
            admission: AdmissionLimits {
                max_connections: usize::try_from(config.max_connections).unwrap_or(usize::MAX),
                max_connections_per_ip: usize::try_from(config.max_connections_per_ip).unwrap_or(usize::MAX),
                max_unauth_connections: usize::try_from(config.max_unauth_connections).unwrap_or(usize::MAX),
                max_unauth_per_ip: usize::try_from(config.max_unauth_per_ip).unwrap_or(usize::MAX),
            },
            pubmaxsize: config.pubmaxsize,
            pubmaxcpm: config.pubmaxcpm,
            connection: ConnSettings::new(config.pubmaxsize, Duration::from_millis(config.handshake_timeout_ms)),
            session: SessionSettings::new(dir.socket("consensusd")),
            status_socket: Some(dir.socket("userd")),
            shutdown_grace: Duration::from_secs(3),
        }
    }
}

/// Why userd could not start.
#[derive(Debug, thiserror::Error)]
pub enum UserdError {
    #[error(transparent)]
    Listen(#[from] ServerError),
    #[error("cannot serve the userd status socket: {0}")]
    Status(#[from] IpcError),
}

/// A running userd. Dropping it does not stop it: cancel the shutdown token, then [`Userd::wait`].
pub struct Userd {
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    status: StatusService,
    /// The accept loops and every connection task.
    tasks: TaskTracker,
    /// The session task and the status server.
    background: Vec<JoinHandle<()>>,
    shutdown: CancellationToken,
    grace: Duration,
    socket: Option<SocketGuard>,
}

impl Userd {
    /// Binds the user port and the status socket and starts every task. Returns once users can
    /// connect.
    pub async fn start(settings: Settings, shutdown: CancellationToken) -> Result<Self, UserdError> {
        let registry = Registry::new();
        let metrics = UserdMetrics::default();
        let listeners = match settings.pubport {
            Some(port) => server::bind(settings.ip, port).await?,
            None => Vec::new(),
        };
        let addrs: Vec<SocketAddr> = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
        let (session, session_task) = session::spawn(settings.session, registry.clone(), shutdown.clone());
        let shared = Arc::new(Shared {
            settings: settings.connection,
            registry: registry.clone(),
            session: session.clone(),
            limits: InputLimits::new(settings.pubmaxsize, settings.pubmaxcpm),
            metrics: metrics.clone(),
        });
        let tasks = TaskTracker::new();
        let admission = Admission::new(settings.admission);
        for listener in listeners {
            tasks.spawn(server::accept_loop(
                listener,
                shared.clone(),
                admission.clone(),
                tasks.clone(),
                shutdown.clone(),
            ));
        }
        let status = StatusService { registry, session, listening: true, metrics };
        let mut background = vec![session_task];
        let socket = match settings.status_socket {
            None => None,
            Some(path) => {
                let incoming = hp_daemon::ipc::bind(&path)?;
                let service = UserdServer::new(status.clone());
                let stop = shutdown.clone();
                background.push(tokio::spawn(async move {
                    let served = tonic::transport::Server::builder()
                        .add_service(service)
                        .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                        .await;
                    if let Err(e) = served {
                        tracing::error!(error = %e, "userd status service failed");
                    }
                }));
                Some(SocketGuard(path))
            }
        };
        match settings.pubport {
            Some(_) => tracing::info!(?addrs, "userd listening for users"),
            None => tracing::info!("no pubport configured: validator-only node, no user port"),
        }
        Ok(Self { addrs, shared, status, tasks, background, shutdown, grace: settings.shutdown_grace, socket })
    }

    /// The bound user port addresses (empty with no `pubport`).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    pub fn session(&self) -> &SessionHandle {
        &self.shared.session
    }

    pub fn limits(&self) -> &InputLimits {
        &self.shared.limits
    }

    /// What `Userd.Status` answers.
    pub fn status(&self) -> UserdStatus {
        self.status.snapshot()
    }

    /// Waits for the shutdown token, then for every connection to send its close frame (up to
    /// the grace period) and for the background tasks; removes the status socket.
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        self.tasks.close();
        if tokio::time::timeout(self.grace, self.tasks.wait()).await.is_err() {
            tracing::warn!(left = self.tasks.len(), "some user connections did not close in time");
        }
        for task in self.background {
            if tokio::time::timeout(Duration::from_secs(2), task).await.is_err() {
                tracing::warn!("a background task did not stop in time");
            }
        }
        // The guard removes the status socket.
        drop(self.socket);
        tracing::info!("userd stopped");
    }
}
