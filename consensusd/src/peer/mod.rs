//! The peer network: TCP connections to the other UNL nodes, mutually authenticated and
//! encrypted before anything else (TLS 1.3 bound to the UNL keys, [`handshake`]), carrying
//! length-bounded protobuf frames ([`codec`]).
//!
//! Every node dials every address in `peers` and accepts connections on `peerport`; a pair of
//! nodes thus shares up to two links, one dialed by each side. Each link carries a heartbeat
//! every half second, and a message to a peer goes over a link known to be alive (the one in
//! use while it is heard from; else the oldest alive one), not simply the newest: a relay that
//! swallows one link cannot blackhole the pair, and a link silent for [`LINK_TIMEOUT`] is
//! closed, what it may have swallowed then going again over the other link. An inbound link replaces an older inbound link of the same peer, never this node's
//! own outbound one, so strangers and relays cannot make a node drop the link it dialed.
//! Frames that arrive are handed to the node loop as [`PeerEvent`]s; what they mean is decided
//! there. Sending never blocks the node: each connection has two queues, bounded in frames and
//! in bytes, and a frame for a peer that cannot keep up is dropped. Consensus messages (proposals, votes, results,
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
use handshake::PeerTls;
use hp_consensus::NetworkId;
use hp_ledger::Epochs;
use hp_proto::v1::peer::Frame;
use prost::Message;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::io::InspectReader;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Frames waiting to go out on one connection, per lane, before new ones are dropped.
const SEND_QUEUE: usize = 8192;
/// Bytes waiting to go out on one connection, per lane, before new frames are dropped: room for
/// one frame of the largest size and then some, so a slow or stalled peer holds a bounded amount
/// of this node's memory whatever the frames' sizes. A frame into an empty lane always fits.
const SEND_QUEUE_BYTES: usize = MAX_FRAME + 32 * 1024 * 1024;
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
/// Inbound connections still in their handshake at once; more are closed at once, so a flood of
/// strangers cannot exhaust the node.
const MAX_HANDSHAKES: usize = 64;
/// Of those, from one source address, so one host cannot hold them all.
const MAX_HANDSHAKES_PER_IP: usize = 8;
/// How often each side of a link says it is alive when it has nothing else to say.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// A link last heard from longer ago than this is not used while the peer has a fresher one:
/// six heartbeats missed.
const ALIVE: Duration = Duration::from_secs(3);
/// A link silent this long is closed (the peer's other link, or a new dial, takes over). Long
/// enough for TCP's retransmission backoff on a starved, lossy link, which can stall a live
/// connection for several seconds.
pub const LINK_TIMEOUT: Duration = Duration::from_secs(20);

/// What the network tells the node loop.
#[derive(Debug)]
pub enum PeerEvent {
    Connected {
        validator: usize,
    },
    Disconnected {
        validator: usize,
    },
    /// `epoch`: the first ledger of the epoch whose members a consensus message was checked
    /// against ([`wire::epoch_of`]); 0 for other messages. `arrived`: when it was read off
    /// the link.
    Message {
        validator: usize,
        message: PeerMessage,
        epoch: u64,
        arrived: std::time::Instant,
    },
}

/// Counters an operator can read to see peers misbehaving.
#[derive(Default, Debug)]
pub struct PeerStats {
    pub refused_handshakes: AtomicU64,
    pub bad_frames: AtomicU64,
    pub dropped_sends: AtomicU64,
    /// Peers' requests for stored data dropped: over the peer's budget, or all workers busy.
    pub refused_requests: AtomicU64,
}

struct Connection {
    id: u64,
    direction: Direction,
    consensus: LaneQueue,
    bulk: LaneQueue,
    /// A frame to this connection was dropped since the node last asked.
    lossy: Arc<std::sync::atomic::AtomicBool>,
    /// When a byte last arrived on this link, in ms since the network started.
    heard: Arc<AtomicU64>,
    /// Closes this link (a newer inbound link of the same peer replaced it).
    close: CancellationToken,
}

/// One lane's queue of a connection: the frames, and how many bytes they hold.
struct LaneQueue {
    frames: mpsc::Sender<Bytes>,
    bytes: Arc<AtomicUsize>,
}

impl LaneQueue {
    fn new() -> (Self, LaneReceiver) {
        let (frames, rx) = mpsc::channel(SEND_QUEUE);
        let bytes = Arc::new(AtomicUsize::new(0));
        (Self { frames, bytes: bytes.clone() }, LaneReceiver { frames: rx, bytes })
    }

