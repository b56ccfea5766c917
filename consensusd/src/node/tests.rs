//! The node loop driven in-process: a real store in a temporary folder, no peer sockets, no
//! execd. A test plays the executor (it sees the ledgers the node asks to run and answers with
//! `Event::Executed`), the peers (their signed messages go straight to `handle`) and userd (a
//! session whose channel the test reads), so that an order of events a real cluster produces
//! only now and then can be replayed exactly.

#![allow(clippy::expect_used)]

use super::mempool::LedgerBounds;
use super::{Event, Node, NodeConfig, NodeParts};
use crate::api::{ApiEvent, FromUserd, ToUserd};
use crate::executor::{AgreedConfig, ExecReport, Executed, Executor};
use crate::peer::{PeerConfig, PeerEvent, PeerNet};
use crate::wire::PeerMessage;
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use hp_consensus::{Consensus, NetworkId, Params, ResultVote};
use hp_ledger::{ExitKind, Ledger, LedgerBody, LedgerRecord, Outcome, ResultSummary, Store};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const VALIDATORS: usize = 4;
const QUORUM: usize = 3;
/// The node under test is validator 0.
const ME: usize = 0;
const USER: [u8; 32] = [7u8; 32];
const LEDGER_BOUNDS: LedgerBounds = LedgerBounds { bytes: 1 << 20, inputs: 4, users: 3 };
const NETWORK: NetworkId = NetworkId([0x4e; 32]);

