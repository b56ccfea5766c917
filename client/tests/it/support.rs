//! An in-process node: hp-userd on a free port with its fake consensusd.

use hp_userd::connection::ConnSettings;
use hp_userd::session::SessionSettings;
use hp_userd::testkit::FakeConsensus;
use hp_userd::{Settings, Userd};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct Node {
    pub _dir: tempfile::TempDir,
    pub fake: FakeConsensus,
    pub _userd: Userd,
    pub shutdown: CancellationToken,
    pub addr: SocketAddr,
}

impl Node {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let settings = Settings {
            ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            pubport: Some(0),
            admission: hp_userd::admission::AdmissionLimits::default(),
            pubmaxsize: 64 * 1024,
            pubmaxcpm: 0,
            connection: ConnSettings::new(64 * 1024, Duration::from_secs(5)),
            session: SessionSettings {
                socket: run.join("consensusd.sock"),
                connect_timeout: Duration::from_secs(2),
                backoff_min: Duration::from_millis(20),
                backoff_max: Duration::from_millis(200),
            },
            status_socket: None,
            shutdown_grace: Duration::from_secs(1),
            hotpocket: None,
        };
        let fake = FakeConsensus::start(&settings.session.socket).unwrap();
        let shutdown = CancellationToken::new();
        let userd = Userd::start(settings, shutdown.clone()).await.unwrap();
        let addr = userd.local_addrs()[0];
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !userd.session().is_up() {
            assert!(tokio::time::Instant::now() < deadline, "the session never opened");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Self { _dir: dir, fake, _userd: userd, shutdown, addr }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A local port with nothing listening on it.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
