//! The harness: a userd in-process on a free port with a fake consensusd on a temp socket, and
//! clients that speak the protocol at the frame level.

use ed25519_dalek::{Signer, SigningKey};
use futures::{SinkExt, StreamExt};
use hp_userd::connection::ConnSettings;
use hp_userd::session::SessionSettings;
use hp_userd::testkit::FakeConsensus;
use hp_userd::{Settings, Userd};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any single expected event may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub const PUBMAXSIZE: u64 = 64 * 1024;

/// A userd with its fake consensusd. Stops (cancels its token) when dropped.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub fake: FakeConsensus,
    pub userd: Option<Userd>,
    pub shutdown: CancellationToken,
    pub addr: SocketAddr,
}

pub fn settings(dir: &std::path::Path) -> Settings {
    let run = dir.join("run");
    Settings {
        ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        pubport: Some(0),
        admission: hp_userd::admission::AdmissionLimits::default(),
        pubmaxsize: PUBMAXSIZE,
        pubmaxcpm: 0,
        connection: ConnSettings::new(PUBMAXSIZE, Duration::from_secs(5)),
        session: SessionSettings {
            socket: run.join("consensusd.sock"),
            connect_timeout: Duration::from_secs(2),
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
        },
        status_socket: Some(run.join("userd.sock")),
        shutdown_grace: Duration::from_secs(2),
        hotpocket: None,
    }
}

impl Node {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with test settings edited by `edit`, and waits for the session to be up.
    pub async fn start_with(edit: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = settings(dir.path());
        edit(&mut settings);
        let fake = FakeConsensus::start(&settings.session.socket).unwrap();
        let shutdown = CancellationToken::new();
        let userd = Userd::start(settings, shutdown.clone()).await.unwrap();
        let addr = userd.local_addrs().first().copied().unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let node = Self { dir, fake, userd: Some(userd), shutdown, addr };
        eventually("the session with consensusd opens", || node.userd().session().is_up()).await;
        node
    }

    pub fn userd(&self) -> &Userd {
        self.userd.as_ref().unwrap()
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// An authenticated user through the client library.
    pub async fn user(&self) -> (SigningKey, hp_client::Client) {
        let key = hp_client::generate_key();
        let client = self.user_with(&key).await;
        (key, client)
    }

    pub async fn user_with(&self, key: &SigningKey) -> hp_client::Client {
        let client = within(hp_client::Client::connect(&self.url(), key)).await.unwrap();
        let user = hp_cfg::PublicKeyHex(key.verifying_key().to_bytes());
        eventually("the user is registered", || self.userd().registry().contains(&user)).await;
        client
    }

    /// A websocket that has done the upgrade and nothing else.
    pub async fn raw(&self) -> Ws {
        within(tokio_tungstenite::connect_async(self.url())).await.unwrap().0
    }

    /// A TCP connection from the local address `from` (127.0.0.x acts as another host).
    pub async fn tcp_from(&self, from: Ipv4Addr) -> TcpStream {
        within(hp_client::connect_tcp_from(&self.url(), IpAddr::V4(from))).await.unwrap()
    }

    /// Like [`Node::raw`], from the local address `from`.
    pub async fn raw_from(&self, from: Ipv4Addr) -> Ws {
        let tcp = self.tcp_from(from).await;
        within(tokio_tungstenite::client_async(self.url(), tokio_tungstenite::MaybeTlsStream::Plain(tcp)))
            .await
            .unwrap()
            .0
    }

    /// An authenticated user connected from the local address `from`.
    pub async fn user_from(&self, from: Ipv4Addr) -> (SigningKey, hp_client::Client) {
        let key = hp_client::generate_key();
        let client = within(hp_client::Client::connect_from(&self.url(), IpAddr::V4(from), &key)).await.unwrap();
        let user = hp_cfg::PublicKeyHex(key.verifying_key().to_bytes());
        eventually("the user is registered", || self.userd().registry().contains(&user)).await;
        (key, client)
    }

    /// Stops userd and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(userd) = self.userd.take() {
            within(userd.wait()).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Awaits `future`, failing the test after [`PATIENCE`].
pub async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future).await.expect("timed out")
}

/// Polls `condition` every 10 ms until it holds, failing the test after [`PATIENCE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next frame that is not a ping or pong.
pub async fn next_frame(ws: &mut Ws) -> Option<Message> {
    loop {
        match within(ws.next()).await {
            None | Some(Err(_)) => return None,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(message)) => return Some(message),
        }
    }
}

/// Reads the challenge frame and returns the challenge text.
pub async fn read_challenge(ws: &mut Ws) -> String {
    let Some(Message::Text(text)) = next_frame(ws).await else { panic!("expected the challenge frame") };
    let value: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
    assert_eq!(value["type"], "public_challenge");
    let challenge = value["challenge"].as_str().unwrap().to_string();
    assert_eq!(text.as_str(), format!(r#"{{"hotpocket":0.1,"type":"public_challenge","challenge":"{challenge}"}}"#));
    challenge
}

/// A correct helo for `challenge`.
pub fn helo(key: &SigningKey, challenge: &str) -> String {
    helo_with(
        challenge,
        &hex::encode(key.verifying_key().to_bytes()),
        &hex::encode(key.sign(challenge.as_bytes()).to_bytes()),
    )
}

pub fn helo_with(challenge: &str, pubkey: &str, sig: &str) -> String {
    format!(r#"{{"type":"helo","challenge":"{challenge}","pubkey":"{pubkey}","sig":"{sig}","timestamp":1700000000}}"#)
}

/// Expects an error frame and then a close frame; returns the reason.
pub async fn expect_refusal(ws: &mut Ws) -> String {
    let Some(Message::Text(text)) = next_frame(ws).await else { panic!("expected an error frame") };
    let value: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
    let reason = value["reason"].as_str().unwrap().to_string();
    assert_eq!(text.as_str(), hp_userd::frame::error_frame(&reason), "error frame is byte-exact");
    match next_frame(ws).await {
        Some(Message::Close(_)) | None => {}
        other => panic!("expected a close frame after the error, got {other:?}"),
    }
    reason
}

/// The next thing a library client receives, within [`PATIENCE`].
pub async fn recv(client: &mut hp_client::Client) -> Option<hp_client::Output> {
    within(client.recv()).await
}

pub fn key_bytes(key: &SigningKey) -> [u8; 32] {
    key.verifying_key().to_bytes()
}

/// Consumes a raw websocket until the server ends it.
#[allow(dead_code)]
pub async fn drain(ws: &mut Ws) {
    while let Some(Ok(_)) = within(ws.next()).await {}
}

#[allow(dead_code)]
pub async fn send_text(ws: &mut Ws, text: String) {
    within(ws.send(Message::text(text))).await.unwrap();
}