struct Harness {
    node: Node,
    keys: Vec<SigningKey>,
    genesis: Ledger,
    /// Ledgers the node handed to its executor.
    to_run: mpsc::UnboundedReceiver<Ledger>,
    /// What the node sends userd.
    to_userd: mpsc::Receiver<ToUserd>,
    _events: mpsc::Receiver<Event>,
    _dir: tempfile::TempDir,
    _shutdown: CancellationToken,
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys: Vec<SigningKey> = (0..VALIDATORS).map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32])).collect();
        let unl: Vec<[u8; 32]> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
        let unl_keys: Vec<_> = keys.iter().map(|k| k.verifying_key()).collect();
        let network = NETWORK;
        let genesis = Ledger::genesis(&unl, &network);
        let members = hp_ledger::Membership::new(unl.clone(), QUORUM).expect("members");
        let store_path = dir.path().join("ledger.db");
        let store = Store::open(&store_path, &genesis).expect("store");
        let params = Params {
            unl: unl_keys.clone(),
            quorum: QUORUM,
            timeouts: crate::timeouts(Duration::from_secs(1)),
            network,
        };
        let core = Consensus::new(params, Some(ME), keys[ME].clone()).expect("core");
        let shutdown = CancellationToken::new();
        let (peer_tx, _peer_rx) = mpsc::channel(16);
        let peers = PeerNet::start(
            PeerConfig {
                key: keys[ME].clone(),
                unl: unl.clone(),
                epochs: hp_ledger::Epochs::new(members.clone()),
                known_through: 0,
                network_id: network.0,
                listen: Vec::new(),
                peers: Vec::new(),
                npl: None,
            },
            peer_tx,
            shutdown.clone(),
        )
        .await
        .expect("peer net without sockets");
        let (executor, to_run) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::channel(1024);
        let executor = Executor::from_parts(executor, &dir.path().join("no-execd.sock"));
        let cfg = NodeConfig {
            key: keys[ME].clone(),
            genesis: members,
            network,
            roundtime: Duration::from_secs(1),
            ledger_bounds: LEDGER_BOUNDS,
            max_input_bytes: 1 << 16,
            max_pending_input_bytes: 1 << 20,
            recovery_path: dir.path().join("consensus.state"),
            output_framing: hp_ledger::Framing::Whole,
        };
        let parts = NodeParts { store, core, peers, executor, store_path, events, metrics: Default::default() };
        let mut node = Node::new(cfg, parts).expect("node");
        // userd connects with one user and has seen no outputs yet.
        let (session_tx, to_userd) = mpsc::channel(1024);
        node.handle(Event::Api(ApiEvent::SessionOpened { session: 1, to_userd: session_tx }));
        let snapshot = FromUserd::Snapshot { users: vec![USER], delivered_through: 0 };
        node.handle(Event::Api(ApiEvent::FromUserd { session: 1, messages: vec![snapshot] }));
        Harness { node, keys, genesis, to_run, to_userd, _events: events_rx, _dir: dir, _shutdown: shutdown }
    }

    /// Closes ledger `seq` on the node (as a decision of the core would) and returns it.
    fn decide(&mut self, seq: u64, prev: &Ledger, prev_result: Option<ResultSummary>) -> Ledger {
        self.decide_handing_over(seq, prev, prev_result, None)
    }

    /// [`Harness::decide`] for a ledger that hands over to `next`.
    fn decide_handing_over(
        &mut self,
        seq: u64,
        prev: &Ledger,
        prev_result: Option<ResultSummary>,
        next: Option<hp_ledger::Membership>,
    ) -> Ledger {
        let ledger = Ledger::new(LedgerBody {
            seq,
            prev_hash: prev.hash(),
            time_ms: prev.time_ms + 1,
            inputs: Vec::new(),
            users: vec![USER],
            prev_result,
            config_hash: self.node.members().hash(),
            next_membership: next,
        });
        self.node.on_decide(LedgerRecord { ledger: ledger.clone(), commit: None, result: None });
        let asked = self.to_run.try_recv().expect("the node asks to run a decided ledger");
        assert_eq!(asked.seq, seq);
        ledger
    }

    /// The executor reports its run of `ledger`, the config in force unchanged.
    fn executed(&mut self, ledger: &Ledger, run: &Run) {
        let config = self.node.members().clone();
        self.executed_with_config(ledger, run, config);
    }

    /// The executor reports its run of `ledger`, after which the config names `members`.
    fn executed_with_config(&mut self, ledger: &Ledger, run: &Run, members: hp_ledger::Membership) {
        self.executed_with(ledger, run, AgreedConfig { members, roundtime: None, version: None });
    }

    /// The executor reports its run of `ledger`, after which `config` is in force.
    fn executed_with(&mut self, ledger: &Ledger, run: &Run, config: AgreedConfig) {
        self.node.handle(Event::Exec(ExecReport::Executed(Executed {
            seq: ledger.seq,
            ledger_hash: ledger.hash(),
            state_hash: run.state_hash,
            outcome: run.outcome.clone(),
            config: Some(config),
        })));
    }

    /// Validator `from` (a peer) sends its result vote for ledger `seq`.
    fn peer_result_vote(&mut self, from: usize, seq: u64, run: &Run) {
        let vote = ResultVote::sign(&NETWORK, seq, run.state_hash, run.outcome.hash(), from, &self.keys[from]);
        let message = PeerMessage::Result(vote, None);
        self.node.handle(Event::Peer(PeerEvent::Message {
            validator: from,
            message,
            epoch: 1,
            arrived: Instant::now(),
        }));
    }

    /// The output batches userd received so far: (ledger, outputs of the user).
    fn batches_to_userd(&mut self) -> Vec<(u64, Vec<Bytes>)> {
        let mut batches = Vec::new();
        while let Ok(message) = self.to_userd.try_recv() {
            if let ToUserd::Outputs { seq, outputs, .. } = message {
                batches
                    .push((seq, outputs.into_iter().filter(|(user, _)| *user == USER).map(|(_, data)| data).collect()));
            }
        }
        batches
    }
}

/// One ledger's run, as every honest node computes it.
struct Run {
    state_hash: [u8; 32],
    outcome: Outcome,
}

impl Run {
    fn of(seq: u64) -> Self {
        Run {
            state_hash: [seq as u8; 32],
            outcome: Outcome {
                exit: ExitKind::Code(0),
                outputs: vec![(USER, Bytes::from(format!("output of {seq}")))],
            },
        }
    }

    fn summary(&self) -> ResultSummary {
        ResultSummary { state_hash: self.state_hash, outputs_hash: self.outcome.hash() }
    }
}

