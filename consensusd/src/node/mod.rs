//! The node loop: one task that owns the consensus core, the ledger store, the mempool and the
//! chain position, and turns every event — a peer message, a user input, a timer, an
//! execution result — into the core's inputs and the core's effects into messages, disk writes
//! and timers (the host of STYLE.md's "pure consensus core").
//!
//! A height's life: the core decides a ledger → it is stored (fsync) → the executor runs it →
//! this node signs its result → `q` matching results certify it → outputs go to users → the
//! next height starts, carrying that certified result in its ledger.
//!
//! # Layout
//! - [`mempool`]: inputs waiting for a ledger.
//! - `effects`: applying the core's effects; proposing; judging proposals.
//! - `results`: execution outcomes, result votes, output delivery.
//! - `users`: the userd session, accepting inputs durably (group commit), acks.
//! - `catchup`: fetching and verifying ledgers this node missed.
//! - `sync`: starting a state copy from a peer and resuming after it.
//! - `recovery`: the core's crash-recovery state on disk.
//! - `membership`: hand-overs to new members, agreed in the chain.
//! - `signed_inputs`: the replay rules of user-signed inputs (HotPocket 0.6), their statuses.
//! - `proofs`: the UNL's signatures over each ledger's output root (HotPocket 0.6 proofs).
//! - `outcomes`: fetching from peers the agreed outputs this node could not compute.
//! - `tests`: the loop driven in-process, to replay an exact order of events.

mod catchup;
mod effects;
pub mod health;
mod membership;
pub mod mempool;
mod outcomes;
mod proofs;
mod recovery;
mod results;
mod signed_inputs;
mod sync;
#[cfg(test)]
mod tests;
mod users;

use crate::api::{ApiEvent, NodeStatus};
use crate::executor::{ExecReport, Executor};
use crate::metrics::NodeMetrics;
use crate::peer::{PeerEvent, PeerNet};
use crate::serving::{Offered, Request, Server};
use crate::wire::{self, PeerMessage, PeerStatus};
use ed25519_dalek::SigningKey;
use hp_consensus::{Consensus, Input, NetworkId, ResultCollector};
use hp_ledger::{Ledger, ResultSummary, Store};
use mempool::Mempool;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// Everything that reaches the node loop.
#[derive(Debug)]
pub enum Event {
    Peer(PeerEvent),
    /// From the local API: userd's session, status requests.
    Api(ApiEvent),
    Timeout(hp_consensus::Timeout),
    /// The heartbeat time of (height, round) has come: propose even with no inputs.
    Heartbeat {
        height: u64,
        round: u32,
    },
    Exec(ExecReport),
    StateSynced(Result<crate::state_sync::SyncReport, String>),
    /// A failed state copy's pause is over: try again.
    RetryStateSync,
    Tick,
}

/// Why the node could not be built from its store.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] hp_ledger::StoreError),
    #[error("result collector: {0}")]
    Params(#[from] hp_consensus::ParamsError),
    #[error("the recovery file or the serving thread: {0}")]
    Io(#[from] std::io::Error),
    #[error("the genesis UNL: {0}")]
    Unl(#[from] hp_ledger::chain::ChainError),
    #[error(
        "the last stored ledger ({seq}) names another membership than the chain hands it (hp.cfg's UNL, then every hand-over stored)"
    )]
    Membership { seq: u64 },
}

/// The node's fixed parameters.
pub struct NodeConfig {
    pub key: SigningKey,
    /// hp.cfg's UNL and quorum: the chain's first members. Those in force come from the chain
    /// ([`membership`]); hp.cfg's are never used past a hand-over.
    pub genesis: hp_ledger::Membership,
    /// [`hp_cfg::Config::network_id`]: what every signature is made and checked in.
    pub network: NetworkId,
    pub roundtime: Duration,
    /// What one ledger may carry: this node's proposals stop there, and it refuses to vote for
    /// a proposal past them (`max_ledger_input_bytes`, `max_ledger_inputs`, `max_ledger_users`).
    pub ledger_bounds: mempool::LedgerBounds,
    pub max_input_bytes: usize,
    /// Most [`Mempool::footprint`] this node admits its users' inputs into; peers' inputs are
    /// dropped past twice that.
    pub max_pending_input_bytes: usize,
    pub recovery_path: PathBuf,
    /// How each user's output divides into messages (`stdinfmt`): what the output proofs hash
    /// and userd delivers.
    pub output_framing: hp_ledger::Framing,
}

