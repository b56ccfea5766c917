//! The test on the peer protocol: as a UNL member whose node process it replaces ([`Rogue`],
//! byzantine on demand), or as an outsider ([`outsider_handshake`], [`raw_connect`]).
//!
//! A [`Rogue`] holds a UNL key from a node's `hp.cfg`, dials every honest node's peer port,
//! authenticates with consensusd's own handshake (TLS 1.3 with that key, in that network), and reads their frames with consensusd's own
//! codec and verified decoder. What it sends is chosen by its [`Behaviour`], which the test can
//! change while it runs:
//!
//! - `help`: votes like a (hasty) honest node — prevotes and precommits every proposal it sees,
//!   otherwise echoes the first prevote and precommit it sees in a round (nil included), signs
//!   the results honest nodes sign, and proposes a valid empty ledger in its turn — so that it
//!   counts towards quorums;
//! - `equivocate`: for each (height, round) also signs a second prevote and precommit for
//!   another value, and a second result vote, and sends both to everyone;
//! - `split_proposals`: in its turn proposes two different valid ledgers, one to the first
//!   honest node and one to the others;
//! - `replay`: re-sends proposals and votes captured at older heights;
//! - `garbage`: sends malformed frames (undecodable bytes, an empty frame, a bad signature, a
//!   length over the limit), each of which makes the receiver drop the connection;
//! - `lie_status`: announces a last closed ledger far ahead of the real chain;
//! - `forge_inputs`: in its turn proposes a ledger carrying an input under the first honest
//!   node's name (origin), which that node never accepted nor signed;
//! - `flood_requests`: asks every honest node for a batch of ledgers 2000 times a second.
//! - `npl`: on the node party line of each round an honest node speaks on, says its own hello
//!   as the example Node.js contract does (`hello from ed<key> at <lcl hex>`, so that honest
//!   contracts waiting for every member finish), then floods twice [`NPL_FLOOD`] junk
//!   messages of its own, relays the honest node's message to the other honest nodes, replays
//!   every NPL frame it captured from older rounds, and last claims a message under the honest
//!   node's name signed with its own key (which costs it its link).

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use hp_consensus::{NetworkId, Proposal, ResultVote, Vote, VoteKind};
use hp_consensusd::peer::codec::{MAX_FRAME, read_frame};
use hp_consensusd::peer::handshake::{PeerTls, TlsStream};
use hp_consensusd::wire::{self, PeerMessage, PeerStatus};
use hp_ledger::{Ledger, LedgerBody, LedgerRecord};
use hp_proto::v1::peer::{self as pb, frame::Kind};
use prost::Message;
use rand::RngCore;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// What the rogue does; all off is a silent member that only listens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Behaviour {
    pub help: bool,
    pub equivocate: bool,
    pub split_proposals: bool,
    pub replay: bool,
    pub garbage: bool,
    pub lie_status: bool,
    pub flood_requests: bool,
    pub forge_inputs: bool,
    pub npl: bool,
}

/// Junk NPL messages the `npl` behaviour sends per round, to each honest node.
pub const NPL_FLOOD: u64 = 600;

/// Counters of what the rogue did and saw.
#[derive(Debug, Default)]
pub struct RogueStats {
    pub connects: AtomicU64,
    pub frames_in: AtomicU64,
    pub proposals_sent: AtomicU64,
    pub conflicting_sent: AtomicU64,
    pub replayed: AtomicU64,
    pub garbage_sent: AtomicU64,
    /// Proposals carrying a forged input.
    pub forged_sent: AtomicU64,
    /// Ledger requests sent while flooding, and ledger replies received.
    pub requests_sent: AtomicU64,
    pub ledger_replies: AtomicU64,
    /// NPL: rounds it spoke on, junk messages, relayed or replayed frames, forged ones.
    pub npl_rounds: AtomicU64,
    pub npl_junk_sent: AtomicU64,
    pub npl_relayed: AtomicU64,
    pub npl_forged: AtomicU64,
}

struct Shared {
    key: SigningKey,
    tls: PeerTls,
    me: usize,
    unl: Vec<[u8; 32]>,
    /// The genesis members, whose signatures the rogue checks.
    epochs: hp_ledger::Epochs,
    /// The network everything is signed and checked in.
    network: NetworkId,
    behaviour: Mutex<Behaviour>,
    conns: Mutex<HashMap<usize, mpsc::Sender<Vec<u8>>>>,
    memory: Mutex<Memory>,
    stats: RogueStats,
}