/// Found by `hosts::a_host_whose_link_goes_down_falls_behind_and_catches_up_when_it_returns`:
/// a node ran ledger 137, its link went down before 137's result reached it, yet peers' votes
/// for 138 did (the collector accepts the next height). Certifying 138 dropped the node's
/// uncertified run of 137, so when 137's certificate came (by catch-up) there was nothing to
/// release: a user connected there never got their output, and nothing was logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_certified_ahead_of_the_chain_does_not_drop_the_outputs_of_the_last_ledger() {
    let mut h = Harness::new().await;
    let genesis = h.genesis.clone();
    let (run1, run2) = (Run::of(1), Run::of(2));

    let ledger1 = h.decide(1, &genesis, None);
    h.executed(&ledger1, &run1);
    // Peers certify ledger 2 before this node heard a quorum for ledger 1.
    for peer in 1..=3 {
        h.peer_result_vote(peer, 2, &run2);
    }
    assert_eq!(h.batches_to_userd(), Vec::new(), "nothing is released before ledger 1 is certified");
    // Ledger 1's certificate arrives: the node's own run of it is released.
    for peer in 1..=2 {
        h.peer_result_vote(peer, 1, &run1);
    }
    assert_eq!(h.batches_to_userd(), vec![(1, vec![Bytes::from("output of 1")])]);

    // Ledger 2 closes here too; its certificate, heard earlier, releases it once run.
    let ledger2 = h.decide(2, &ledger1, Some(run1.summary()));
    h.executed(&ledger2, &run2);
    assert_eq!(h.batches_to_userd(), vec![(2, vec![Bytes::from("output of 2")])]);
    let stored = h.node.store.get(2).expect("read ledger 2").expect("ledger 2 stored");
    assert_eq!(stored.result.map(|c| c.height), Some(2), "ledger 2's certificate is stored with it");
}

/// A ledger's root signatures (HotPocket 0.6 proofs) are stored with its outputs: outputs handed
/// over again after consensusd restarts carry the same verified proof, not an empty one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_output_proof_survives_losing_the_signatures_held_in_memory() {
    use ed25519_dalek::Signer;
    let mut h = Harness::new().await;
    let genesis = h.genesis.clone();
    let run1 = Run::of(1);
    let ledger1 = h.decide(1, &genesis, None);
    h.executed(&ledger1, &run1);
    let root = hp_ledger::output_proof::outcome_root(&run1.outcome, hp_ledger::Framing::Whole).expect("a root");
    for peer in 1..=2 {
        let vote = ResultVote::sign(&NETWORK, 1, run1.state_hash, run1.outcome.hash(), peer, &h.keys[peer]);
        let signature = Box::new(h.keys[peer].sign(&root).to_bytes());
        let message = PeerMessage::Result(vote, Some(signature));
        h.node.handle(Event::Peer(PeerEvent::Message { validator: peer, message, epoch: 1, arrived: Instant::now() }));
    }
    assert_eq!(h.batches_to_userd(), vec![(1, vec![Bytes::from("output of 1")])]);
    let signers = |proof: &crate::api::OutputsProof| {
        let mut keys: Vec<[u8; 32]> = proof.signatures.iter().map(|(k, _)| *k).collect();
        keys.sort();
        keys
    };
    let before = h.node.outputs_proof(1).expect("a proof");
    assert_eq!(before.signatures.len(), 3, "own and two peers' signatures");
    // What a restart loses: the signatures held in memory.
    h.node.proofs = super::proofs::OutputProofs::default();
    let after = h.node.outputs_proof(1).expect("a proof after the restart");
    assert_eq!(signers(&after), signers(&before));
    // A signature that does not verify over the root is not shown.
    h.node.proofs.insert(1, 3, h.keys[3].sign(b"another root").to_bytes(), 1);
    let shown = h.node.outputs_proof(1).expect("a proof");
    assert_eq!(signers(&shown), signers(&before), "a bad signature was shown");
}

