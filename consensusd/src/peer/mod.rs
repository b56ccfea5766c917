//! The peer network: TCP connections to the other UNL nodes, mutually authenticated before
//! anything else ([`handshake`]), carrying length-bounded protobuf frames ([`codec`]).
//!
//! Every node dials every address in `peers` and accepts connections on `peerport`; a pair of
//! nodes may thus share two connections, and a message to a peer goes over the newest live one.
//! Frames that arrive are handed to the node loop as [`PeerEvent`]s; what they mean is decided
//! there. Sending never blocks the node: each connection has two bounded queues, and a frame
//! for a peer that cannot keep up is dropped. Consensus messages (proposals, votes, results,
//! status) have a queue of their own that the writer always empties first, so on a slow link
//! they never wait behind bulk (input gossip, catch-up, state copies). The node learns which peers lost frames that way
//! ([`PeerNet::take_lossy`]) and sends them again what matters, as it does to a peer that
//! (re)connects: on a live connection everything else arrives, in order.

pub mod codec;
pub mod handshake;

use crate::wire::{self, PeerMessage};
use bytes::Bytes;
use codec::{FrameError, MAX_FRAME, read_frame};
use ed25519_dalek::SigningKey;
use ed25519_dalek::VerifyingKey;
use hp_proto::v1::peer::Frame;
use prost::Message;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Frames waiting to go out on one connection, per lane, before new ones are dropped.
const SEND_QUEUE: usize = 8192;
/// Bytes the writer gathers before handing them to the socket: small enough that a consensus
/// message does not queue behind much bulk on a slow link.
const WRITE_BUFFER: usize = 64 * 1024;

/// Which of a connection's queues a frame goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lane {
    Consensus,
    Bulk,
}

impl Lane {
    fn of(frame: &Frame) -> Self {
        use hp_proto::v1::peer::frame::Kind;
        match frame.kind {
            Some(Kind::Proposal(_) | Kind::Vote(_) | Kind::Result(_) | Kind::Status(_)) => Lane::Consensus,
            _ => Lane::Bulk,
        }
    }
}
/// Connections still in their handshake at once; more wait, so a flood of strangers cannot
/// exhaust the node.
const MAX_HANDSHAKES: usize = 64;

/// What the network tells the node loop.
#[derive(Debug)]
pub enum PeerEvent {
    Connected { validator: usize },
    Disconnected { validator: usize },
    Message { validator: usize, message: PeerMessage },
}

/// Counters an operator can read to see peers misbehaving.
#[derive(Default, Debug)]
pub struct PeerStats {
    pub refused_handshakes: AtomicU64,
    pub bad_frames: AtomicU64,
    pub dropped_sends: AtomicU64,
}

struct Connection {
    id: u64,
    consensus: mpsc::Sender<Bytes>,
    bulk: mpsc::Sender<Bytes>,
    /// A frame to this connection was dropped since the node last asked.
    lossy: Arc<std::sync::atomic::AtomicBool>,
}

struct Inner {
    key: SigningKey,
    unl: Vec<[u8; 32]>,
    unl_keys: Vec<VerifyingKey>,
    conns: Mutex<HashMap<usize, Vec<Connection>>>,
    next_id: AtomicU64,
    events: mpsc::Sender<PeerEvent>,
    stats: PeerStats,
    handshakes: Semaphore,
    shutdown: CancellationToken,
}

/// A handle to the running peer network. Cheap to clone.
#[derive(Clone)]
pub struct PeerNet {
    inner: Arc<Inner>,
}

/// Where the network listens and whom it dials.
pub struct PeerConfig {
    pub key: SigningKey,
    pub unl: Vec<[u8; 32]>,
    pub listen: Vec<SocketAddr>,
    pub peers: Vec<String>,
}