    /// Queues `frame` unless the lane is full by count or by bytes.
    fn push(&self, frame: Bytes) -> bool {
        let len = frame.len();
        let before = self.bytes.fetch_add(len, Ordering::Relaxed);
        if (before > 0 && before + len > SEND_QUEUE_BYTES) || self.frames.try_send(frame).is_err() {
            self.bytes.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Whether the lane has drained to half of both its limits.
    fn half_empty(&self) -> bool {
        self.frames.capacity() >= SEND_QUEUE / 2 && self.bytes.load(Ordering::Relaxed) <= SEND_QUEUE_BYTES / 2
    }
}

/// The writer's end of a [`LaneQueue`].
struct LaneReceiver {
    frames: mpsc::Receiver<Bytes>,
    bytes: Arc<AtomicUsize>,
}

impl LaneReceiver {
    fn taken(&self, frame: Bytes) -> Bytes {
        self.bytes.fetch_sub(frame.len(), Ordering::Relaxed);
        frame
    }

    async fn recv(&mut self) -> Option<Bytes> {
        let frame = self.frames.recv().await?;
        Some(self.taken(frame))
    }

    fn try_recv(&mut self) -> Option<Bytes> {
        let frame = self.frames.try_recv().ok()?;
        Some(self.taken(frame))
    }
}

/// The links to one peer, oldest first.
#[derive(Default)]
struct Links {
    list: Vec<Connection>,
    /// The link frames went over last, kept while it is heard from (0: none yet).
    last_used: u64,
}

impl Links {
    /// The link to send on: the one used last while it is known alive, else the oldest known
    /// alive, else the one heard from last. A switch alone does not make the node resend: on a
    /// starved link, resending all that matters at every switch collapses it; what a silent
    /// link swallowed is resent when it is closed ([`LINK_TIMEOUT`]).
    fn pick(&mut self, now_ms: u64) -> Option<&Connection> {
        let alive =
            |c: &&Connection| now_ms.saturating_sub(c.heard.load(Ordering::Relaxed)) <= ALIVE.as_millis() as u64;
        let last_used = self.last_used;
        let chosen = self
            .list
            .iter()
            .find(|c| c.id == last_used && alive(c))
            .or_else(|| self.list.iter().find(alive))
            .or_else(|| self.list.iter().max_by_key(|c| c.heard.load(Ordering::Relaxed)))?;
        self.last_used = chosen.id;
        Some(chosen)
    }
}

struct Inner {
    tls: PeerTls,
    /// Every key a link may have: the UNL, then the observers. A link's index is its place.
    unl: Vec<[u8; 32]>,
    /// Whose signatures count, by height: the node sets it as its chain hands over.
    epochs: RwLock<Arc<Epochs>>,
    /// The last height whose members the node knows for sure ([`wire::Signers`]).
    known_through: AtomicU64,
    /// Every signature a peer sends must be made in this network.
    network: NetworkId,
    conns: Mutex<HashMap<usize, Links>>,
    next_id: AtomicU64,
    events: mpsc::Sender<PeerEvent>,
    stats: PeerStats,
    handshakes: Semaphore,
    handshakes_per_ip: Mutex<HashMap<IpAddr, usize>>,
    epoch: Instant,
    shutdown: CancellationToken,
    /// Where peers' NPL messages go (never to the node loop); `None`: they are dropped.
    npl: Option<crate::npl::NplInbox>,
    /// The dial loop of each address this node dials, to stop one the contract removed.
    dials: Mutex<HashMap<String, CancellationToken>>,
}

impl Inner {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// A handle to the running peer network. Cheap to clone.
#[derive(Clone)]
pub struct PeerNet {
    inner: Arc<Inner>,
}

/// Where the network listens and whom it dials.
pub struct PeerConfig {
    pub key: SigningKey,
    /// The keys links are accepted from: the UNL, then observers (`hp_cfg::Config::peer_keys`).
    pub unl: Vec<[u8; 32]>,
    /// Which members sign which heights, as the chain stored so far says: only their messages
    /// are consensus; an observer's link carries requests and status.
    pub epochs: Epochs,
    /// The last height whose members are known for sure: the one after the last stored ledger.
    pub known_through: u64,
    /// [`hp_cfg::Config::network_id`]: peers of other networks are refused, and so is anything
    /// signed for another network.
    pub network_id: [u8; 32],
    pub listen: Vec<SocketAddr>,
    pub peers: Vec<String>,
    /// Where peers' NPL messages go ([`crate::npl`]); `None`: they are dropped.
    pub npl: Option<crate::npl::NplInbox>,
}

/// Most addresses a node dials at once, those of `peers` and those a contract added.
pub const MAX_DIALED: usize = 256;

impl PeerNet {
    /// Binds the peer port(s) and starts dialing. Fails only if no listen address could be bound.
    pub async fn start(
        config: PeerConfig,
        events: mpsc::Sender<PeerEvent>,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let tls = PeerTls::new(&config.key, &config.unl, config.network_id).map_err(std::io::Error::other)?;
        let inner = Arc::new(Inner {
            epochs: RwLock::new(Arc::new(config.epochs)),
            known_through: AtomicU64::new(config.known_through),
            network: NetworkId(config.network_id),
            tls,
            unl: config.unl,
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            events,
            stats: PeerStats::default(),
            handshakes: Semaphore::new(MAX_HANDSHAKES),
            handshakes_per_ip: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            shutdown,
            npl: config.npl,
            dials: Mutex::new(HashMap::new()),
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
        net.change_peers(&config.peers, &[]);
        Ok(net)
    }

    /// Starts dialing the addresses of `add` not dialed yet and stops dialing those of
    /// `remove` (a contract's `peer_changeset`; `peers` at start). A link to a removed address
    /// stays up until it breaks: it is still a UNL member's. Past [`MAX_DIALED`] addresses,
    /// more are refused with a warning.
    pub fn change_peers(&self, add: &[String], remove: &[String]) {
        let mut dials = self.inner.dials.lock().unwrap_or_else(|e| e.into_inner());
        for peer in remove {
            if let Some(stop) = dials.remove(peer) {
                info!(%peer, "no longer dialing peer");
                stop.cancel();
            }
        }
        for peer in add {
            if dials.contains_key(peer) {
                continue;
            }
            if dials.len() >= MAX_DIALED {
                warn!(%peer, limit = MAX_DIALED, "too many peer addresses; not dialing this one");
                continue;
            }
            let stop = self.inner.shutdown.child_token();
            dials.insert(peer.clone(), stop.clone());
            tokio::spawn(self.clone().dial_loop(peer.clone(), stop));
        }
    }

    /// The addresses being dialed, sorted.
    pub fn dialed(&self) -> Vec<String> {
        let dials = self.inner.dials.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<String> = dials.keys().cloned().collect();
        list.sort();
        list
    }

    /// Whether `key` is a validator's now (an observer's messages are not consensus).
    pub fn is_validator(&self, key: &[u8; 32]) -> bool {
        self.epochs().latest().members.contains(key)
    }

    /// Whose signatures count, by height.
    pub fn epochs(&self) -> Arc<Epochs> {
        self.inner.epochs.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The chain handed over: messages are checked against `epochs` from now on.
    pub fn set_epochs(&self, epochs: Epochs) {
        *self.inner.epochs.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(epochs);
    }

    /// The node stored ledger `height - 1`: the members of `height` are known for sure.
    pub fn set_known_through(&self, height: u64) {
        self.inner.known_through.store(height, Ordering::Relaxed);
    }

    /// The link index of the peer with key `key`, if it may link at all.
    pub fn link_of(&self, key: &[u8; 32]) -> Option<usize> {
        self.inner.unl.iter().position(|k| k == key)
    }

    /// The key of link `link`.
    pub fn key_of(&self, link: usize) -> Option<[u8; 32]> {
        self.inner.unl.get(link).copied()
    }

    pub fn stats(&self) -> &PeerStats {
        &self.inner.stats
    }

    /// Whether `validator` has at least one live connection.
    pub fn is_connected(&self, validator: usize) -> bool {
        let conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.get(&validator).is_some_and(|links| !links.list.is_empty())
    }

    /// UNL indexes of peers with at least one live connection.
    pub fn connected(&self) -> Vec<usize> {
        let conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<usize> = conns.iter().filter(|(_, l)| !l.list.is_empty()).map(|(k, _)| *k).collect();
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
        let now = self.inner.now_ms();
        let mut conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
        for links in conns.values_mut() {
            if let Some(conn) = links.pick(now) {
                self.push(conn, lane, bytes.clone());
            }
        }
    }

    /// Sends a frame to one peer, if connected.
    pub fn send(&self, validator: usize, frame: &Frame) {
        let (lane, bytes) = (Lane::of(frame), Self::encode(frame));
        let now = self.inner.now_ms();
        let mut conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(conn) = conns.get_mut(&validator).and_then(|links| links.pick(now)) {
            self.push(conn, lane, bytes);
        }
    }

    fn push(&self, conn: &Connection, lane: Lane, bytes: Bytes) {
        let queue = match lane {
            Lane::Consensus => &conn.consensus,
            Lane::Bulk => &conn.bulk,
        };
        if !queue.push(bytes) {
            self.inner.stats.dropped_sends.fetch_add(1, Ordering::Relaxed);
            conn.lossy.store(true, Ordering::Relaxed);
        }
    }

    /// Peers that lost frames because their queue was full, and whose queue has drained to
    /// half since: they can take what they missed again. Each is reported once per loss.
    pub fn take_lossy(&self) -> Vec<usize> {
        let now = self.inner.now_ms();
        let mut conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
        let mut lossy: Vec<usize> = conns
            .iter_mut()
            .filter_map(|(validator, links)| links.pick(now).map(|conn| (*validator, conn)))
            .filter(|(_, conn)| {
                conn.consensus.half_empty() && conn.bulk.half_empty() && conn.lossy.swap(false, Ordering::Relaxed)
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

    async fn dial_loop(self, peer: String, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(50);
        loop {
            if stop.is_cancelled() {
                return;
            }
            let attempt = tokio::select! {
                _ = stop.cancelled() => return,
                a = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(peer.as_str())) => a,
            };
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
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// Authenticates a connection, then pumps frames both ways until it closes.
    async fn serve(&self, stream: TcpStream, direction: Direction) -> Result<(), ConnError> {
        let _ = stream.set_nodelay(true);
        let (stream, validator) = match direction {
            Direction::Outbound => self.inner.tls.connect(stream).await,
            Direction::Inbound => {
                // Strangers can only hold inbound handshake slots, a few per source address, and a
                // full house refuses at once rather than queueing, so this node's own dials to its
                // peers never wait behind them.
                let source = stream.peer_addr().map_err(ConnError::Io)?.ip();
                let Some(_slot) = HandshakeSlot::take(&self.inner, source) else {
                    self.inner.stats.refused_handshakes.fetch_add(1, Ordering::Relaxed);
                    return Err(ConnError::Busy);
                };
                self.inner.tls.accept(stream).await
            }
        }
        .map_err(|e| {
            let refused_total = self.inner.stats.refused_handshakes.fetch_add(1, Ordering::Relaxed) + 1;
            warn!(error = %e, ?direction, refused_total, "peer refused");
            ConnError::Handshake(e)
        })?;

        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (consensus, mut consensus_rx) = LaneQueue::new();
        let (bulk, mut bulk_rx) = LaneQueue::new();
        let heard = Arc::new(AtomicU64::new(self.inner.now_ms()));
        let close = self.inner.shutdown.child_token();
        let first = {
            let mut conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
            let links = conns.entry(validator).or_default();
            if links.list.iter().any(|c| c.direction == direction) {
                match direction {
                    // This node already has its own link to the peer (two addresses for one key).
                    Direction::Outbound => return Err(ConnError::Duplicate),
                    // The peer dialed again: its newer link replaces its older one.
                    Direction::Inbound => {
                        links.list.iter().filter(|c| c.direction == direction).for_each(|c| c.close.cancel())
                    }
                }
            }
            let first = links.list.is_empty();
            links.list.push(Connection {
                id,
                direction,
                consensus,
                bulk,
                lossy: Default::default(),
                heard: heard.clone(),
                close: close.clone(),
            });
            first
        };
        info!(peer = validator, key = %hex::encode(self.inner.unl[validator]), ?direction, "peer link up");
        if first {
            let _ = self.inner.events.send(PeerEvent::Connected { validator }).await;
        }

        let (reader, writer) = tokio::io::split(stream);
        let writer_task = tokio::spawn(async move {
            let mut writer = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, writer);
            let heartbeat_frame = Self::encode(&wire::heartbeat());
            let mut heartbeat = tokio::time::interval(HEARTBEAT);
            loop {
                let first = tokio::select! {
                    biased;
                    Some(bytes) = consensus_rx.recv() => bytes,
                    Some(bytes) = bulk_rx.recv() => bytes,
                    _ = heartbeat.tick() => heartbeat_frame.clone(),
                    else => return,
                };
                if writer.write_all(&first).await.is_err() {
                    return;
                }
                // Whatever else is ready, consensus first, up to one buffer's worth; then out.
                while writer.buffer().len() < WRITE_BUFFER / 2 {
                    let Some(more) = consensus_rx.try_recv().or_else(|| bulk_rx.try_recv()) else {
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

        // Notes when bytes last arrived, so a link is known alive even while one large frame is
        // still coming in.
        let (noted, epoch) = (heard.clone(), self.inner.epoch);
        let mut reader = InspectReader::new(reader, move |bytes: &[u8]| {
            if !bytes.is_empty() {
                noted.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
        });
        let result = loop {
            let frame = {
                let read = read_frame(&mut reader, MAX_FRAME);
                tokio::pin!(read);
                // The link is checked for silence only while it waits for the peer, not while
                // this node is busy handing frames on.
                loop {
                    tokio::select! {
                        _ = close.cancelled() => break Err(None),
                        f = &mut read => break f.map_err(Some),
                        _ = tokio::time::sleep(HEARTBEAT) => {
                            let silent = self.inner.now_ms().saturating_sub(heard.load(Ordering::Relaxed));
                            if silent > LINK_TIMEOUT.as_millis() as u64 {
                                break Err(Some(FrameError::Io(std::io::ErrorKind::TimedOut.into())));
                            }
                        }
                    }
                }
            };
            let bytes = match frame {
                Ok(b) => b,
                Err(None) => break Ok(()),
                Err(Some(e)) => break Err(ConnError::Frame(e)),
            };
            let epochs = self.epochs();
            let signers =
                wire::Signers { epochs: &epochs, known_through: self.inner.known_through.load(Ordering::Relaxed) };
            let decoded = match Frame::decode(bytes.as_slice()) {
                Ok(frame) if wire::is_heartbeat(&frame) => continue,
                Ok(frame) => match wire::decode(frame, &self.inner.network, &signers) {
                    Err(error) if error.is_about_membership() => {
                        // Honest peers send these around a hand-over; nothing to hold against this one.
                        let bad_frames_total = self.inner.stats.bad_frames.fetch_add(1, Ordering::Relaxed) + 1;
                        debug!(peer = validator, %error, bad_frames_total, "a peer frame this node cannot check against its members; dropped");
                        continue;
                    }
                    other => other.map_err(|e| e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            match decoded {
                // The sender signed it; it must also be the peer on this link (NPL is not
                // relayed), so one member cannot replay another's messages at a third.
                Ok(PeerMessage::Npl(message)) if self.inner.unl.get(validator) == Some(&message.sender) => {
                    if let Some(npl) = &self.inner.npl
                        && !npl.push(message)
                    {
                        debug!(peer = validator, "NPL queue full; message dropped");
                    }
                }
                Ok(PeerMessage::Npl(_)) => {
                    self.count_bad_frame();
                    warn!(peer = validator, "NPL message relayed for another member; dropped");
                }
                Ok(message) => {
                    let epoch = wire::epoch_of(&message, &epochs).unwrap_or(0);
                    let arrived = std::time::Instant::now();
                    let event = PeerEvent::Message { validator, message, epoch, arrived };
                    if self.inner.events.send(event).await.is_err() {
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
            let links = conns.entry(validator).or_default();
            links.list.retain(|c| c.id != id);
            // What went to the closed link may be lost: the peer's other link carries it again.
            if let Some(other) = links.list.first() {
                other.lossy.store(true, Ordering::Relaxed);
            }
            links.list.is_empty()
        };
        info!(peer = validator, ?direction, reason = ?result.as_ref().err(), "peer link down");
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Inbound,
    Outbound,
}

/// One inbound handshake in progress, counted globally and per source address until dropped.
struct HandshakeSlot<'a> {
    inner: &'a Inner,
    source: IpAddr,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl<'a> HandshakeSlot<'a> {
    fn take(inner: &'a Inner, source: IpAddr) -> Option<Self> {
        let permit = inner.handshakes.try_acquire().ok()?;
        let mut per_ip = inner.handshakes_per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let held = per_ip.entry(source).or_default();
        if *held >= MAX_HANDSHAKES_PER_IP {
            return None;
        }
        *held += 1;
        Some(Self { inner, source, _permit: permit })
    }
}

impl Drop for HandshakeSlot<'_> {
    fn drop(&mut self) {
        let mut per_ip = self.inner.handshakes_per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = per_ip.get_mut(&self.source) {
            *held -= 1;
            if *held == 0 {
                per_ip.remove(&self.source);
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("too many handshakes in progress")]
    Busy,
    #[error("this node already has a link it dialed to that peer")]
    Duplicate,
    #[error("{0}")]
    Io(std::io::Error),
    #[error("{0}")]
    Handshake(handshake::HandshakeError),
    #[error("{0}")]
    Frame(FrameError),
    #[error("bad frame")]
    Decode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_is_bounded_in_bytes_yet_always_takes_one_frame_when_empty() {
        let (lane, mut rx) = LaneQueue::new();
        let big = Bytes::from(vec![0u8; SEND_QUEUE_BYTES - 100]);
        assert!(lane.push(big.clone()), "an empty lane takes a frame of any size");
        assert!(lane.push(Bytes::from_static(&[1; 50])), "room is left for small frames");
        assert!(!lane.push(Bytes::from(vec![0u8; 200])), "a frame past the byte limit is dropped");
        assert!(!lane.half_empty());
        assert_eq!(rx.try_recv().map(|b| b.len()), Some(big.len()));
        assert!(lane.push(Bytes::from(vec![0u8; 200])), "taken frames free their bytes");
        assert!(lane.half_empty());
    }

    /// A network of one node listening on `listen`, dialing nobody, with the receiver of its
    /// events; cancel the token to stop it.
    async fn lone_node(listen: Vec<SocketAddr>) -> (PeerNet, CancellationToken, mpsc::Receiver<PeerEvent>) {
        #![allow(clippy::unwrap_used)]
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let (events, rx) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let config = PeerConfig {
            unl: vec![key.verifying_key().to_bytes()],
            epochs: Epochs::new(hp_ledger::Membership::new(vec![key.verifying_key().to_bytes()], 1).unwrap()),
            known_through: 1,
            key,
            network_id: [0; 32],
            listen,
            peers: Vec::new(),
            npl: None,
        };
        let net = PeerNet::start(config, events, shutdown.clone()).await.unwrap();
        (net, shutdown, rx)
    }

    /// Well under the handshake timeout: a refused connection is closed at once.
    const HANDSHAKE_WAIT: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn one_source_address_holds_at_most_its_share_of_handshake_slots() {
        #![allow(clippy::unwrap_used)]
        use tokio::io::AsyncReadExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let listen: SocketAddr = ([127, 0, 0, 1], port).into();
        let (net, shutdown, _events) = lone_node(vec![listen]).await;
        // Strangers from one address open one silent connection more than its share: exactly
        // one is closed at once, long before the handshake timeout; the others wait in theirs.
        let mut strangers = Vec::new();
        for _ in 0..=MAX_HANDSHAKES_PER_IP {
            strangers.push(TcpStream::connect(listen).await.unwrap());
        }
        let deadline = tokio::time::Instant::now() + HANDSHAKE_WAIT;
        let closed = futures::future::join_all(strangers.iter_mut().map(|stream| async move {
            let mut byte = [0u8; 1];
            matches!(tokio::time::timeout_at(deadline, stream.read(&mut byte)).await, Ok(Ok(0)) | Ok(Err(_)))
        }))
        .await;
        assert_eq!(closed.iter().filter(|c| **c).count(), 1, "closed at once: {closed:?}");
        assert_eq!(net.stats().refused_handshakes.load(Ordering::Relaxed), 1);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_peer_changeset_makes_the_node_dial_an_address_and_stop_dialing_it() {
        #![allow(clippy::unwrap_used)]
        let (net, shutdown, _events) = lone_node(Vec::new()).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        net.change_peers(std::slice::from_ref(&addr), &[]);
        net.change_peers(std::slice::from_ref(&addr), &[]);
        assert_eq!(net.dialed(), vec![addr.clone()], "an address is dialed once");
        let dialed = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await;
        assert!(matches!(dialed, Ok(Ok(_))), "the added address was not dialed");
        net.change_peers(&[], std::slice::from_ref(&addr));
        assert!(net.dialed().is_empty());
        shutdown.cancel();
    }
}