/// A faulty proposer puts an input under another node's name (or other bytes under a real
/// input's identity): an honest node refuses to vote for the ledger, since the origin's signature
/// does not cover it. The same input as its origin signed it is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_with_an_input_its_origin_did_not_sign_is_refused() {
    let h = Harness::new().await;
    let genesis = h.genesis.clone();
    let proposal = |inputs: Vec<hp_ledger::Input>| {
        Ledger::new(LedgerBody {
            seq: 1,
            prev_hash: genesis.hash(),
            time_ms: genesis.time_ms + 1,
            inputs,
            users: vec![USER],
            prev_result: None,
            config_hash: h.node.members().hash(),
            next_membership: None,
        })
    };
    let real = hp_ledger::Input::sign(&NETWORK, 77, USER, Bytes::from_static(b"pay 10"), &h.keys[2]);
    assert!(h.node.validate(&proposal(vec![real.clone()])), "an input signed by its origin is refused");
    // Made up by validator 1 under validator 2's name.
    let made_up =
        hp_ledger::Input { id: real.id, ..hp_ledger::Input::sign(&NETWORK, 77, USER, real.data.clone(), &h.keys[1]) };
    assert!(!h.node.validate(&proposal(vec![made_up])), "an input its origin never signed was accepted");
    // Other bytes under the real input's identity.
    let altered = hp_ledger::Input { data: Bytes::from_static(b"pay 99"), ..real.clone() };
    assert!(!h.node.validate(&proposal(vec![altered])), "altered bytes under a signed identity were accepted");
    // Signed by the origin, but for another network.
    let elsewhere = hp_ledger::Input::sign(&NetworkId([1; 32]), 78, USER, Bytes::from_static(b"pay 10"), &h.keys[2]);
    assert!(!h.node.validate(&proposal(vec![elsewhere])), "an input of another network was accepted");
}

impl Harness {
    /// Validator `from` (a peer) announces that it holds ledgers up to `lcl_seq`.
    fn peer_status(&mut self, from: usize, lcl_seq: u64) {
        let status =
            crate::wire::PeerStatus { lcl_seq, lcl_hash: [0xee; 32], height: lcl_seq + 1, round: 0, users: Vec::new() };
        let message = PeerMessage::Status(status);
        self.node.handle(Event::Peer(PeerEvent::Message {
            validator: from,
            message,
            epoch: 1,
            arrived: Instant::now(),
        }));
    }

    /// Closes ledger `seq` on top of `prev` and certifies its run with two peers' votes.
    fn close_and_certify(&mut self, seq: u64, prev: &Ledger, prev_result: Option<ResultSummary>) -> Ledger {
        let ledger = self.decide(seq, prev, prev_result);
        let run = Run::of(seq);
        self.executed(&ledger, &run);
        for peer in 1..=2 {
            self.peer_result_vote(peer, seq, &run);
        }
        ledger
    }
}

/// Issue 16: a status is not signed, so one UNL peer announcing a chain far ahead (2^40) must
/// not change what a node believes. It used to: a node that started with an empty chain took
/// the claim as "decided before this node joined" and held back its users' outputs of every
/// ledger up to 2^40 — for good, since nothing lowered the mark again — and reported itself
/// out of sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_announcing_a_far_off_chain_does_not_hold_back_a_fresh_nodes_outputs() {
    let mut h = Harness::new().await;
    let genesis = h.genesis.clone();
    // A brand-new network: the honest peers are at genesis too; the liar claims 2^40.
    h.peer_status(1, 0);
    h.peer_status(2, 0);
    h.peer_status(3, 1 << 40);

    let ledger1 = h.close_and_certify(1, &genesis, None);
    assert_eq!(h.batches_to_userd(), vec![(1, vec![Bytes::from("output of 1")])]);

    h.peer_status(1, 1);
    h.peer_status(2, 1);
    h.peer_status(3, 1 << 40);
    let ledger2 = h.close_and_certify(2, &ledger1, Some(Run::of(1).summary()));
    assert_eq!(h.batches_to_userd(), vec![(2, vec![Bytes::from("output of 2")])]);
    h.close_and_certify(3, &ledger2, Some(Run::of(2).summary()));
    assert_eq!(h.batches_to_userd(), vec![(3, vec![Bytes::from("output of 3")])]);

    assert!(h.node.status().in_sync, "one peer's claim made the node believe it is behind");
    // Catch-up may still ask the liar — it is the only one claiming more — but nothing waits
    // for its answer.
    assert_eq!(h.node.catchup.asking(), Some(3));
}