/// What the node loop drives, built by [`crate::run`].
pub struct NodeParts {
    pub store: Store,
    pub core: Consensus<Ledger>,
    pub peers: PeerNet,
    /// Runs closed ledgers, in order; the one owner of the connection to execd.
    pub executor: Executor,
    pub store_path: PathBuf,
    /// The loop's own queue, for timers and background tasks.
    pub events: mpsc::Sender<Event>,
    /// What the loop counts for `/metrics`.
    pub metrics: NodeMetrics,
}

impl From<ApiEvent> for Event {
    fn from(event: ApiEvent) -> Self {
        Event::Api(event)
    }
}

impl From<ExecReport> for Event {
    fn from(report: ExecReport) -> Self {
        Event::Exec(report)
    }
}

/// How often the loop looks around: status gossip, re-sends, catch-up. Idle cost is one wakeup
/// per tick.
pub const TICK: Duration = Duration::from_millis(250);
/// With no progress for this long, own consensus messages (small) go to every peer again: a
/// safety net only. What a peer can miss — frames sent before it (re)connected, or dropped
/// because it could not keep up — is sent to that peer alone when that happens (inputs
/// included); re-sending to everyone on a short timer, inputs above all, flooded a slow network
/// with what it already carried until nothing else got through.
const STALL_RESEND: Duration = Duration::from_secs(5);

pub struct Node {
    cfg: NodeConfig,
    store: Store,
    core: Consensus<Ledger>,
    results: ResultCollector,
    mempool: Mempool,
    peers: PeerNet,
    executor: Executor,
    events: mpsc::Sender<Event>,
    store_path: PathBuf,

    /// Who closes which ledger, and the hand-over the config in force asks for.
    membership: membership::Members,
    /// The last closed ledger (lcl) and, once certified, its result.
    last: Ledger,
    last_result: Option<ResultSummary>,
    /// When the chain last moved, to decide when re-sending is worth it.
    last_progress: Instant,
    /// The core asked for a value at (height, round) and has none yet.
    awaiting_value: Option<(u64, u32)>,

    /// How far this node's own execution of the chain has come.
    execution: results::Execution,
    /// Which ledgers' outputs went to users, and which are held back.
    delivery: results::Delivery,
    /// The userd session and who is connected, here and at the peers.
    users: users::Users,
    /// The core's crash-recovery state.
    recovery: recovery::Recovery,
    /// A state copy from a peer.
    state_copy: sync::StateCopy,
    /// The UNL's signatures over recent ledgers' output roots.
    proofs: proofs::OutputProofs,

    peer_status: HashMap<usize, PeerStatus>,
    catchup: catchup::CatchUp,
    ticks: u64,
    /// Answers peers' requests off this loop, within a budget per peer.
    server: Server,
    /// How proposals reach this node (HotPocket's `proposal` health events).
    health: health::HealthTracker,
    metrics: NodeMetrics,
}

impl Node {
    /// Builds the node from its store; starts nothing yet.
    pub fn new(cfg: NodeConfig, parts: NodeParts) -> Result<Self, StartError> {
        let NodeParts { store, core, peers, executor, store_path, events, metrics } = parts;
        let record = store.last()?;
        metrics.started_at(record.ledger.seq, record.ledger.time_ms);
        let last_result = record.result_summary();
        let own_pending = store.pending_inputs(cfg.key.verifying_key().to_bytes())?;
        let mut mempool = Mempool::default();
        for input in own_pending {
            mempool.insert(input);
        }
        let epochs = store.epochs(cfg.genesis.clone())?;
        let seq = record.ledger.seq;
        if seq > 0 && record.ledger.config_hash != epochs.members_at(seq).hash() {
            return Err(StartError::Membership { seq });
        }
        let me_key = cfg.key.verifying_key().to_bytes();
        let closing_last = epochs.at(seq.max(1));
        let me_last = closing_last.members.position(&me_key);
        let results =
            ResultCollector::new(closing_last.members.unl().len(), closing_last.members.quorum(), me_last, seq.max(1))?;
        let membership = membership::Members {
            results_epoch: closing_last.first_seq,
            // The core is built with hp.cfg's members; it switches when it starts a height.
            core_epoch: 1,
            epochs,
            config_after: None,
        };
        peers.set_epochs(membership.epochs.clone());
        peers.set_known_through(seq + 1);
        let delivery = results::Delivery::at_start(&store, &record.ledger, last_result.is_some());
        let recovery = recovery::Recovery::open(&cfg.recovery_path, &cfg.network, &membership.epochs)?;
        let server = Server::start(store_path.clone(), executor.execd(), peers.clone())?;
        Ok(Self {
            execution: results::Execution::at_start(record.ledger.seq),
            delivery,
            users: users::Users::default(),
            recovery,
            state_copy: sync::StateCopy::default(),
            proofs: proofs::OutputProofs::default(),
            server,
            store_path,
            membership,
            last: record.ledger,
            last_result,
            cfg,
            store,
            core,
            results,
            mempool,
            peers,
            executor,
            events,
            last_progress: Instant::now(),
            awaiting_value: None,
            peer_status: HashMap::new(),
            health: health::HealthTracker::default(),
            catchup: catchup::CatchUp::default(),
            ticks: 0,
            metrics,
        })
    }

