//! The simulated network: n hosts around n consensus machines (some replaced by byzantine
//! scripts), a virtual clock, an event queue and a faulty network, driven by one seed.
//!
//! The simulated host does what consensusd must: verifies nothing it need not (every message
//! here is genuinely signed), persists `Persist` effects across crashes, answers `GetValue`
//! with pending inputs (or after a heartbeat wait), judges proposals (right prev hash, no input
//! already decided), stores decisions and starts the next height, fetches values for
//! `DecideWithoutValue`, re-sends `rebroadcast()` and pending inputs periodically, and answers
//! a peer that is behind with stored ledgers and certificates.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use hp_consensus::{
    CommitCertificate, Consensus, Effect, Evidence, Hash, Height, Input, Message, Params, Proposal, RecoveryState,
    Round, Step, Timeout, Timeouts, ValidatorIndex, Value, Vote, VoteKind, quorum_for,
};
use sha2::{Digest, Sha256};

use super::rng::Rng;
use crate::common::{NET, keys};

/// Virtual milliseconds.
type Time = u64;

const TIMEOUTS: Timeouts = Timeouts {
    propose: Duration::from_millis(150),
    prevote: Duration::from_millis(80),
    precommit: Duration::from_millis(80),
    delta: Duration::from_millis(40),
};
/// The host's wait before proposing an empty (heartbeat) ledger; below the propose timeout.
const HEARTBEAT: Time = 60;
/// Period of rebroadcast and input re-gossip.
const TICK: Time = 200;
/// At most this many inputs per ledger, so that several heights are needed.
const MAX_BATCH: usize = 3;
/// Ledgers sent at once to a peer that is behind.
const CATCH_UP_BATCH: usize = 8;
/// Every input must be decided by every honest node this long after the faults stop.
pub const LIVENESS_BOUND: Time = 30_000;
/// How long a safety-only run goes on after the faults stop.
const SAFETY_HORIZON: Time = 2_000;
/// Evidence signatures checked per run (each check costs two verifications).
const EVIDENCE_CHECKS: u64 = 16;
/// Guard against a run that never ends.
const MAX_EVENTS: u64 = 3_000_000;

/// A ledger: what the simulated nodes agree on.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub height: Height,
    pub prev: Hash,
    pub round: Round,
    pub proposer: ValidatorIndex,
    pub inputs: Vec<u64>,
    /// Lets a byzantine proposer make two different blocks from the same inputs.
    pub salt: u64,
}

impl Value for Block {
    fn id(&self) -> Hash {
        let mut h = Sha256::new();
        h.update(b"sim-block");
        h.update(self.height.to_be_bytes());
        h.update(self.prev);
        h.update(self.round.to_be_bytes());
        h.update((self.proposer as u64).to_be_bytes());
        h.update((self.inputs.len() as u64).to_be_bytes());
        for i in &self.inputs {
            h.update(i.to_be_bytes());
        }
        h.update(self.salt.to_be_bytes());
        h.finalize().into()
    }
}

const GENESIS: Hash = [0; 32];