/// The (f+1)-th highest claim is believed: with two honest peers ahead, the node believes it is
/// behind, and asks one of them rather than the peer claiming the most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_asks_a_peer_whose_claim_others_back_before_one_claiming_more() {
    let mut h = Harness::new().await;
    h.peer_status(3, 1 << 40);
    assert!(h.node.status().in_sync, "one claim alone is not believed");
    h.peer_status(1, 5);
    h.peer_status(2, 7);
    assert!(!h.node.status().in_sync, "two peers ahead: the node is behind");
    // The request went to the liar when it spoke first (it was the only one ahead); once that
    // times out or fails, the honest peer closest to the corroborated tip comes first.
    h.node.catchup.forget_inflight();
    h.node.maybe_catch_up();
    assert_eq!(h.node.catchup.asking(), Some(2), "asked the peer claiming 2^40 before those backed by others");
}

/// An input gossiped by validator 1 for `user`, signed by it.
fn peer_input(h: &Harness, nonce: u64, user: [u8; 32]) -> hp_ledger::Input {
    hp_ledger::Input::sign(&NETWORK, nonce, user, Bytes::from(format!("input {nonce}")), &h.keys[1])
}

/// A proposal for ledger 1 on genesis with these inputs and connected users.
fn proposal_on_genesis(h: &Harness, inputs: Vec<hp_ledger::Input>, users: Vec<[u8; 32]>) -> Ledger {
    Ledger::new(LedgerBody {
        seq: 1,
        prev_hash: h.genesis.hash(),
        time_ms: super::effects::now_ms().max(h.genesis.time_ms + 1),
        inputs,
        users,
        prev_result: None,
        config_hash: h.node.members().hash(),
        next_membership: None,
    })
}

/// Issue 19: a ledger names the members that close it, and hands over only to the members the
/// agreed config names: a proposal naming other members, or handing over to any while the
/// config names those in force, gets no vote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_naming_other_members_or_handing_over_is_refused() {
    let h = Harness::new().await;
    let good = proposal_on_genesis(&h, vec![], vec![USER]);
    assert!(h.node.validate(&good), "a proposal naming the members in force is refused");
    let mut body = (*good).clone();
    body.config_hash[0] ^= 1;
    assert!(!h.node.validate(&Ledger::new(body)), "a proposal naming other members was accepted");
    let mut body = (*good).clone();
    let fewer = h.node.members().unl()[..1].to_vec();
    body.next_membership = Some(hp_ledger::Membership::new(fewer, 1).expect("membership"));
    assert!(!h.node.validate(&Ledger::new(body)), "a hand-over this node did not agree to was accepted");
}

/// Issue 16: no poison ledger. A proposal past the bounds every node shares — inputs, users
/// (connected users and senders together: each gets pipes when the contract runs), input size —
/// gets no vote, however it was built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_past_the_ledger_bounds_is_refused() {
    let h = Harness::new().await;
    let user = |i: u8| [100 + i; 32];
    let inputs = |n: u64| (1..=n).map(|nonce| peer_input(&h, nonce, USER)).collect::<Vec<_>>();
    assert!(h.node.validate(&proposal_on_genesis(&h, inputs(LEDGER_BOUNDS.inputs as u64), vec![USER])));
    assert!(!h.node.validate(&proposal_on_genesis(&h, inputs(LEDGER_BOUNDS.inputs as u64 + 1), vec![USER])));

    let users = |n: u8| (0..n).map(user).collect::<Vec<_>>();
    assert!(h.node.validate(&proposal_on_genesis(&h, Vec::new(), users(3))));
    assert!(!h.node.validate(&proposal_on_genesis(&h, Vec::new(), users(4))), "four connected users");
    assert!(!h.node.validate(&proposal_on_genesis(&h, Vec::new(), vec![USER; 4])), "one user listed four times");
    // Two connected users and two other users' inputs: four users for the contract.
    let mixed = vec![peer_input(&h, 1, user(8)), peer_input(&h, 2, user(9))];
    assert!(!h.node.validate(&proposal_on_genesis(&h, mixed, users(2))), "senders count as users");

    let mut big = peer_input(&h, 1, USER);
    big.data = Bytes::from(vec![0u8; h.node.cfg.max_input_bytes + 1]);
    assert!(!h.node.validate(&proposal_on_genesis(&h, vec![big], vec![USER])), "an input over pubmaxsize");
}

