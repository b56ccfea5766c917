//! Starting and stopping the whole daemon: the user port, the session with consensusd and the
//! status service, under one shutdown token.

use crate::admission::{Admission, AdmissionLimits};
use crate::connection::{ConnSettings, Shared};
use crate::hotpocket::HotPocketShared;
use crate::hotpocket::node_view::NodeView;
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
    /// The HotPocket 0.6 user protocol; `None` when neither `hpport` nor `hpport_plain` is set.
    pub hotpocket: Option<HotPocketSettings>,
}

/// The HotPocket 0.6 ports and what their handshake tells clients.
#[derive(Clone)]
pub struct HotPocketSettings {
    /// `hpport` (TLS); 0 picks a free port.
    pub tls_port: Option<u16>,
    /// `hpport_plain`; 0 picks a free port.
    pub plain_port: Option<u16>,
    pub cert: PathBuf,
    pub key_file: PathBuf,
    pub contract_id: String,
    pub contract_version: String,
    pub node_key: ed25519_dalek::SigningKey,
    pub unl: Vec<[u8; 32]>,
    pub peers: Vec<String>,
    pub consensusd_socket: PathBuf,
    /// For read requests (read-only runs of the contract).
    pub execd_socket: PathBuf,
}

impl std::fmt::Debug for HotPocketSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("HotPocketSettings")
            .field("tls_port", &self.tls_port)
            .field("plain_port", &self.plain_port)
            .field("contract_id", &self.contract_id)
            .finish_non_exhaustive()
    }
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
            hotpocket: (config.hpport.is_some() || config.hpport_plain.is_some()).then(|| HotPocketSettings {
                tls_port: config.hpport,
                plain_port: config.hpport_plain,
                cert: dir.tls_cert(),
                key_file: dir.tls_key(),
                contract_id: config.contract_id.clone(),
                contract_version: config.contract_version.clone(),
                node_key: config.key.signing_key().clone(),
                unl: config.unl.clone(),
                peers: config.peers.clone(),
                consensusd_socket: dir.socket("consensusd"),
                execd_socket: dir.socket("execd"),
            }),
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
    #[error("the HotPocket port's TLS: {0}")]
    Tls(#[from] crate::hotpocket::tls::TlsError),
}

/// Where the HotPocket 0.6 ports listen.
#[derive(Debug, Clone, Default)]
pub struct HotPocketAddrs {
    /// `wss://` (`hpport`).
    pub tls: Vec<SocketAddr>,
    /// `ws://` (`hpport_plain`).
    pub plain: Vec<SocketAddr>,
}

/// A running userd. Dropping it does not stop it: cancel the shutdown token, then [`Userd::wait`].
pub struct Userd {
    addrs: Vec<SocketAddr>,
    hotpocket_addrs: HotPocketAddrs,
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
        let statuses = crate::hotpocket::statuses::Statuses::default();
        let (session, session_task) =
            session::spawn(settings.session, registry.clone(), statuses.clone(), shutdown.clone());
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
        let mut hotpocket_addrs = HotPocketAddrs::default();
        let mut background = Vec::new();
        if let Some(hp) = settings.hotpocket {
            let tls = match hp.tls_port {
                Some(_) => Some(crate::hotpocket::tls::acceptor(&hp.cert, &hp.key_file)?),
                None => None,
            };
            let view = Arc::new(NodeView::new(&hp.consensusd_socket));
            background.push(tokio::spawn(crate::hotpocket::events::announce(
                registry.clone(),
                view.clone(),
                statuses.watch_ledgers(),
                shutdown.clone(),
            )));
            background.push(tokio::spawn(crate::hotpocket::events::health(
                registry.clone(),
                view.clone(),
                shutdown.clone(),
            )));
            background.push(tokio::spawn(crate::hotpocket::events::unl_changes(
                registry.clone(),
                view.clone(),
                shutdown.clone(),
            )));
            let hp_shared = Arc::new(HotPocketShared {
                contract_id: hp.contract_id,
                contract_version: hp.contract_version,
                key: hp.node_key,
                unl: hp.unl,
                peers: hp.peers,
                view: view.clone(),
                tls,
                seed: shared.clone(),
                statuses: statuses.clone(),
                execd: hp_proto::v1::exec_client::ExecClient::new(hp_daemon::ipc::channel(&hp.execd_socket))
                    .max_decoding_message_size(hp_proto::MAX_LOCAL_MESSAGE),
            });
            for (port, is_tls) in [(hp.tls_port, true), (hp.plain_port, false)] {
                let Some(port) = port else { continue };
                for listener in server::bind(settings.ip, port).await? {
                    if let Ok(addr) = listener.local_addr() {
                        if is_tls { &mut hotpocket_addrs.tls } else { &mut hotpocket_addrs.plain }.push(addr);
                    }
                    tasks.spawn(crate::hotpocket::accept_loop(
                        listener,
                        is_tls,
                        hp_shared.clone(),
                        admission.clone(),
                        tasks.clone(),
                        shutdown.clone(),
                    ));
                }
            }
            tracing::info!(tls = ?hotpocket_addrs.tls, plain = ?hotpocket_addrs.plain, "userd listening for HotPocket 0.6 users");
        }
        let status = StatusService { registry, session, listening: true, metrics };
        background.push(session_task);
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
        Ok(Self {
            addrs,
            hotpocket_addrs,
            shared,
            status,
            tasks,
            background,
            shutdown,
            grace: settings.shutdown_grace,
            socket,
        })
    }

    /// The bound user port addresses (empty with no `pubport`).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The bound HotPocket 0.6 port addresses.
    pub fn hotpocket_addrs(&self) -> &HotPocketAddrs {
        &self.hotpocket_addrs
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