impl PeerNet {
    /// Binds the peer port(s) and starts dialing. Fails only if no listen address could be bound.
    pub async fn start(
        config: PeerConfig,
        events: mpsc::Sender<PeerEvent>,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let unl_keys = config
            .unl
            .iter()
            .map(|k| VerifyingKey::from_bytes(k).map_err(|_| std::io::Error::other("UNL key is not a public key")))
            .collect::<Result<Vec<_>, _>>()?;
        let inner = Arc::new(Inner {
            unl_keys,
            key: config.key,
            unl: config.unl,
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            events,
            stats: PeerStats::default(),
            handshakes: Semaphore::new(MAX_HANDSHAKES),
            shutdown,
        });
        let net = Self { inner };
        let mut bound = 0;
        let mut last_err = None;
        for addr in &config.listen {
            match TcpListener::bind(addr).await {
                Ok(listener) => {
                    info!(%addr, "peer port listening");
                    bound += 1;
                    tokio::spawn(net.clone().accept_loop(listener));
                }
                Err(e) => {
                    // IPv6 may be missing on the host; one bound address is enough.
                    warn!(%addr, error = %e, "cannot bind peer port");
                    last_err = Some(e);
                }
            }
        }
        if bound == 0 && !config.listen.is_empty() {
            return Err(last_err.unwrap_or_else(|| std::io::Error::other("no peer address")));
        }
        for peer in config.peers {
            tokio::spawn(net.clone().dial_loop(peer));
        }
        Ok(net)
    }

    pub fn stats(&self) -> &PeerStats {
        &self.inner.stats
    }

    /// Whether `validator` has at least one live connection.
    pub fn is_connected(&self, validator: usize) -> bool {
        let conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.get(&validator).is_some_and(|list| !list.is_empty())
    }

    /// UNL indexes of peers with at least one live connection.
    pub fn connected(&self) -> Vec<usize> {
        let conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<usize> = conns.iter().filter(|(_, c)| !c.is_empty()).map(|(k, _)| *k).collect();
        v.sort_unstable();
        v
    }

    fn encode(frame: &Frame) -> Bytes {
        let len = frame.encoded_len();
        let mut buf = Vec::with_capacity(len + 4);
        buf.extend_from_slice(&(len as u32).to_be_bytes());
        // Encoding into a Vec with enough capacity cannot fail.
        let _ = frame.encode(&mut buf);
        Bytes::from(buf)
    }

    /// Sends a frame to every connected peer.
    pub fn broadcast(&self, frame: &Frame) {
        let (lane, bytes) = (Lane::of(frame), Self::encode(frame));
        let conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
        for list in conns.values() {
            if let Some(conn) = list.last() {
                self.push(conn, lane, bytes.clone());
            }
        }
    }

    /// Sends a frame to one peer, if connected.
    pub fn send(&self, validator: usize, frame: &Frame) {
        let (lane, bytes) = (Lane::of(frame), Self::encode(frame));
        let conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(conn) = conns.get(&validator).and_then(|l| l.last()) {
            self.push(conn, lane, bytes);
        }
    }

    fn push(&self, conn: &Connection, lane: Lane, bytes: Bytes) {
        let queue = match lane {
            Lane::Consensus => &conn.consensus,
            Lane::Bulk => &conn.bulk,
        };
        if queue.try_send(bytes).is_err() {
            self.inner.stats.dropped_sends.fetch_add(1, Ordering::Relaxed);
            conn.lossy.store(true, Ordering::Relaxed);
        }
    }

    /// Peers that lost frames because their queue was full, and whose queue has drained to
    /// half since: they can take what they missed again. Each is reported once per loss.
    pub fn take_lossy(&self) -> Vec<usize> {
        let conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
        let mut lossy: Vec<usize> = conns
            .iter()
            .filter_map(|(validator, list)| list.last().map(|conn| (*validator, conn)))
            .filter(|(_, conn)| {
                conn.consensus.capacity() >= SEND_QUEUE / 2
                    && conn.bulk.capacity() >= SEND_QUEUE / 2
                    && conn.lossy.swap(false, Ordering::Relaxed)
            })
            .map(|(validator, _)| validator)
            .collect();
        lossy.sort_unstable();
        lossy
    }