    /// Connected peers that are UNL members (an observer's link is not one): what status,
    /// health and `peers_connected` count.
    fn validator_links(&self) -> usize {
        self.peers.connected().into_iter().filter(|link| self.is_member_link(*link)).count()
    }

    /// Whether link `link` is to a member of the height being run.
    fn is_member_link(&self, link: usize) -> bool {
        self.peers.key_of(link).is_some_and(|key| self.running_members().contains(&key))
    }

    fn me_bytes(&self) -> [u8; 32] {
        self.cfg.key.verifying_key().to_bytes()
    }

    /// Whether the last closed ledger's result is certified (genesis needs none).
    fn last_certified(&self) -> bool {
        self.last.seq == 0 || self.last_result.is_some()
    }

    /// Runs until shutdown.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Event>, shutdown: CancellationToken) {
        self.start();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => Event::Tick,
                e = rx.recv() => match e { Some(e) => e, None => break },
            };
            self.handle(event);
            // Take everything already queued before flushing accepted inputs, so one fsync
            // covers as many inputs as arrived together (group commit).
            let mut drained = 0;
            while drained < 1024 {
                match rx.try_recv() {
                    Ok(e) => self.handle(e),
                    Err(_) => break,
                }
                drained += 1;
            }
            self.flush_submits();
        }
        info!(lcl_seq = self.last.seq, "consensus loop stopped");
    }

    /// Resumes where the store and the recovery file say this node stood.
    fn start(&mut self) {
        info!(lcl_seq = self.last.seq, lcl_hash = %hex::encode(self.last.hash()), "chain loaded");
        if self.last.seq > 0 {
            // Re-run (or fetch the recorded result of) the last ledger: execd is idempotent.
            self.request_execution(self.last.clone());
        }
        if self.last_certified() {
            self.start_height(self.last.seq + 1);
        }
        self.broadcast_status();
    }

    fn start_height(&mut self, height: u64) {
        if self.core.height() >= height && self.core.step() != hp_consensus::Step::Unstarted {
            return;
        }
        self.enter_epoch_of(height);
        // Only the state saved by a previous run matters; this run's own is in the core.
        let input = match self.recovery.resume.take() {
            Some(state) if state.height == height => {
                info!(height, round = state.round + 1, "resuming the height after a restart");
                Input::Resume(state)
            }
            _ => Input::StartHeight { height, round: 0 },
        };
        self.awaiting_value = None;
        self.feed(input);
    }

    /// Feeds the core one input and carries out its effects.
    fn feed(&mut self, input: Input<Ledger>) {
        let effects = self.core.handle(input);
        self.apply(effects);
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Peer(PeerEvent::Connected { validator }) => {
                debug!(peer = validator, "peer up");
                self.resync_peer(validator);
            }
            Event::Peer(PeerEvent::Disconnected { validator }) => {
                self.users.of_peers.remove(&validator);
            }
            Event::Peer(PeerEvent::Message { validator, message, epoch, arrived }) => {
                if let Some(height) = wire::consensus_height(&message)
                    && self.membership.epochs.at(height).first_seq != epoch
                {
                    debug!(
                        peer = validator,
                        height, "a message checked against other members than those of its height; dropped"
                    );
                    return;
                }
                self.on_peer_message(validator, message, arrived)
            }
            Event::Api(ApiEvent::SessionOpened { session, to_userd }) => self.on_session_opened(session, to_userd),
            Event::Api(ApiEvent::FromUserd { session, messages }) => {
                for message in messages {
                    self.on_session_message(session, message);
                }
            }
            Event::Api(ApiEvent::SessionClosed { session }) => self.on_session_closed(session),
            Event::Api(ApiEvent::Status(reply)) => {
                let _ = reply.send(self.status());
            }
            Event::Timeout(t) => self.feed(Input::Timeout(t)),
            Event::Heartbeat { height, round } => {
                if self.awaiting_value == Some((height, round)) {
                    self.try_propose(true);
                }
            }
            Event::Exec(ExecReport::Executed(done)) => self.on_executed(done),
            Event::Exec(ExecReport::NeedsStateSync { seq, reason }) => {
                error!(seq, %reason, "execd cannot run the chain's next ledger; copying the state from a peer");
                self.start_state_sync();
            }
            Event::Exec(ExecReport::State { state_hash }) => {
                // Until this node executes again, its status shows execd's actual state.
                if self.execution.state_hash == [0u8; 32] {
                    self.execution.state_hash = state_hash;
                }
            }
            Event::Exec(ExecReport::AlreadyApplied { seq, config }) => {
                self.note_config(seq, config);
                self.execution.uncertified.remove(&seq);
                self.execution.done_up_to = self.execution.done_up_to.max(seq);
            }
            Event::StateSynced(result) => self.on_state_synced(result),
            Event::RetryStateSync => self.start_state_sync(),
            Event::Tick => self.on_tick(),
        }
    }

    fn on_peer_message(&mut self, from: usize, message: PeerMessage, arrived: Instant) {
        match message {
            PeerMessage::Inputs(batch, opened) => {
                let mut dropped = 0usize;
                for (input, opened) in batch.inputs.into_iter().zip(opened) {
                    if input.data.len() > self.cfg.max_input_bytes || self.mempool.contains(&input.id) {
                        continue;
                    }
                    // Overload: the origin keeps what is dropped here and proposes it itself.
                    if self.mempool.footprint() >= 2 * self.cfg.max_pending_input_bytes {
                        dropped += 1;
                        continue;
                    }
                    match self.store.is_committed(&input.id) {
                        Ok(false) => {
                            match opened {
                                Some(opened) => self.mempool.insert_opened(input, opened),
                                None => self.mempool.insert(input),
                            };
                        }
                        Ok(true) => {}
                        Err(e) => warn!(error = %e, "cannot check input"),
                    }
                }
                if dropped > 0 {
                    debug!(peer = from, dropped, "pending inputs are past the limit; a peer's inputs dropped");
                }
                self.try_propose(false);
            }
            PeerMessage::Proposal(proposal) => {
                if proposal.height == self.last.seq + 1 {
                    let made_ms = proposal.valid_round.is_none().then_some(proposal.value.time_ms);
                    let id = (proposal.round, proposal.proposer);
                    self.health.proposal(proposal.height, id, made_ms, arrived, effects::now_ms());
                }
                let valid = proposal.height != self.last.seq + 1 || self.validate(&proposal.value);
                self.feed(Input::Proposal { proposal, valid });
            }
            PeerMessage::Vote(vote) => self.feed(Input::Vote(vote)),
            PeerMessage::Result(vote, root_sig) => {
                if let Some(signature) = root_sig {
                    self.on_output_root_sig(vote.validator, vote.height, *signature);
                }
                self.on_result_vote(vote)
            }
            PeerMessage::Status(status) => self.on_peer_status(from, status),
            PeerMessage::LedgerRequest { request_id, from_seq, max_count } => {
                self.offer_request(from, Request::Ledgers { request_id, from_seq, max_count })
            }
            PeerMessage::LedgerReply { request_id, records } => self.on_ledger_reply(from, request_id, records),
            PeerMessage::StateManifestRequest(r) => {
                self.offer_request(from, Request::StateManifest { request_id: r.request_id })
            }
            PeerMessage::StateChunkRequest(r) => self.offer_request(from, Request::StateChunk(r)),
            reply @ (PeerMessage::StateManifestReply(_) | PeerMessage::StateChunkReply(_)) => {
                if !self.state_copy.replies.deliver(from, reply) {
                    debug!(peer = from, "a state reply nobody asked this peer for; dropped");
                }
            }
            PeerMessage::OutcomeRequest { seq } => self.offer_request(from, Request::Outcome { seq }),
            PeerMessage::OutcomeReply { seq, outcome } => self.on_outcome_reply(from, seq, outcome),
            // The peer layer hands NPL to its own task ([`crate::npl`]); it never gets here.
            PeerMessage::Npl(_) => {}
        }
    }

    /// Hands a peer's request to the server; one over the peer's budget, or while every worker
    /// is busy, is dropped and counted (the asker asks again after its timeout).
    fn offer_request(&mut self, from: usize, request: Request) {
        let offered = self.server.offer(from, request, Instant::now());
        if offered != Offered::Queued {
            let refused_total = self.peers.stats().refused_requests.fetch_add(1, Ordering::Relaxed) + 1;
            debug!(peer = from, ?offered, refused_total, "a peer's request dropped");
        }
    }

    fn on_tick(&mut self) {
        self.update_gauges();
        self.broadcast_status();
        self.maybe_catch_up();
        self.ask_for_outcomes();
        self.ticks += 1;
        for validator in self.peers.take_lossy() {
            debug!(peer = validator, "frames to this peer were dropped; sending what matters again");
            self.resync_peer(validator);
        }
        if self.last_progress.elapsed() > STALL_RESEND {
            for validator in self.peers.connected() {
                self.resend_consensus_to(validator);
            }
            self.last_progress = Instant::now();
        }
    }

    /// Sends one peer what it may have missed: this node's accepted inputs that no ledger
    /// carries yet, and its consensus messages.
    fn resync_peer(&mut self, validator: usize) {
        self.send_own_inputs_to(validator);
        self.resend_consensus_to(validator);
    }

    /// Sends one peer this node's status, its proposal and votes of the current round, and its
    /// result vote.
    fn resend_consensus_to(&mut self, validator: usize) {
        self.send_status_to(validator);
        for message in self.core.rebroadcast() {
            match message {
                hp_consensus::Message::Proposal(p) => self.peers.send(validator, &wire::proposal(&p)),
                hp_consensus::Message::Vote(v) => self.peers.send(validator, &wire::vote(&v)),
            }
        }
        if let Some(vote) = self.own_result_vote() {
            let root_sig = self.own_root_sig().filter(|(seq, _)| *seq == vote.height).map(|(_, s)| s);
            self.peers.send(validator, &wire::result_with_root(&vote, root_sig.as_ref()));
        }
    }

    fn status_message(&self) -> PeerStatus {
        PeerStatus {
            lcl_seq: self.last.seq,
            lcl_hash: self.last.hash(),
            height: self.core.height(),
            round: self.core.round(),
            users: self.users.local.iter().copied().collect(),
        }
    }

    fn broadcast_status(&mut self) {
        self.peers.broadcast(&wire::status(&self.status_message()));
    }

    fn send_status_to(&mut self, validator: usize) {
        self.peers.send(validator, &wire::status(&self.status_message()));
    }

    /// The metrics that are a level rather than a count, brought up to date at every tick.
    fn update_gauges(&self) {
        let m = &self.metrics;
        let level = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        m.peers_connected.set(level(self.validator_links()));
        m.pending_inputs.set(level(self.mempool.len()));
        m.pending_input_bytes.set(level(self.mempool.bytes()));
        m.catchup_in_progress.set(i64::from(self.catchup.behind(self.last.seq)));
    }

    fn status(&self) -> NodeStatus {
        NodeStatus {
            lcl_seq: self.last.seq,
            lcl_hash: self.last.hash(),
            state_hash: self.execution.state_hash,
            peers: self.validator_links(),
            users: self.users.local.len(),
            in_sync: !self.catchup.behind(self.last.seq),
            since_close: self.metrics.since_close(),
            validator: self.running_members().contains(&self.me_bytes()),
            members: self.running_members().clone(),
            proposal_health: self.health.last(),
            roundtime: self.cfg.roundtime,
            contract_version: self.membership.config_after.as_ref().and_then(|(_, config)| config.version.clone()),
        }
    }
}
