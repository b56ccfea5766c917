//! hp-client talks to a Hot Pocket node as a user: it opens the websocket, performs the
//! handshake of docs/user-protocol.md, sends inputs and receives the contract's outputs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hp_client::ClientError> {
//! let key = hp_client::generate_key();
//! let mut client = hp_client::Client::connect("ws://localhost:8080/", &key).await?;
//! client.send(b"hello").await?;
//! while let Some(output) = client.recv().await {
//!     println!("{output:?}");
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`Client`]: connect + handshake, [`Client::send`], [`Client::recv`], [`Client::split`]
//!   into a [`Sender`] and a [`Receiver`] for concurrent use.
//! - [`Output`]: what the node sends after the handshake (outputs and error frames).
//! - [`key_from_hex`], [`generate_key`]: user keys.
//! - [`hotpocket`]: the same for the HotPocket 0.6 protocol (signed inputs, verified outputs).
//!
//! The protocol has no "accepted" frame: a good helo is followed by silence. To tell refusal
//! from success without waiting blindly, [`Client::connect`] sends a websocket ping right after
//! the helo: the node reads frames in order, so it has judged the helo before it answers the
//! ping. A refusal arrives as an error frame first; a pong means the node accepted the helo.

pub mod hotpocket;

use bytes::Bytes;
use ed25519_dalek::{Signer, SigningKey};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::VecDeque;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use ed25519_dalek::SigningKey as UserKey;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The largest frame accepted from a node: one round's output for one user.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024 * 1024;

/// The payload of the ping that follows the helo.
const HELO_PING: &[u8] = b"hp-helo";

/// Something the node sent after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// One output of the contract for this user: a binary frame, byte for byte.
    Data(Bytes),
    /// An error frame (`{"type":"error","reason":...}`): e.g. an input over a limit.
    Error(String),
}

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("the node refused the handshake: {0}")]
    Refused(String),
    #[error("the node does not speak the Hot Pocket user protocol: {0}")]
    Protocol(String),
    #[error("the connection was closed by the node{}", .0.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Closed(Option<String>),
    #[error("connection failed: {0}")]
    Connection(#[from] WsError),
    #[error("key {0}")]
    Key(String),
}

fn ws_config() -> WebSocketConfig {
    // tungstenite zero-fills a whole read buffer before each read: its default 128 KiB costs
    // more than reading a small message does. Large messages still arrive whole.
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .max_message_size(Some(MAX_OUTPUT_BYTES))
        .max_frame_size(Some(MAX_OUTPUT_BYTES))
}

/// A TCP connection to the `ws://host:port` of `url`, bound to the local address `local`.
pub async fn connect_tcp_from(url: &str, local: std::net::IpAddr) -> Result<TcpStream, String> {
    let rest =
        url.strip_prefix("ws://").ok_or_else(|| "only ws:// URLs can be dialled from a chosen address".to_string())?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let mut last = format!("{authority} resolves to no address of the same family as {local}");
    for addr in tokio::net::lookup_host(authority).await.map_err(|e| e.to_string())? {
        if addr.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
            .map_err(|e| e.to_string())?;
        socket.bind(std::net::SocketAddr::new(local, 0)).map_err(|e| format!("cannot bind {local}: {e}"))?;
        match socket.connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}

/// A connected, authenticated user.
pub struct Client {
    ws: Ws,
    public_key: [u8; 32],
    /// Outputs that arrived while the handshake was being confirmed.
    early: VecDeque<Output>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({})", hex::encode(self.public_key))
    }
}