    async fn accept_loop(self, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, addr)) => {
                    let net = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = net.serve(stream, Direction::Inbound).await {
                            debug!(%addr, error = %e, "inbound peer connection ended");
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, "peer accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn dial_loop(self, peer: String) {
        let mut backoff = Duration::from_millis(50);
        loop {
            if self.inner.shutdown.is_cancelled() {
                return;
            }
            let attempt = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(peer.as_str())).await;
            match attempt {
                Ok(Ok(stream)) => {
                    backoff = Duration::from_millis(50);
                    if let Err(e) = self.serve(stream, Direction::Outbound).await {
                        debug!(%peer, error = %e, "outbound peer connection ended");
                    }
                }
                Ok(Err(e)) => debug!(%peer, error = %e, "cannot reach peer"),
                Err(_) => debug!(%peer, "peer connect timed out"),
            }
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// Authenticates a connection, then pumps frames both ways until it closes.
    async fn serve(&self, mut stream: TcpStream, direction: Direction) -> Result<(), ConnError> {
        let _ = stream.set_nodelay(true);
        let validator = {
            // Strangers can only hold inbound handshake slots, and a full house refuses at once
            // rather than queueing, so this node's own dials to its peers never wait behind them.
            let _permit = match direction {
                Direction::Outbound => None,
                Direction::Inbound => match self.inner.handshakes.try_acquire() {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        self.inner.stats.refused_handshakes.fetch_add(1, Ordering::Relaxed);
                        return Err(ConnError::Busy);
                    }
                },
            };
            match handshake::authenticate(&mut stream, &self.inner.key, &self.inner.unl).await {
                Ok(v) => v,
                Err(e) => {
                    let refused_total = self.inner.stats.refused_handshakes.fetch_add(1, Ordering::Relaxed) + 1;
                    warn!(error = %e, refused_total, "peer refused");
                    return Err(ConnError::Handshake(e));
                }
            }
        };
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (consensus, mut consensus_rx) = mpsc::channel::<Bytes>(SEND_QUEUE);
        let (bulk, mut bulk_rx) = mpsc::channel::<Bytes>(SEND_QUEUE);
        {
            let mut conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
            conns.entry(validator).or_default().push(Connection { id, consensus, bulk, lossy: Default::default() });
        }
        info!(peer = validator, key = %hex::encode(self.inner.unl[validator]), "peer connected");
        let _ = self.inner.events.send(PeerEvent::Connected { validator }).await;

        let (mut reader, writer) = stream.into_split();
        let writer_task = tokio::spawn(async move {
            let mut writer = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, writer);
            loop {
                let first = tokio::select! {
                    biased;
                    Some(bytes) = consensus_rx.recv() => bytes,
                    Some(bytes) = bulk_rx.recv() => bytes,
                    else => return,
                };
                if writer.write_all(&first).await.is_err() {
                    return;
                }
                // Whatever else is ready, consensus first, up to one buffer's worth; then out.
                while writer.buffer().len() < WRITE_BUFFER / 2 {
                    let Ok(more) = consensus_rx.try_recv().or_else(|_| bulk_rx.try_recv()) else {
                        break;
                    };
                    if writer.write_all(&more).await.is_err() {
                        return;
                    }
                }
                if writer.flush().await.is_err() {
                    return;
                }
            }
        });

        let result = loop {
            let frame = tokio::select! {
                _ = self.inner.shutdown.cancelled() => break Ok(()),
                f = read_frame(&mut reader, MAX_FRAME) => f,
            };
            let bytes = match frame {
                Ok(b) => b,
                Err(e) => break Err(ConnError::Frame(e)),
            };
            let decoded = Frame::decode(bytes.as_slice())
                .map_err(|e| e.to_string())
                .and_then(|frame| wire::decode(frame, &self.inner.unl_keys).map_err(|e| e.to_string()));
            match decoded {
                Ok(message) => {
                    if self.inner.events.send(PeerEvent::Message { validator, message }).await.is_err() {
                        break Ok(());
                    }
                }
                Err(error) => {
                    let bad_frames_total = self.inner.stats.bad_frames.fetch_add(1, Ordering::Relaxed) + 1;
                    warn!(peer = validator, %error, bad_frames_total, "bad peer frame; dropping the connection");
                    break Err(ConnError::Decode);
                }
            }
        };
        writer_task.abort();
        let now_empty = {
            let mut conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
            let list = conns.entry(validator).or_default();
            list.retain(|c| c.id != id);
            list.is_empty()
        };
        if now_empty {
            info!(peer = validator, "peer disconnected");
            let _ = self.inner.events.send(PeerEvent::Disconnected { validator }).await;
        }
        result
    }

    /// Counts a frame that decoded but broke the rules (bad signature, wrong sender...).
    pub fn count_bad_frame(&self) {
        self.inner.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
    }
}

/// Who opened a connection.
#[derive(Clone, Copy, Debug)]
enum Direction {
    Inbound,
    Outbound,
}

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("too many handshakes in progress")]
    Busy,
    #[error("{0}")]
    Handshake(handshake::HandshakeError),
    #[error("{0}")]
    Frame(FrameError),
    #[error("bad frame")]
    Decode,
}