#[derive(Default)]
struct Memory {
    /// Highest (height, round) honest nodes announced.
    position: (u64, u32),
    /// The newest ledger record with its result, fetched from peers.
    last: Option<LedgerRecord>,
    voted: HashSet<(u64, u32)>,
    /// Votes this rogue cast as a helper: (height, round, precommit?).
    cast: HashSet<(u64, u32, bool)>,
    proposed: HashSet<(u64, u32)>,
    result_voted: HashSet<u64>,
    /// Proposals and votes seen, for replay: (height, frame).
    captured: VecDeque<(u64, pb::Frame)>,
    requested: HashMap<u64, std::time::Instant>,
    next_request: u64,
    /// NPL rounds it spoke on, and honest NPL frames seen (for relaying and replay).
    npl_spoken: HashSet<u64>,
    npl_captured: VecDeque<(u64, pb::Frame)>,
}

/// A UNL member played by the test.
pub struct Rogue {
    rt: tokio::runtime::Runtime,
    shared: Arc<Shared>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn random_hash() -> [u8; 32] {
    let mut h = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut h);
    h
}

fn encode(frame: &pb::Frame) -> Vec<u8> {
    let body = frame.encode_to_vec();
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

impl Rogue {
    /// Starts the rogue with UNL entry `me`'s key in network `network_id`, dialing `peers` (UNL
    /// index, peer address).
    pub fn start(
        key: SigningKey,
        unl: Vec<[u8; 32]>,
        network_id: [u8; 32],
        peers: Vec<(usize, SocketAddr)>,
        behaviour: Behaviour,
    ) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hp-rogue")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("rogue runtime: {e}"));
        let me = unl.iter().position(|k| *k == key.verifying_key().to_bytes()).unwrap_or_else(|| panic!("not in UNL"));
        // The rogue only checks signatures: any quorum does.
        let epochs = hp_ledger::Epochs::new(
            hp_ledger::Membership::new(unl.clone(), unl.len()).unwrap_or_else(|e| panic!("{e}")),
        );
        let tls = PeerTls::new(&key, &unl, network_id).unwrap_or_else(|e| panic!("rogue TLS: {e}"));
        let shared = Arc::new(Shared {
            key,
            tls,
            me,
            unl,
            epochs,
            network: NetworkId(network_id),
            behaviour: Mutex::new(behaviour),
            conns: Mutex::new(HashMap::new()),
            memory: Mutex::new(Memory::default()),
            stats: RogueStats::default(),
        });
        for (index, addr) in peers {
            rt.spawn(dial_loop(shared.clone(), index, addr));
        }
        rt.spawn(ticker(shared.clone()));
        rt.spawn(flooder(shared.clone()));
        Self { rt, shared }
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().unwrap_or_else(|e| e.into_inner()) = behaviour;
    }

    pub fn stats(&self) -> &RogueStats {
        &self.shared.stats
    }

    /// UNL indexes the rogue is connected to now.
    pub fn connected(&self) -> usize {
        self.shared.conns.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Sends raw bytes (already framed or not) to one peer, if connected.
    pub fn send_raw(&self, to: usize, bytes: Vec<u8>) {
        let shared = self.shared.clone();
        self.rt.spawn(async move { send_bytes(&shared, to, bytes) });
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        self.shared.conns.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

fn behaviour(shared: &Shared) -> Behaviour {
    *shared.behaviour.lock().unwrap_or_else(|e| e.into_inner())
}

fn send_bytes(shared: &Shared, to: usize, bytes: Vec<u8>) {
    if let Some(tx) = shared.conns.lock().unwrap_or_else(|e| e.into_inner()).get(&to) {
        let _ = tx.try_send(bytes);
    }
}

fn send(shared: &Shared, to: usize, frame: &pb::Frame) {
    send_bytes(shared, to, encode(frame));
}

fn broadcast(shared: &Shared, frame: &pb::Frame) {
    let bytes = encode(frame);
    for tx in shared.conns.lock().unwrap_or_else(|e| e.into_inner()).values() {
        let _ = tx.try_send(bytes.clone());
    }
}

async fn dial_loop(shared: Arc<Shared>, index: usize, addr: SocketAddr) {
    loop {
        if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await
            && let Ok((stream, peer)) = shared.tls.connect(stream).await
            && peer == index
        {
            shared.stats.connects.fetch_add(1, Ordering::Relaxed);
            serve(&shared, index, stream).await;
            shared.conns.lock().unwrap_or_else(|e| e.into_inner()).remove(&index);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn serve(shared: &Arc<Shared>, index: usize, stream: TlsStream<TcpStream>) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4096);
    shared.conns.lock().unwrap_or_else(|e| e.into_inner()).insert(index, tx);
    let writing = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
                return;
            }
        }
    });
    while let Ok(bytes) = read_frame(&mut reader, MAX_FRAME).await {
        shared.stats.frames_in.fetch_add(1, Ordering::Relaxed);
        let Ok(frame) = pb::Frame::decode(bytes.as_slice()) else { break };
        let raw = frame.clone();
        let Ok(message) =
            wire::decode(frame, &shared.network, &wire::Signers { epochs: &shared.epochs, known_through: u64::MAX })
        else {
            continue;
        };
        on_message(shared, index, raw, message);
    }
    writing.abort();
}