impl Client {
    /// Connects to `url` (`ws://host:port/`) and performs the handshake with `key`. A refused
    /// handshake is [`ClientError::Refused`] with the node's reason. No timeout of its own:
    /// wrap it in `tokio::time::timeout` as needed.
    pub async fn connect(url: &str, key: &SigningKey) -> Result<Self, ClientError> {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true)
            .await
            .map_err(|e| ClientError::Connect { url: url.to_string(), reason: describe(&e) })?;
        Self::handshake(ws, key).await
    }

    /// Like [`Client::connect`], but the connection leaves from the local address `local`
    /// (for a host with several addresses; tests use 127.0.0.x to act as different hosts).
    /// `ws://` only.
    pub async fn connect_from(url: &str, local: std::net::IpAddr, key: &SigningKey) -> Result<Self, ClientError> {
        let failed = |reason: String| ClientError::Connect { url: url.to_string(), reason };
        let stream = connect_tcp_from(url, local).await.map_err(failed)?;
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(url, MaybeTlsStream::Plain(stream), Some(ws_config()))
                .await
                .map_err(|e| failed(describe(&e)))?;
        Self::handshake(ws, key).await
    }

    async fn handshake(mut ws: Ws, key: &SigningKey) -> Result<Self, ClientError> {
        let challenge = read_challenge(&mut ws).await?;
        let signature = key.sign(challenge.as_bytes());
        let helo = serde_json::json!({
            "type": "helo",
            "challenge": challenge,
            "pubkey": hex::encode(key.verifying_key().to_bytes()),
            "sig": hex::encode(signature.to_bytes()),
            "timestamp": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        });
        ws.send(Message::text(helo.to_string())).await?;
        ws.send(Message::Ping(Bytes::from_static(HELO_PING))).await?;
        let mut early = VecDeque::new();
        loop {
            let Some(message) = ws.next().await else {
                return Err(ClientError::Refused("the node closed the connection after the helo".into()));
            };
            match message? {
                Message::Pong(payload) if payload.as_ref() == HELO_PING => break,
                Message::Text(text) => match parse_error_frame(text.as_str()) {
                    Some(reason) => return Err(ClientError::Refused(reason)),
                    None => early.push_back(Output::Data(Bytes::from(text))),
                },
                Message::Binary(data) => early.push_back(Output::Data(data)),
                Message::Close(frame) => {
                    let reason = frame.map(|f| f.reason.to_string()).filter(|r| !r.is_empty());
                    return Err(ClientError::Refused(reason.unwrap_or_else(|| "connection closed".into())));
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
        Ok(Self { ws, public_key: key.verifying_key().to_bytes(), early })
    }

    /// This user's public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// Sends one input (one binary frame, byte for byte).
    pub async fn send(&mut self, input: &[u8]) -> Result<(), ClientError> {
        self.ws.send(Message::binary(Bytes::copy_from_slice(input))).await?;
        Ok(())
    }

    /// The next output or error frame; `None` once the connection has ended.
    pub async fn recv(&mut self) -> Option<Output> {
        self.next_output().await.ok().flatten()
    }

    /// Like [`Self::recv`], telling a clean close (`Ok(None)`) from a failure.
    pub async fn next_output(&mut self) -> Result<Option<Output>, ClientError> {
        if let Some(output) = self.early.pop_front() {
            return Ok(Some(output));
        }
        next_output(&mut self.ws).await
    }

    /// Closes the connection politely.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.ws.close(None).await?;
        while let Some(Ok(_)) = self.ws.next().await {}
        Ok(())
    }

    /// Splits the client so that one task can send while another receives.
    pub fn split(self) -> (Sender, Receiver) {
        let (sink, stream) = self.ws.split();
        (Sender(SenderKind::Seed(sink)), Receiver(ReceiverKind::Seed { stream, early: self.early }))
    }
}

/// Which protocol a user speaks to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dial {
    /// The seed protocol on `pubport` (docs/user-protocol.md).
    Seed,
    /// HotPocket 0.6 on `hpport_plain`: signed inputs, outputs checked against `trusted` (the
    /// node's UNL once it proved its key; unchecked when `None`).
    HotPocket { trusted: Option<Vec<[u8; 32]>>, max_ledger_offset: u64 },
}

/// Connects to `url` as `key` in protocol `dial` and returns the two halves.
pub async fn connect_split(url: &str, key: &SigningKey, dial: &Dial) -> Result<(Sender, Receiver), ClientError> {
    match dial {
        Dial::Seed => Ok(Client::connect(url, key).await?.split()),
        Dial::HotPocket { trusted, max_ledger_offset } => {
            let client = hotpocket::HpClient::connect(url, key, trusted.as_deref(), *max_ledger_offset).await?;
            let (tx, rx) = client.split();
            Ok((Sender(SenderKind::HotPocket(Box::new(tx))), Receiver(ReceiverKind::HotPocket(rx))))
        }
    }
}

/// The sending half of a connection, in either protocol.
pub struct Sender(SenderKind);

enum SenderKind {
    Seed(SplitSink<Ws, Message>),
    HotPocket(Box<hotpocket::HpSender>),
}

impl Sender {
    /// Sends one input: one binary frame, byte for byte, or a signed HotPocket input.
    pub async fn send(&mut self, input: &[u8]) -> Result<(), ClientError> {
        match &mut self.0 {
            SenderKind::Seed(sink) => sink.send(Message::binary(Bytes::copy_from_slice(input))).await?,
            SenderKind::HotPocket(hp) => hp.send(input).await?,
        }
        Ok(())
    }

    /// Sends a close frame.
    pub async fn close(&mut self) -> Result<(), ClientError> {
        match &mut self.0 {
            SenderKind::Seed(sink) => sink.send(Message::Close(None)).await?,
            SenderKind::HotPocket(hp) => hp.close().await?,
        }
        Ok(())
    }
}

/// The receiving half of a connection, in either protocol.
pub struct Receiver(ReceiverKind);

enum ReceiverKind {
    Seed { stream: SplitStream<Ws>, early: VecDeque<Output> },
    HotPocket(hotpocket::HpReceiver),
}

impl Receiver {
    /// The next output or error frame; `None` once the connection has ended.
    pub async fn recv(&mut self) -> Option<Output> {
        self.next_output().await.ok().flatten()
    }