/// The node's own proposals respect the same bounds: inputs stop at the bound (the rest waits
/// for the next ledger), and a peer announcing a thousand made-up users cannot push this node's
/// own user out of the ledger or the ledger past `max_ledger_users`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_proposals_stop_at_the_ledger_bounds() {
    let mut h = Harness::new().await;
    let liar = crate::wire::PeerStatus {
        lcl_seq: 0,
        lcl_hash: [0; 32],
        height: 1,
        round: 0,
        users: (0..1000u32).map(|i| <[u8; 32]>::try_from([i.to_be_bytes(); 8].concat()).expect("32 bytes")).collect(),
    };
    h.node.handle(Event::Peer(PeerEvent::Message {
        validator: 3,
        message: PeerMessage::Status(liar),
        epoch: 0,
        arrived: Instant::now(),
    }));
    let (heartbeat, _) = h.node.build_ledger(super::effects::now_ms());
    assert_eq!(heartbeat.contract_users().len(), LEDGER_BOUNDS.users);
    assert!(heartbeat.users.contains(&USER), "the node's own user was crowded out: {:?}", heartbeat.users);
    assert!(h.node.validate(&heartbeat));

    // Six inputs from six users: three users fit, so three inputs go now.
    for nonce in 1..=6 {
        let input = peer_input(&h, nonce, [nonce as u8; 32]);
        h.node.mempool.insert(input);
    }
    let (ledger, _) = h.node.build_ledger(super::effects::now_ms());
    assert_eq!(ledger.inputs.iter().map(|i| i.id.nonce).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(ledger.contract_users().len(), LEDGER_BOUNDS.users);
    assert!(h.node.validate(&ledger), "the node refuses its own proposal");
}