fn capture(shared: &Shared, height: u64, frame: pb::Frame) {
    let mut memory = shared.memory.lock().unwrap_or_else(|e| e.into_inner());
    memory.captured.push_back((height, frame));
    if memory.captured.len() > 400 {
        memory.captured.pop_front();
    }
}

fn on_message(shared: &Arc<Shared>, from: usize, raw: pb::Frame, message: PeerMessage) {
    let b = behaviour(shared);
    match message {
        PeerMessage::Proposal(p) => {
            capture(shared, p.height, raw);
            let first = shared.memory.lock().unwrap_or_else(|e| e.into_inner()).voted.insert((p.height, p.round));
            if first {
                vote_on(shared, &b, p.height, p.round, p.value.hash());
            }
        }
        PeerMessage::Vote(v) => {
            capture(shared, v.height, raw);
            // A helper follows the honest nodes' votes it has not matched yet — nil after a
            // timeout included — so that it completes their quorums of any kind.
            let precommit = v.kind == VoteKind::Precommit;
            let first =
                shared.memory.lock().unwrap_or_else(|e| e.into_inner()).cast.insert((v.height, v.round, precommit));
            if first && b.help {
                let vote = Vote::sign(&shared.network, v.kind, v.height, v.round, v.value, shared.me, &shared.key);
                broadcast(shared, &wire::vote(&vote));
            }
        }
        PeerMessage::Result(r, _) => {
            let first = shared.memory.lock().unwrap_or_else(|e| e.into_inner()).result_voted.insert(r.height);
            if first && b.help {
                let vote =
                    ResultVote::sign(&shared.network, r.height, r.state_hash, r.outputs_hash, shared.me, &shared.key);
                broadcast(shared, &wire::result(&vote));
            }
            if first && b.equivocate {
                let vote =
                    ResultVote::sign(&shared.network, r.height, random_hash(), random_hash(), shared.me, &shared.key);
                broadcast(shared, &wire::result(&vote));
                shared.stats.conflicting_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        PeerMessage::Status(s) => on_status(shared, &b, from, s),
        PeerMessage::Npl(m) if b.npl => on_npl(shared, from, raw, m),
        PeerMessage::LedgerReply { records, .. } => {
            shared.stats.ledger_replies.fetch_add(1, Ordering::Relaxed);
            let mut memory = shared.memory.lock().unwrap_or_else(|e| e.into_inner());
            for record in records {
                let newer = memory.last.as_ref().is_none_or(|l| l.ledger.seq < record.ledger.seq);
                if record.result.is_some() && newer {
                    memory.last = Some(record);
                }
            }
        }
        _ => {}
    }
}

fn on_npl(shared: &Shared, from: usize, raw: pb::Frame, message: wire::NplMessage) {
    let (first, old) = {
        let mut memory = shared.memory.lock().unwrap_or_else(|e| e.into_inner());
        let first = memory.npl_spoken.insert(message.seq);
        let old: Vec<pb::Frame> =
            memory.npl_captured.iter().filter(|(seq, _)| *seq < message.seq).map(|(_, f)| f.clone()).collect();
        memory.npl_captured.push_back((message.seq, raw.clone()));
        if memory.npl_captured.len() > 64 {
            memory.npl_captured.pop_front();
        }
        (first, if first { old } else { Vec::new() })
    };
    let me = shared.unl[shared.me];
    let npl = |data: Vec<u8>, sender: [u8; 32]| wire::NplMessage {
        seq: message.seq,
        lcl_hash: message.lcl_hash,
        sender,
        data: Bytes::from(data),
    };
    let honest: Vec<usize> = (0..shared.unl.len()).filter(|i| *i != shared.me).collect();
    if first {
        shared.stats.npl_rounds.fetch_add(1, Ordering::Relaxed);
        let hello = format!("hello from ed{} at {}", hex::encode(me), hex::encode(message.lcl_hash));
        broadcast(shared, &wire::npl(&npl(hello.into_bytes(), me), &shared.key, &shared.network));
        for n in 0..NPL_FLOOD {
            let junk = npl(format!("junk {n}").into_bytes(), me);
            broadcast(shared, &wire::npl(&junk, &shared.key, &shared.network));
        }
        shared.stats.npl_junk_sent.fetch_add(NPL_FLOOD, Ordering::Relaxed);
        for frame in old {
            broadcast(shared, &frame);
            shared.stats.npl_relayed.fetch_add(1, Ordering::Relaxed);
        }
    }
    // The honest node's own words, passed to the others: not from the member on the link.
    for peer in honest.iter().filter(|p| **p != from) {
        send(shared, *peer, &raw);
        shared.stats.npl_relayed.fetch_add(1, Ordering::Relaxed);
    }
    if first {
        // Last, for it breaks the link: a hello under the honest node's name, signed by the rogue.
        let claimed = shared.unl[from];
        let text = format!("hello from ed{} at {}", hex::encode(claimed), hex::encode(message.lcl_hash));
        let forged = wire::npl(&npl(text.into_bytes(), claimed), &shared.key, &shared.network);
        for peer in honest.iter().filter(|p| **p != from) {
            send(shared, *peer, &forged);
        }
        shared.stats.npl_forged.fetch_add(1, Ordering::Relaxed);
    }
}

fn vote_on(shared: &Shared, b: &Behaviour, height: u64, round: u32, value: [u8; 32]) {
    if b.help {
        for kind in [VoteKind::Prevote, VoteKind::Precommit] {
            let key = (height, round, kind == VoteKind::Precommit);
            if shared.memory.lock().unwrap_or_else(|e| e.into_inner()).cast.insert(key) {
                let vote = Vote::sign(&shared.network, kind, height, round, Some(value), shared.me, &shared.key);
                broadcast(shared, &wire::vote(&vote));
            }
        }
    }
    if b.equivocate {
        for kind in [VoteKind::Prevote, VoteKind::Precommit] {
            let vote = Vote::sign(&shared.network, kind, height, round, Some(random_hash()), shared.me, &shared.key);
            broadcast(shared, &wire::vote(&vote));
            if !b.help {
                let other = Vote::sign(&shared.network, kind, height, round, None, shared.me, &shared.key);
                broadcast(shared, &wire::vote(&other));
            }
            shared.stats.conflicting_sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn on_status(shared: &Arc<Shared>, b: &Behaviour, from: usize, s: PeerStatus) {
    let n = shared.unl.len() as u64;
    let mut memory = shared.memory.lock().unwrap_or_else(|e| e.into_inner());
    if (s.height, s.round) > memory.position {
        memory.position = (s.height, s.round);
    }
    // Keep the last closed ledger (with its certified result) at hand, to propose on it.
    let have = memory.last.as_ref().map(|l| l.ledger.seq);
    if s.lcl_seq > 0 && have.is_none_or(|h| h < s.lcl_seq) {
        let recent = memory.requested.get(&s.lcl_seq).is_some_and(|t| t.elapsed() < Duration::from_millis(300));
        if !recent {
            memory.requested.insert(s.lcl_seq, std::time::Instant::now());
            memory.next_request += 1;
            let id = memory.next_request;
            send(shared, from, &wire::ledger_request(id, s.lcl_seq, 1));
        }
    }
    let (height, round) = (s.height, s.round);
    let my_turn = (height + round as u64) % n == shared.me as u64;
    if !(my_turn && (b.help || b.split_proposals)) || memory.proposed.contains(&(height, round)) {
        return;
    }
    let Some(last) = memory.last.clone().filter(|l| l.ledger.seq + 1 == height) else { return };
    memory.proposed.insert((height, round));
    drop(memory);
    // The membership ledger 1 names is the genesis UNL's at the default threshold and input
    // window; later ledgers name their predecessor's (no hand-overs here).
    let members_hash = if last.ledger.seq == 0 {
        let quorum = hp_consensus::quorum_for(shared.unl.len(), 0.8).unwrap_or(shared.unl.len());
        hp_ledger::chain::genesis_members(&shared.unl, quorum, hp_ledger::membership::DEFAULT_INPUT_WINDOW)
            .map(|m| m.hash())
            .unwrap_or_default()
    } else {
        last.ledger.config_hash
    };
    let make = |bump: u64| {
        let ledger = Ledger::new(LedgerBody {
            seq: height,
            prev_hash: last.ledger.hash(),
            time_ms: now_ms().max(last.ledger.time_ms + 1) + bump,
            inputs: if b.forge_inputs { vec![forged_input(shared)] } else { vec![] },
            users: vec![],
            prev_result: last.result_summary(),
            config_hash: members_hash,
            next_membership: None,
        });
        Proposal::sign(&shared.network, height, round, ledger, None, shared.me, &shared.key)
    };
    if b.forge_inputs {
        shared.stats.forged_sent.fetch_add(1, Ordering::Relaxed);
    }
    let first = make(0);
    shared.stats.proposals_sent.fetch_add(1, Ordering::Relaxed);
    if b.split_proposals {
        let second = make(1);
        let peers: Vec<usize> = {
            let mut v: Vec<usize> = shared.conns.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect();
            v.sort_unstable();
            v
        };
        for (k, peer) in peers.iter().enumerate() {
            let (p, value) = if k == 0 { (&first, first.value.hash()) } else { (&second, second.value.hash()) };
            send(shared, *peer, &wire::proposal(p));
            for kind in [VoteKind::Prevote, VoteKind::Precommit] {
                send(
                    shared,
                    *peer,
                    &wire::vote(&Vote::sign(&shared.network, kind, height, round, Some(value), shared.me, &shared.key)),
                );
            }
        }
        shared.stats.conflicting_sent.fetch_add(1, Ordering::Relaxed);
    } else {
        broadcast(shared, &wire::proposal(&first));
    }
    shared.memory.lock().unwrap_or_else(|e| e.into_inner()).voted.insert((height, round));
    if b.help && !b.split_proposals {
        vote_on(shared, &Behaviour { equivocate: false, ..*b }, height, round, first.value.hash());
    }
}

/// The bytes every forged input carries, for tests to look for in the chains.
pub const FORGED_INPUT: &[u8] = b"forged by the rogue";

/// An input under the first honest node's name with a fresh nonce, signed by the rogue itself
/// (the best it can do: it does not hold that node's key).
fn forged_input(shared: &Shared) -> hp_ledger::Input {
    let victim = shared.unl.iter().position(|k| *k != shared.unl[shared.me]).unwrap_or(0);
    let nonce = rand::rngs::OsRng.next_u64();
    let own =
        hp_ledger::Input::sign(&shared.network, nonce, random_hash(), Bytes::from_static(FORGED_INPUT), &shared.key);
    hp_ledger::Input { id: hp_ledger::InputId { origin: shared.unl[victim], nonce }, ..own }
}

/// Frames that each break a rule of the peer protocol.
fn garbage_frame(shared: &Shared, which: u64) -> Vec<u8> {
    match which % 5 {
        // Not protobuf.
        0 => {
            let mut junk = vec![0u8; 64];
            rand::rngs::OsRng.fill_bytes(&mut junk);
            junk[0] = 0xff;
            let mut out = (junk.len() as u32).to_be_bytes().to_vec();
            out.extend_from_slice(&junk);
            out
        }
        // A frame with no kind.
        1 => encode(&pb::Frame { kind: None }),
        // A vote whose signature does not match its contents.
        2 => {
            let mut vote =
                Vote::sign(&shared.network, VoteKind::Prevote, 1, 0, Some(random_hash()), shared.me, &shared.key);
            vote.height = 2;
            encode(&wire::vote(&vote))
        }
        // A length far over the limit.
        3 => (u32::MAX).to_be_bytes().to_vec(),
        // A proposal claiming a validator outside the UNL.
        _ => encode(&pb::Frame {
            kind: Some(Kind::Vote(pb::Vote {
                kind: 1,
                height: 1,
                round: 0,
                value: Bytes::from(random_hash().to_vec()),
                validator: 1000,
                signature: Bytes::from(vec![0u8; 64]),
            })),
        }),
    }
}

/// With `flood_requests`: 20 requests for the first 64 ledgers to every peer every 10 ms.
async fn flooder(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut id: u64 = 1 << 32;
    loop {
        tick.tick().await;
        if !behaviour(&shared).flood_requests {
            continue;
        }
        let peers: Vec<usize> = shared.conns.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect();
        for to in peers {
            for _ in 0..20 {
                id += 1;
                send(&shared, to, &wire::ledger_request(id, 1, 64));
                shared.stats.requests_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn ticker(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        let b = behaviour(&shared);
        let peers: Vec<usize> = shared.conns.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect();
        if b.lie_status {
            let lie =
                PeerStatus { lcl_seq: 1 << 40, lcl_hash: random_hash(), height: 1 << 40, round: 0, users: vec![] };
            broadcast(&shared, &wire::status(&lie));
        }
        if b.replay {
            let old: Vec<pb::Frame> = {
                let memory = shared.memory.lock().unwrap_or_else(|e| e.into_inner());
                let now = memory.position.0;
                memory.captured.iter().filter(|(h, _)| *h + 2 <= now).map(|(_, f)| f.clone()).take(20).collect()
            };
            for frame in &old {
                broadcast(&shared, frame);
            }
            shared.stats.replayed.fetch_add(old.len() as u64, Ordering::Relaxed);
        }
        if b.garbage && !peers.is_empty() {
            let to = peers[(n as usize) % peers.len()];
            send_bytes(&shared, to, garbage_frame(&shared, n));
            shared.stats.garbage_sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An outsider (a key not in the node's UNL) tries the handshake against `addr` in network
/// `network_id`; returns whether the node let it in (it must not: `Ok(false)` is the expected
/// answer).
pub fn outsider_handshake(addr: SocketAddr, unl: &[[u8; 32]], network_id: [u8; 32]) -> std::io::Result<bool> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let stream = TcpStream::connect(addr).await?;
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        // Pretend the outsider's own key is in "its" UNL, so its side completes if the node's does.
        let mut list = unl.to_vec();
        list.push(key.verifying_key().to_bytes());
        let tls = PeerTls::new(&key, &list, network_id).map_err(std::io::Error::other)?;
        let Ok((mut stream, _)) = tls.connect(stream).await else { return Ok(false) };
        // In TLS 1.3 the dialer finishes before the node has checked its key: see whether the
        // node talks to it (it sends a heartbeat within half a second to a peer it let in).
        let next = tokio::time::timeout(Duration::from_secs(2), read_frame(&mut stream, MAX_FRAME)).await;
        Ok(matches!(next, Ok(Ok(_))))
    })
}

/// Opens a plain TCP connection (for garbage and idle-connection tests).
pub fn raw_connect(addr: SocketAddr) -> std::io::Result<std::net::TcpStream> {
    let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}

/// Strangers that keep `per_addr` idle TCP connections open to each address — connected, never
/// saying a word — reopening each one the node closes. Stops when dropped.
pub struct IdleFlood {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    opened: Arc<AtomicU64>,
}

impl IdleFlood {
    pub fn start(addrs: Vec<SocketAddr>, per_addr: usize) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let opened = Arc::new(AtomicU64::new(0));
        let thread = {
            let stop = stop.clone();
            let opened = opened.clone();
            std::thread::spawn(move || {
                let mut held: Vec<Vec<std::net::TcpStream>> = addrs.iter().map(|_| Vec::new()).collect();
                while !stop.load(Ordering::Relaxed) {
                    for (addr, conns) in addrs.iter().zip(held.iter_mut()) {
                        // Forget the ones the node closed.
                        conns.retain(|c| {
                            let mut byte = [0u8; 1];
                            match c.peek(&mut byte) {
                                Ok(n) => n > 0,
                                Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                            }
                        });
                        while conns.len() < per_addr {
                            let Ok(c) = std::net::TcpStream::connect_timeout(addr, Duration::from_millis(500)) else {
                                break;
                            };
                            let _ = c.set_nonblocking(true);
                            conns.push(c);
                            opened.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        Self { stop, thread: Some(thread), opened }
    }

    /// Connections opened so far.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

impl Drop for IdleFlood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