    /// Like [`Self::recv`], telling a clean close (`Ok(None)`) from a failure.
    pub async fn next_output(&mut self) -> Result<Option<Output>, ClientError> {
        match &mut self.0 {
            ReceiverKind::Seed { stream, early } => {
                if let Some(output) = early.pop_front() {
                    return Ok(Some(output));
                }
                next_output(stream).await
            }
            ReceiverKind::HotPocket(hp) => Ok(hp.recv().await),
        }
    }
}

async fn next_output<S>(stream: &mut S) -> Result<Option<Output>, ClientError>
where
    S: futures::Stream<Item = Result<Message, WsError>> + Unpin,
{
    while let Some(message) = stream.next().await {
        match message {
            Ok(Message::Binary(data)) => return Ok(Some(Output::Data(data))),
            Ok(Message::Text(text)) => {
                return Ok(Some(match parse_error_frame(text.as_str()) {
                    Some(reason) => Output::Error(reason),
                    None => Output::Data(Bytes::from(text)),
                }));
            }
            Ok(Message::Close(_)) => return Ok(None),
            Ok(_) => {}
            Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// Reads the first frame, which must be the challenge (or an error frame).
async fn read_challenge(ws: &mut Ws) -> Result<String, ClientError> {
    loop {
        let Some(message) = ws.next().await else {
            return Err(ClientError::Protocol("the connection closed before the challenge".into()));
        };
        let text = match message? {
            Message::Text(text) => text,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            Message::Binary(_) => {
                return Err(ClientError::Protocol("the first frame is binary, not the challenge".into()));
            }
            Message::Close(_) => return Err(ClientError::Closed(None)),
        };
        if let Some(reason) = parse_error_frame(text.as_str()) {
            return Err(ClientError::Refused(reason));
        }
        let value: Value = serde_json::from_str(text.as_str())
            .map_err(|_| ClientError::Protocol("the first frame is not the JSON challenge".into()))?;
        if value.get("type").and_then(Value::as_str) != Some("public_challenge") {
            return Err(ClientError::Protocol("the first frame is not a public_challenge".into()));
        }
        let challenge = value.get("challenge").and_then(Value::as_str).unwrap_or_default();
        if challenge.len() != 32 || !challenge.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ClientError::Protocol("the challenge is not 32 hex characters".into()));
        }
        return Ok(challenge.to_string());
    }
}

/// The reason of an error frame, if `text` is one.
fn parse_error_frame(text: &str) -> Option<String> {
    let value: Value = serde_json::from_str(text).ok()?;
    if value.get("type")?.as_str()? != "error" {
        return None;
    }
    Some(value.get("reason").and_then(Value::as_str).unwrap_or("unspecified error").to_string())
}

/// A short, human description of a connection failure.
fn describe(error: &WsError) -> String {
    match error {
        WsError::Io(e) => e.to_string(),
        WsError::Http(response) => format!("HTTP {}", response.status()),
        other => other.to_string(),
    }
}

/// A fresh random user key.
pub fn generate_key() -> SigningKey {
    hp_cfg::NodeKey::generate().signing_key().clone()
}

/// A user key from its hex text: a 64-hex-character seed, or libsodium's 128-hex-character
/// secret key (seed ‖ public key, both halves checked). Surrounding whitespace is ignored.
pub fn key_from_hex(text: &str) -> Result<SigningKey, ClientError> {
    let text = text.trim();
    match text.len() {
        64 => {
            let seed = hp_cfg::keys::decode_hex_exact::<32>(text).map_err(|e| ClientError::Key(e.to_string()))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        128 => {
            let key = hp_cfg::NodeKey::from_secret_hex(text).map_err(|e| ClientError::Key(e.to_string()))?;
            Ok(key.signing_key().clone())
        }
        n => Err(ClientError::Key(format!(
            "must be a 64-hex-character seed or a 128-hex-character secret key, found {n} characters"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn key_forms_agree() {
        let key = generate_key();
        let seed = hex::encode(key.to_bytes());
        let secret = format!("{seed}{}", hex::encode(key.verifying_key().to_bytes()));
        assert_eq!(key_from_hex(&seed).unwrap().to_bytes(), key.to_bytes());
        assert_eq!(key_from_hex(&format!("{secret}\n")).unwrap().to_bytes(), key.to_bytes());
        assert!(key_from_hex("abc").is_err());
        assert!(key_from_hex(&"zz".repeat(32)).is_err());
        let other = generate_key();
        let forged = format!("{seed}{}", hex::encode(other.verifying_key().to_bytes()));
        assert!(key_from_hex(&forged).is_err());
    }

    #[test]
    fn error_frames_are_recognised() {
        assert_eq!(parse_error_frame(r#"{"hotpocket":0.1,"type":"error","reason":"x"}"#), Some("x".into()));
        assert_eq!(parse_error_frame(r#"{"type":"other"}"#), None);
        assert_eq!(parse_error_frame("plain"), None);
    }
}