/// A user-signed input (HotPocket 0.6) that user `key` signed: container `input`, `nonce`,
/// `max_ledger`, accepted by validator `origin`.
fn user_signed_input(
    h: &Harness,
    key: &SigningKey,
    origin: usize,
    id_nonce: u64,
    (input, nonce, max_ledger): (&str, u64, u64),
) -> hp_ledger::Input {
    use ed25519_dalek::Signer;
    let container = format!(r#"{{"input":"{input}","nonce":{nonce},"max_ledger_seq_no":{max_ledger}}}"#);
    let signed = hp_ledger::user_signed::UserSigned {
        format: hp_ledger::user_signed::ContainerFormat::Json,
        signature: key.sign(container.as_bytes()).to_bytes(),
        container: Bytes::from(container),
    };
    let user = key.verifying_key().to_bytes();
    let data = Bytes::from(input.to_string());
    hp_ledger::Input::sign_with(&NETWORK, id_nonce, user, data, Some(signed), &h.keys[origin])
}

/// Issue 17: a faulty proposer cannot slip in a user-signed input the user did not sign, with
/// other bytes than the user signed, outside its window, or replayed: an honest node refuses
/// to vote for such a ledger, whoever's name the input is under.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_with_a_forged_stale_or_replayed_user_signed_input_is_refused() {
    let mut h = Harness::new().await;
    let user = SigningKey::from_bytes(&[42; 32]);
    let good = user_signed_input(&h, &user, 1, 1, ("pay 10", 5, 3));
    let proposal = |h: &Harness, inputs| proposal_on_genesis(h, inputs, vec![USER]);
    assert!(h.node.validate(&proposal(&h, vec![good.clone()])), "a good user-signed input is refused");

    let stranger = SigningKey::from_bytes(&[43; 32]);
    let forged = hp_ledger::Input {
        user: user.verifying_key().to_bytes(),
        ..user_signed_input(&h, &stranger, 1, 2, ("pay 99", 6, 3))
    };
    let forged = hp_ledger::Input::sign_with(
        &NETWORK,
        2,
        forged.user,
        forged.data.clone(),
        forged.user_signed.clone(),
        &h.keys[1],
    );
    assert!(!h.node.validate(&proposal(&h, vec![forged])), "an input the user never signed was accepted");

    let mut other_bytes = user_signed_input(&h, &user, 1, 3, ("pay 10", 7, 3));
    other_bytes = hp_ledger::Input::sign_with(
        &NETWORK,
        3,
        other_bytes.user,
        Bytes::from_static(b"pay 99"),
        other_bytes.user_signed.clone(),
        &h.keys[1],
    );
    assert!(!h.node.validate(&proposal(&h, vec![other_bytes])), "bytes other than the user signed were accepted");

    let too_far = user_signed_input(&h, &user, 1, 4, ("pay 10", 8, 12));
    assert!(!h.node.validate(&proposal(&h, vec![too_far])), "a window past max_input_ledger_offset was accepted");

    let twice = vec![good.clone(), user_signed_input(&h, &user, 2, 5, ("pay 10", 5, 3))];
    assert!(!h.node.validate(&proposal(&h, twice)), "one nonce twice in a ledger was accepted");

    // Once ledger 1 with the good input is stored, the same container again (under any
    // origin) and any lower nonce are replays.
    let genesis = h.genesis.clone();
    let ledger1 = Ledger::new(LedgerBody {
        seq: 1,
        prev_hash: genesis.hash(),
        time_ms: genesis.time_ms + 1,
        inputs: vec![good.clone()],
        users: vec![USER],
        prev_result: None,
        config_hash: h.node.members().hash(),
        next_membership: None,
    });
    h.node.on_decide(LedgerRecord { ledger: ledger1.clone(), commit: None, result: None });
    let replay = user_signed_input(&h, &user, 2, 6, ("pay 10", 5, 3));
    let proposal2 = |inputs| {
        Ledger::new(LedgerBody {
            seq: 2,
            prev_hash: ledger1.hash(),
            time_ms: ledger1.time_ms + 1,
            inputs,
            users: vec![USER],
            prev_result: None,
            config_hash: h.node.members().hash(),
            next_membership: None,
        })
    };
    assert_eq!(h.node.store.user_nonce(&user.verifying_key().to_bytes()).expect("store"), Some(5));
    assert!(h.node.signed_inputs_valid(&proposal2(vec![replay])).is_err(), "a replayed container was accepted");
    let lower = user_signed_input(&h, &user, 2, 7, ("pay 1", 4, 3));
    assert!(h.node.signed_inputs_valid(&proposal2(vec![lower])).is_err(), "a lower nonce was accepted");
    let next = user_signed_input(&h, &user, 2, 8, ("pay 2", 6, 3));
    assert!(h.node.signed_inputs_valid(&proposal2(vec![next])).is_ok(), "the next nonce is refused");
}