fn wire(message: Message<Block>) -> Msg {
    match message {
        Message::Proposal(p) => Msg::Proposal(p),
        Message::Vote(v) => Msg::Vote(v),
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub name: &'static str,
    pub n: usize,
    /// Nodes `n - byzantine .. n` run the byzantine script.
    pub byzantine: usize,
    /// Before `chaos_end`: drops, duplicates, long delays (hence reordering), and in half the
    /// runs a partition into two random sides for a while.
    pub lossy: bool,
    /// Before `chaos_end`: honest nodes crash and recover.
    pub crashes: bool,
    /// Byzantine nodes also sign votes for rounds ahead, dragging others along (line 55).
    pub push_rounds: bool,
    pub inputs: usize,
    /// Check that every input is decided (needs `q` honest nodes).
    pub liveness: bool,
}

#[derive(Clone, Debug)]
enum Msg {
    Proposal(Proposal<Block>),
    Vote(Vote),
    Inputs(Vec<u64>),
    Commits(Vec<(Block, CommitCertificate)>),
}

#[derive(Debug)]
enum Event {
    /// Shared between the copies sent to each peer.
    Deliver {
        to: usize,
        from: usize,
        msg: Rc<Msg>,
    },
    Timer {
        node: usize,
        incarnation: u64,
        timeout: Timeout,
    },
    Answer {
        node: usize,
        incarnation: u64,
        height: Height,
        round: Round,
    },
    StartNext {
        node: usize,
        incarnation: u64,
        height: Height,
    },
    Fetched {
        node: usize,
        incarnation: u64,
        certificate: CommitCertificate,
    },
    Tick {
        node: usize,
        incarnation: u64,
    },
    Submit {
        input: u64,
    },
    Crash {
        node: usize,
    },
    Recover {
        node: usize,
    },
}

struct Scheduled {
    time: Time,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    // Reversed: BinaryHeap pops the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// An honest host and its machine.
struct Honest {
    up: bool,
    incarnation: u64,
    core: Consensus<Block>,
    /// Ledger h is `chain[h - 1]`.
    chain: Vec<(Block, CommitCertificate)>,
    in_chain: BTreeSet<u64>,
    /// Accepted, not yet decided (durable: survives crashes).
    pending: BTreeSet<u64>,
    /// The last `Persist` effect (durable).
    persisted: Option<RecoveryState<Block>>,
    /// (peer, height, round) -> when catch-up was last sent to that peer.
    catch_up_sent: BTreeMap<(usize, Height, Round), Time>,
}

impl Honest {
    fn next_height(&self) -> Height {
        self.chain.len() as Height + 1
    }

    fn tip(&self) -> Hash {
        self.chain.last().map_or(GENESIS, |(b, _)| b.id())
    }

    /// The host's valid(v).
    fn valid(&self, block: &Block) -> bool {
        let unique: BTreeSet<_> = block.inputs.iter().collect();
        block.height == self.next_height()
            && block.prev == self.tip()
            && unique.len() == block.inputs.len()
            && block.inputs.iter().all(|i| !self.in_chain.contains(i))
    }
}

#[derive(Default)]
struct Byzantine {
    voted: BTreeSet<(Height, Round, Option<Hash>)>,
    proposed: BTreeSet<(Height, Round)>,
    pushed: BTreeSet<(Height, Round)>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub heights: u64,
    pub max_round: Round,
    pub events: u64,
    pub end_time: Time,
    pub equivocations_seen: u64,
    pub without_value: u64,
}

pub struct World {
    cfg: Config,
    rng: Rng,
    now: Time,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    keys: Vec<SigningKey>,
    params: Params,
    honest: Vec<Option<Honest>>,
    byzantine: Vec<Byzantine>,
    chaos_end: Time,
    /// With `lossy`, maybe a partition before `chaos_end`: (from, until, side of each node).
    partition: Option<(Time, Time, Vec<bool>)>,
    /// Global truth for the checks.
    decided: BTreeMap<Height, Block>,
    values: HashMap<Hash, Block>,
    signed_votes: HashMap<(usize, Height, Round, VoteKind), Option<Hash>>,
    signed_proposals: HashMap<(usize, Height, Round), Hash>,
    good_signatures: HashSet<(usize, [u8; 64], Height, Round, Hash)>,
    submitted: Vec<u64>,
    stats: Stats,
}

impl World {
    pub fn new(cfg: Config, seed: u64) -> World {
        let mut rng = Rng::new(seed);
        let keys = keys(cfg.n);
        let quorum = quorum_for(cfg.n, 0.8).expect("quorum");
        let params = Params {
            unl: keys.iter().map(SigningKey::verifying_key).collect(),
            quorum,
            timeouts: TIMEOUTS,
            network: NET,
        };
        let chaos_end = if cfg.lossy || cfg.crashes { rng.between(1_000, 4_000) } else { 1_000 };
        let partition = (cfg.lossy && rng.chance(0.5)).then(|| {
            let from = rng.below(chaos_end / 2);
            let until = (from + rng.between(200, chaos_end / 2)).min(chaos_end);
            let sides = (0..cfg.n).map(|_| rng.chance(0.5)).collect();
            (from, until, sides)
        });
        let honest = (0..cfg.n)
            .map(|i| {
                (i < cfg.n - cfg.byzantine).then(|| Honest {
                    up: true,
                    incarnation: 0,
                    core: Consensus::new(params.clone(), Some(i), keys[i].clone()).expect("params"),
                    chain: Vec::new(),
                    in_chain: BTreeSet::new(),
                    pending: BTreeSet::new(),
                    persisted: None,
                    catch_up_sent: BTreeMap::new(),
                })
            })
            .collect();
        World {
            byzantine: (0..cfg.n).map(|_| Byzantine::default()).collect(),
            cfg,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            keys,
            params,
            honest,
            chaos_end,
            partition,
            decided: BTreeMap::new(),
            values: HashMap::new(),
            signed_votes: HashMap::new(),
            signed_proposals: HashMap::new(),
            good_signatures: HashSet::new(),
            submitted: Vec::new(),
            stats: Stats::default(),
        }
    }

    fn at(&mut self, time: Time, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled { time, seq: self.seq, event });
    }

    fn honest_ids(&self) -> Vec<usize> {
        (0..self.cfg.n).filter(|i| self.honest[*i].is_some()).collect()
    }

    fn node(&mut self, i: usize) -> &mut Honest {
        self.honest[i].as_mut().expect("honest node")
    }

    fn up(&self, i: usize) -> Option<&Honest> {
        self.honest[i].as_ref().filter(|h| h.up)
    }

    fn chaotic(&self) -> bool {
        self.now < self.chaos_end
    }

    /// Sends through the faulty network: before `chaos_end` with drops, duplicates and long
    /// delays when `lossy`; afterwards every message arrives within 20 ms.
    fn send(&mut self, from: usize, to: usize, msg: Msg) {
        self.send_shared(from, to, &Rc::new(msg));
    }

    fn send_shared(&mut self, from: usize, to: usize, msg: &Rc<Msg>) {
        if from == to {
            return;
        }
        let lossy = self.cfg.lossy && self.chaotic();
        if lossy && self.rng.chance(0.15) {
            return;
        }
        if let Some((from_time, until, sides)) = &self.partition
            && (*from_time..*until).contains(&self.now)
            && sides[from] != sides[to]
        {
            return;
        }
        let copies = if lossy && self.rng.chance(0.1) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = if lossy { self.rng.between(1, 150) } else { self.rng.between(1, 20) };
            self.at(self.now + delay, Event::Deliver { to, from, msg: Rc::clone(msg) });
        }
    }

    fn send_all(&mut self, from: usize, msg: Msg) {
        let msg = Rc::new(msg);
        for to in 0..self.cfg.n {
            self.send_shared(from, to, &msg);
        }
    }

    /// Runs to completion; `Err` describes the first violated property.
    pub fn run(mut self) -> Result<Stats, String> {
        // Inputs at random times to random nodes; crash schedules.
        for input in 0..self.cfg.inputs as u64 {
            let t = self.rng.below(self.chaos_end);
            self.at(t, Event::Submit { input: input + 1 });
        }
        if self.cfg.crashes {
            let crashes = self.rng.between(1, 4);
            let honest = self.honest_ids();
            for _ in 0..crashes {
                let node = honest[self.rng.below(honest.len() as u64) as usize];
                let down = self.rng.below(self.chaos_end * 4 / 5);
                let up = (down + self.rng.between(50, 800)).min(self.chaos_end);
                self.at(down, Event::Crash { node });
                self.at(up, Event::Recover { node });
            }
        }
        for i in self.honest_ids() {
            self.feed(i, Input::StartHeight { height: 1, round: 0 })?;
            let jitter = self.rng.below(TICK);
            self.at(jitter, Event::Tick { node: i, incarnation: 0 });
        }
        let deadline = self.chaos_end + if self.cfg.liveness { LIVENESS_BOUND } else { SAFETY_HORIZON };
        while let Some(Scheduled { time, event, .. }) = self.queue.pop() {
            self.now = time;
            self.stats.events += 1;
            if self.stats.events > MAX_EVENTS {
                return Err(format!("more than {MAX_EVENTS} events; {}", self.describe()));
            }
            if self.cfg.liveness && self.all_decided() {
                break;
            }
            if time > deadline {
                if self.cfg.liveness {
                    return Err(format!(
                        "liveness: not every input decided by {LIVENESS_BOUND} ms after the faults stopped at {}; {}",
                        self.chaos_end,
                        self.describe()
                    ));
                }
                break;
            }
            self.step(event)?;
        }
        if self.cfg.liveness && !self.all_decided() {
            return Err(format!("liveness: queue ran dry; {}", self.describe()));
        }
        self.stats.heights = self.decided.len() as u64;
        self.stats.end_time = self.now;
        Ok(self.stats)
    }

    fn all_decided(&self) -> bool {
        self.submitted.len() == self.cfg.inputs
            && self.honest.iter().flatten().all(|h| self.submitted.iter().all(|i| h.in_chain.contains(i)))
    }

    fn describe(&self) -> String {
        let nodes: Vec<String> = self
            .honest
            .iter()
            .enumerate()
            .map(|(i, h)| match h {
                Some(h) => format!(
                    "node {i}: up={} chain={} core h{} r{} {:?} pending={:?}",
                    h.up,
                    h.chain.len(),
                    h.core.height(),
                    h.core.round(),
                    h.core.step(),
                    h.pending
                ),
                None => format!("node {i}: byzantine"),
            })
            .collect();
        if std::env::var("SIM_DUMP").is_ok() {
            for h in self.honest.iter().flatten() {
                eprintln!("DUMP {:#?}", h.core);
            }
        }
        format!("t={} submitted={:?}\n  {}", self.now, self.submitted, nodes.join("\n  "))
    }

    fn step(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Deliver { to, from, msg } => {
                if self.honest[to].is_none() {
                    self.byzantine_receive(to, &msg);
                } else if self.up(to).is_some() {
                    let msg = Rc::try_unwrap(msg).unwrap_or_else(|shared| (*shared).clone());
                    self.deliver(to, from, msg)?;
                }
            }
            Event::Timer { node, incarnation, timeout } => {
                if self.live(node, incarnation) {
                    self.feed(node, Input::Timeout(timeout))?;
                }
            }
            Event::Answer { node, incarnation, height, round } => {
                if self.live(node, incarnation) {
                    let value = self.build(node, height, round);
                    self.feed(node, Input::ProposeValue { height, round, value })?;
                }
            }
            Event::StartNext { node, incarnation, height } => {
                if self.live(node, incarnation) {
                    self.feed(node, Input::StartHeight { height, round: 0 })?;
                }
            }
            Event::Fetched { node, incarnation, certificate } => {
                if self.live(node, incarnation) {
                    // The value is fetched by id from peers; here from the global record.
                    let value = self
                        .values
                        .get(&certificate.value_id)
                        .cloned()
                        .ok_or_else(|| "DecideWithoutValue for a value nobody proposed".to_string())?;
                    let height = certificate.height;
                    if self.store(node, value, certificate)? {
                        let delay = self.rng.below(5);
                        self.at(self.now + delay, Event::StartNext { node, incarnation, height: height + 1 });
                    }
                }
            }
            Event::Tick { node, incarnation } => {
                if self.live(node, incarnation) {
                    for message in self.node(node).core.rebroadcast() {
                        self.send_all(node, wire(message));
                    }
                    let pending: Vec<u64> = self.node(node).pending.iter().copied().collect();
                    if !pending.is_empty() {
                        self.send_all(node, Msg::Inputs(pending));
                    }
                    self.at(self.now + TICK, Event::Tick { node, incarnation });
                }
            }
            Event::Submit { input } => {
                let up: Vec<usize> = self.honest_ids().into_iter().filter(|i| self.up(*i).is_some()).collect();
                if up.is_empty() {
                    self.at(self.now + 50, Event::Submit { input });
                } else {
                    let node = up[self.rng.below(up.len() as u64) as usize];
                    self.submitted.push(input);
                    self.node(node).pending.insert(input);
                    self.send_all(node, Msg::Inputs(vec![input]));
                }
            }
            Event::Crash { node } => {
                let h = self.node(node);
                h.up = false;
                h.incarnation += 1;
            }
            Event::Recover { node } => {
                if self.up(node).is_some() {
                    return Ok(());
                }
                let core = Consensus::new(self.params.clone(), Some(node), self.keys[node].clone())
                    .map_err(|e| e.to_string())?;
                let h = self.node(node);
                h.up = true;
                h.incarnation += 1;
                h.core = core;
                let incarnation = h.incarnation;
                let next = h.next_height();
                // Restart from what was persisted: Resume restores the round, lock and own
                // messages; with nothing persisted for this height, round 0 is safe.
                let start = match h.persisted.clone() {
                    Some(state) if state.height == next => Input::Resume(state),
                    _ => Input::StartHeight { height: next, round: 0 },
                };
                self.feed(node, start)?;
                self.at(self.now + 1, Event::Tick { node, incarnation });
            }
        }
        Ok(())
    }

    fn live(&self, node: usize, incarnation: u64) -> bool {
        self.up(node).is_some_and(|h| h.incarnation == incarnation)
    }

    fn deliver(&mut self, to: usize, from: usize, msg: Msg) -> Result<(), String> {
        match msg {
            Msg::Proposal(proposal) => {
                let (height, round) = (proposal.height, proposal.round);
                let valid = self.node(to).valid(&proposal.value);
                self.feed(to, Input::Proposal { proposal, valid })?;
                self.maybe_catch_up(to, from, height, round);
            }
            Msg::Vote(vote) => {
                let (height, round) = (vote.height, vote.round);
                self.feed(to, Input::Vote(vote))?;
                self.maybe_catch_up(to, from, height, round);
            }
            Msg::Inputs(inputs) => {
                let h = self.node(to);
                for i in inputs {
                    if !h.in_chain.contains(&i) {
                        h.pending.insert(i);
                    }
                }
            }
            Msg::Commits(ledgers) => {
                let mut stored = false;
                for (block, certificate) in ledgers {
                    if block.height == self.node(to).next_height() {
                        stored |= self.store(to, block, certificate)?;
                    }
                }
                let next = self.node(to).next_height();
                if stored && self.node(to).core.height() < next {
                    self.feed(to, Input::StartHeight { height: next, round: 0 })?;
                }
            }
        }
        Ok(())
    }

    /// A peer still at a height this node has stored gets the ledgers it misses; a peer in a
    /// lower round of this node's height gets `catch_up()`. Each at most once per TICK.
    fn maybe_catch_up(&mut self, node: usize, peer: usize, height: Height, round: Round) {
        if self.up(node).is_none() {
            return; // crashed while handling the message
        }
        let now = self.now;
        let h = self.node(node);
        let behind_in_height = height >= 1 && height < h.next_height();
        let behind_in_round = height == h.core.height() && round < h.core.round();
        if !behind_in_height && !behind_in_round {
            return;
        }
        let key = (peer, height, if behind_in_height { 0 } else { round });
        if h.catch_up_sent.get(&key).is_some_and(|t| now < t + TICK) {
            return;
        }
        h.catch_up_sent.insert(key, now);
        if behind_in_height {
            let from = (height - 1) as usize;
            let to = (from + CATCH_UP_BATCH).min(h.chain.len());
            let ledgers = h.chain[from..to].to_vec();
            self.send(node, peer, Msg::Commits(ledgers));
        } else {
            for message in h.core.catch_up() {
                self.send(node, peer, wire(message));
            }
        }
    }

    /// Builds this node's proposal from its pending inputs.
    fn build(&mut self, node: usize, height: Height, round: Round) -> Block {
        let h = self.node(node);
        let inputs: Vec<u64> = h.pending.iter().filter(|i| !h.in_chain.contains(i)).take(MAX_BATCH).copied().collect();
        Block { height, prev: h.tip(), round, proposer: node, inputs, salt: 0 }
    }

    /// Feeds one input to an honest machine and carries out its effects, as consensusd would.
    fn feed(&mut self, node: usize, input: Input<Block>) -> Result<(), String> {
        let mut work = vec![input];
        while let Some(input) = work.pop() {
            let effects = self.node(node).core.handle(input);
            let incarnation = self.node(node).incarnation;
            for effect in effects {
                if self.crash_mid_effects(node) {
                    // The rest of this list is lost with the process.
                    return Ok(());
                }
                match effect {
                    Effect::Persist(state) => self.node(node).persisted = Some(state),
                    Effect::BroadcastProposal(p) => {
                        let key = (node, p.height, p.round);
                        let id = p.value.id();
                        if let Some(old) = self.signed_proposals.insert(key, id)
                            && old != id
                        {
                            return Err(format!("honest node {node} proposed twice at {key:?}"));
                        }
                        self.values.insert(id, p.value.clone());
                        self.send_all(node, Msg::Proposal(p));
                    }
                    Effect::BroadcastVote(v) => {
                        let key = (node, v.height, v.round, v.kind);
                        if let Some(old) = self.signed_votes.insert(key, v.value)
                            && old != v.value
                        {
                            return Err(format!("honest node {node} equivocated: {key:?}"));
                        }
                        self.send_all(node, Msg::Vote(v));
                    }
                    Effect::ScheduleTimeout { timeout, after } => {
                        let at = self.now + after.as_millis() as Time;
                        self.at(at, Event::Timer { node, incarnation, timeout });
                    }
                    Effect::GetValue { height, round } => {
                        let h = self.node(node);
                        let has_work = h.pending.iter().any(|i| !h.in_chain.contains(i));
                        if has_work {
                            let value = self.build(node, height, round);
                            work.push(Input::ProposeValue { height, round, value });
                        } else {
                            self.at(self.now + HEARTBEAT, Event::Answer { node, incarnation, height, round });
                        }
                    }
                    Effect::ValidateProposal(proposal) => {
                        let valid = self.node(node).valid(&proposal.value);
                        work.push(Input::Proposal { proposal, valid });
                    }
                    Effect::Decide { value, certificate } => {
                        let height = certificate.height;
                        if value.id() != certificate.value_id {
                            return Err("Decide value does not match its certificate".into());
                        }
                        if self.store(node, value, certificate)? {
                            let delay = self.rng.below(5);
                            self.at(self.now + delay, Event::StartNext { node, incarnation, height: height + 1 });
                        }
                    }
                    Effect::DecideWithoutValue { certificate } => {
                        self.stats.without_value += 1;
                        let delay = self.rng.between(5, 30);
                        self.at(self.now + delay, Event::Fetched { node, incarnation, certificate });
                    }
                    Effect::Equivocation(evidence) => {
                        self.stats.equivocations_seen += 1;
                        let culprit = evidence.validator();
                        if self.honest[culprit].is_some() {
                            return Err(format!("honest node {culprit} accused: {evidence:?}"));
                        }
                        if self.stats.equivocations_seen <= EVIDENCE_CHECKS {
                            self.check_evidence(&evidence)?;
                        }
                    }
                }
            }
            let core = &self.node(node).core;
            if core.step() != Step::Decided {
                let round = core.round();
                self.stats.max_round = self.stats.max_round.max(round);
            }
        }
        Ok(())
    }

    /// With `crashes`, before `chaos_end`, rarely kills the node between two effects of one
    /// list (after a Persist, before its broadcast, say), to test that ordering.
    fn crash_mid_effects(&mut self, node: usize) -> bool {
        if !self.cfg.crashes || !self.chaotic() || !self.rng.chance(0.002) {
            return false;
        }
        let h = self.node(node);
        h.up = false;
        h.incarnation += 1;
        let back = (self.now + self.rng.between(50, 500)).min(self.chaos_end);
        self.at(back, Event::Recover { node });
        true
    }

    fn check_evidence(&self, evidence: &Evidence<Block>) -> Result<(), String> {
        let unl = &self.params.unl;
        let ok = match evidence {
            Evidence::ConflictingVotes { first, second } => {
                first.verify(&NET, unl).is_ok()
                    && second.verify(&NET, unl).is_ok()
                    && (first.kind, first.height, first.round, first.validator)
                        == (second.kind, second.height, second.round, second.validator)
                    && first.value != second.value
            }
            Evidence::ConflictingProposals { first, second } => {
                first.verify(&NET, unl).is_ok()
                    && second.verify(&NET, unl).is_ok()
                    && (first.height, first.round) == (second.height, second.round)
                    && first != second
            }
        };
        if ok { Ok(()) } else { Err(format!("bogus evidence {evidence:?}")) }
    }

    /// The host stores a decision: checks validity, agreement and exactly-once on the way.
    /// Returns false for a height already stored.
    fn store(&mut self, node: usize, block: Block, certificate: CommitCertificate) -> Result<bool, String> {
        let height = block.height;
        if height != self.node(node).next_height() {
            return Ok(false);
        }
        self.check_certificate(&block, &certificate)?;
        let h = self.node(node);
        if block.prev != h.tip() {
            return Err(format!("node {node}: ledger {height} does not link to ledger {}", height - 1));
        }
        let unique: BTreeSet<_> = block.inputs.iter().collect();
        if unique.len() != block.inputs.len() || block.inputs.iter().any(|i| h.in_chain.contains(i)) {
            return Err(format!("exactly-once: node {node} ledger {height} repeats an input: {:?}", block.inputs));
        }
        for i in &block.inputs {
            h.in_chain.insert(*i);
            h.pending.remove(i);
        }
        h.chain.push((block.clone(), certificate));
        match self.decided.get(&height) {
            Some(other) if other.id() != block.id() => {
                return Err(format!(
                    "agreement: node {node} decided {block:?} at height {height}, another node {other:?}"
                ));
            }
            Some(_) => {}
            None => {
                self.decided.insert(height, block);
            }
        }
        Ok(true)
    }

    /// Validity: q distinct in-range signers, each a valid precommit for exactly this
    /// (height, round, value). Each signature is checked once per run (signature checks are
    /// most of a run's cost); the first certificate of the run also goes through
    /// `CommitCertificate::verify` itself.
    fn check_certificate(&mut self, block: &Block, cert: &CommitCertificate) -> Result<(), String> {
        let id = block.id();
        if cert.value_id != id || cert.height != block.height {
            return Err(format!("certificate {cert:?} is not for {block:?}"));
        }
        let q = self.params.quorum;
        if self.good_signatures.is_empty() {
            cert.verify(&NET, &self.params.unl, q).map_err(|e| format!("validity: {e}"))?;
        }
        let signers: BTreeSet<_> = cert.signatures.iter().map(|(v, _)| *v).collect();
        if signers.len() != cert.signatures.len() || signers.len() < q || signers.iter().any(|v| *v >= self.cfg.n) {
            return Err(format!("validity: bad signer set in {cert:?}"));
        }
        for (validator, signature) in &cert.signatures {
            let key = (*validator, signature.to_bytes(), cert.height, cert.round, id);
            if self.good_signatures.contains(&key) {
                continue;
            }
            let vote = Vote {
                kind: VoteKind::Precommit,
                height: cert.height,
                round: cert.round,
                value: Some(id),
                validator: *validator,
                signature: *signature,
            };
            vote.verify(&NET, &self.params.unl).map_err(|e| format!("validity: {e}"))?;
            self.good_signatures.insert(key);
        }
        Ok(())
    }

    // ---- byzantine script -------------------------------------------------------------------

    fn byz_vote(&mut self, b: usize, kind: VoteKind, height: Height, round: Round, value: Option<Hash>, to: &[usize]) {
        let vote = Vote::sign(&NET, kind, height, round, value, b, &self.keys[b]);
        for &t in to {
            self.send(b, t, Msg::Vote(vote.clone()));
        }
    }

    /// A byzantine node prevotes and precommits every value it sees, sends nil votes to some
    /// nodes and value votes to others, proposes two different valid blocks to two halves of
    /// the network, and (with `push_rounds`) votes in rounds ahead.
    fn byzantine_receive(&mut self, b: usize, msg: &Msg) {
        let (height, round, value) = match msg {
            Msg::Proposal(p) => (p.height, p.round, Some(p.value.id())),
            Msg::Vote(v) => (v.height, v.round, v.value),
            Msg::Inputs(_) | Msg::Commits(_) => return,
        };
        let all: Vec<usize> = (0..self.cfg.n).collect();
        if value.is_some() && self.byzantine[b].voted.insert((height, round, value)) {
            self.byz_vote(b, VoteKind::Prevote, height, round, value, &all);
            self.byz_vote(b, VoteKind::Precommit, height, round, value, &all);
        }
        if self.byzantine[b].voted.insert((height, round, None)) && self.rng.chance(0.5) {
            let some: Vec<usize> = all.iter().copied().filter(|_| self.rng.chance(0.5)).collect();
            self.byz_vote(b, VoteKind::Prevote, height, round, None, &some);
            self.byz_vote(b, VoteKind::Precommit, height, round, None, &some);
        }
        let n = self.cfg.n as u64;
        let proposer = ((height % n + u64::from(round) % n) % n) as usize;
        if proposer == b && self.byzantine[b].proposed.insert((height, round)) {
            self.byzantine_propose(b, height, round);
        }
        if self.cfg.push_rounds && self.byzantine[b].pushed.insert((height, round)) && self.rng.chance(0.3) {
            let ahead = round.saturating_add(1 + self.rng.below(3) as Round);
            self.byz_vote(b, VoteKind::Prevote, height, ahead, None, &all);
        }
    }

    fn byzantine_propose(&mut self, b: usize, height: Height, round: Round) {
        let prev = if height == 1 {
            GENESIS
        } else {
            match self.decided.get(&(height - 1)) {
                Some(block) => block.id(),
                None => return,
            }
        };
        let used: BTreeSet<u64> =
            self.decided.range(..height).flat_map(|(_, block)| block.inputs.iter().copied()).collect();
        let open: Vec<u64> = self.submitted.iter().copied().filter(|i| !used.contains(i)).collect();
        let mut blocks = Vec::new();
        for salt in 1..=2u64 {
            let inputs: Vec<u64> = open.iter().copied().filter(|_| self.rng.chance(0.5)).take(MAX_BATCH).collect();
            let block = Block { height, prev, round, proposer: b, inputs, salt };
            self.values.insert(block.id(), block.clone());
            blocks.push(block);
        }
        let valid_round = None;
        for to in 0..self.cfg.n {
            let block = blocks[self.rng.below(2) as usize].clone();
            let p = Proposal::sign(&NET, height, round, block, valid_round, b, &self.keys[b]);
            self.send(b, to, Msg::Proposal(p));
        }
    }
}