/// Issue 19: the contract's config names new members after ledger 1. Ledger 2 must hand over
/// to exactly them; the old members close and certify it; from ledger 3 on the node runs
/// consensus and counts result votes among the new members, by their new places.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_over_agreed_in_the_state_is_proposed_checked_and_followed() {
    let mut h = Harness::new().await;
    let genesis = h.genesis.clone();
    let keys: Vec<[u8; 32]> = h.keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
    let key = |i: usize| keys[i];
    // Validator 3 leaves; this node (0) moves to place 1.
    let next = hp_ledger::Membership::new(vec![key(1), key(0), key(2)], 3).expect("members");
    let (run1, run2, run3) = (Run::of(1), Run::of(2), Run::of(3));
    let ledger1 = h.decide(1, &genesis, None);
    h.executed_with_config(&ledger1, &run1, next.clone());
    for peer in 1..=2 {
        h.peer_result_vote(peer, 1, &run1);
    }
    assert_eq!(h.node.last_result, Some(run1.summary()), "ledger 1 certified");

    let (proposed, _) = h.node.build_ledger(super::effects::now_ms());
    assert_eq!(proposed.next_membership.as_ref(), Some(&next), "the proposal hands over");
    assert!(h.node.validate(&proposed));
    let mut body = (*proposed).clone();
    body.next_membership = None;
    assert!(!h.node.validate(&Ledger::new(body)), "a proposal leaving the hand-over out was accepted");
    let mut body = (*proposed).clone();
    body.next_membership = Some(hp_ledger::Membership::new(vec![key(0), key(1), key(2)], 3).expect("members"));
    assert!(!h.node.validate(&Ledger::new(body)), "a hand-over to other members was accepted");

    let ledger2 = h.decide_handing_over(2, &ledger1, Some(run1.summary()), Some(next.clone()));
    assert_eq!(h.node.members(), &next, "ledger 3 is closed by the new members");
    assert_eq!(h.node.peers.epochs().members_at(3), &next, "the peer layer checks ledger 3 against them");
    h.executed_with_config(&ledger2, &run2, next.clone());
    // The old members certify ledger 2, by their old places; the leaving validator's vote counts.
    h.peer_result_vote(3, 2, &run2);
    h.peer_result_vote(1, 2, &run2);
    assert_eq!(h.node.last_result, Some(run2.summary()), "ledger 2 certified by the old members");
    assert_eq!(h.node.core.params().unl.len(), 3, "the core runs with the new members");
    assert_eq!(h.node.core_me(), Some(1));
    assert_eq!(h.node.core.height(), 3);

    let ledger3 = h.decide(3, &ledger2, Some(run2.summary()));
    assert_eq!(ledger3.config_hash, next.hash());
    h.executed_with_config(&ledger3, &run3, next.clone());
    // Validator 3's key is no member any more, and a vote under its old place is another's.
    let vote = ResultVote::sign(&NETWORK, 3, run3.state_hash, run3.outcome.hash(), 3, &h.keys[3]);
    h.node.handle(Event::Peer(PeerEvent::Message {
        validator: 3,
        message: PeerMessage::Result(vote, None),
        epoch: 3,
        arrived: Instant::now(),
    }));
    assert_eq!(h.node.last_result, None);
    // New places: key 1 is validator 0, key 2 validator 2.
    for (place, signer) in [(0, 1), (2, 2)] {
        let vote = ResultVote::sign(&NETWORK, 3, run3.state_hash, run3.outcome.hash(), place, &h.keys[signer]);
        h.node.handle(Event::Peer(PeerEvent::Message {
            validator: signer,
            message: PeerMessage::Result(vote, None),
            epoch: 3,
            arrived: Instant::now(),
        }));
    }
    assert_eq!(h.node.last_result, Some(run3.summary()), "ledger 3 certified by the new members");
}

/// Issue 19: the roundtime is followed as soon as this node's own run names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_runs_its_rounds_by_the_roundtime_its_run_names() {
    let mut h = Harness::new().await;
    let genesis = h.genesis.clone();
    let ledger1 = h.decide(1, &genesis, None);
    let run1 = Run::of(1);
    let members = h.node.members().clone();
    assert_eq!(h.node.status().roundtime, Duration::from_secs(1), "hp.cfg's to begin with");
    h.executed_with(
        &ledger1,
        &run1,
        AgreedConfig { members, roundtime: Some(Duration::from_millis(2500)), version: None },
    );
    assert_eq!(h.node.status().roundtime, Duration::from_millis(2500));
    assert_eq!(h.node.core.params().timeouts, crate::timeouts(Duration::from_millis(2500)), "and so time out");
}
