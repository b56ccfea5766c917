//! The node loop driven in-process: a real store in a temporary folder, no peer sockets, no
//! execd. A test plays the executor (it sees the ledgers the node asks to run and answers with
//! `Event::Executed`), the peers (their signed messages go straight to `handle`) and userd (a
//! session whose channel the test reads), so that an order of events a real cluster produces
//! only now and then can be replayed exactly.

#![allow(clippy::expect_used)]

use super::{Event, Node, NodeConfig, NodeParts};
use crate::executor::Executed;
use crate::peer::{PeerConfig, PeerEvent, PeerNet};
use crate::wire::PeerMessage;
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use hp_consensus::{Consensus, NetworkId, Params, ResultVote};
use hp_ledger::{ExitKind, Ledger, LedgerBody, LedgerRecord, Outcome, ResultSummary, Store};
use hp_proto::v1::{self as pb, consensus_message::Kind as Out, userd_message::Kind as In};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const VALIDATORS: usize = 4;
const QUORUM: usize = 3;
/// The node under test is validator 0.
const ME: usize = 0;
const USER: [u8; 32] = [7u8; 32];
const NETWORK: NetworkId = NetworkId([0x4e; 32]);

struct Harness {
    node: Node,
    keys: Vec<SigningKey>,
    genesis: Ledger,
    /// Ledgers the node handed to its executor.
    to_run: mpsc::UnboundedReceiver<Ledger>,
    /// What the node sends userd.
    to_userd: mpsc::Receiver<Result<pb::ConsensusMessage, tonic::Status>>,
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
                network_id: network.0,
                listen: Vec::new(),
                peers: Vec::new(),
            },
            peer_tx,
            shutdown.clone(),
        )
        .await
        .expect("peer net without sockets");
        let (executor, to_run) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::channel(1024);
        let exec_client = pb::exec_client::ExecClient::new(hp_daemon::ipc::channel(&dir.path().join("no-execd.sock")));
        let cfg = NodeConfig {
            key: keys[ME].clone(),
            me: ME,
            unl,
            unl_keys,
            network,
            quorum: QUORUM,
            roundtime: Duration::from_secs(1),
            max_ledger_input_bytes: 1 << 20,
            max_input_bytes: 1 << 16,
            max_pending_input_bytes: 1 << 20,
            recovery_path: dir.path().join("consensus.state"),
        };
        let parts = NodeParts { store, core, peers, executor, exec_client, store_path, events };
        let mut node = Node::new(cfg, parts).expect("node");
        // userd connects with one user and has seen no outputs yet.
        let (session_tx, to_userd) = mpsc::channel(1024);
        node.handle(Event::SessionOpened { id: 1, tx: session_tx });
        let snapshot = pb::UsersSnapshot { pubkeys: vec![Bytes::copy_from_slice(&USER)], delivered_through: 0 };
        node.handle(Event::Session { id: 1, message: pb::UserdMessage { kind: Some(In::Snapshot(snapshot)) } });
        Harness { node, keys, genesis, to_run, to_userd, _events: events_rx, _dir: dir, _shutdown: shutdown }
    }

    /// Closes ledger `seq` on the node (as a decision of the core would) and returns it.
    fn decide(&mut self, seq: u64, prev: &Ledger, prev_result: Option<ResultSummary>) -> Ledger {
        let ledger = Ledger::new(LedgerBody {
            seq,
            prev_hash: prev.hash(),
            time_ms: prev.time_ms + 1,
            inputs: Vec::new(),
            users: vec![USER],
            prev_result,
        });
        self.node.on_decide(LedgerRecord { ledger: ledger.clone(), commit: None, result: None });
        let asked = self.to_run.try_recv().expect("the node asks to run a decided ledger");
        assert_eq!(asked.seq, seq);
        ledger
    }

    /// The executor reports its run of `ledger`.
    fn executed(&mut self, ledger: &Ledger, run: &Run) {
        self.node.handle(Event::Executed(Executed {
            seq: ledger.seq,
            ledger_hash: ledger.hash(),
            state_hash: run.state_hash,
            outcome: run.outcome.clone(),
        }));
    }

    /// Validator `from` (a peer) sends its result vote for ledger `seq`.
    fn peer_result_vote(&mut self, from: usize, seq: u64, run: &Run) {
        let vote = ResultVote::sign(&NETWORK, seq, run.state_hash, run.outcome.hash(), from, &self.keys[from]);
        let message = PeerMessage::Result(vote);
        self.node.handle(Event::Peer(PeerEvent::Message { validator: from, message }));
    }

    /// The output batches userd received so far: (ledger, outputs of the user).
    fn batches_to_userd(&mut self) -> Vec<(u64, Vec<Bytes>)> {
        let mut batches = Vec::new();
        while let Ok(message) = self.to_userd.try_recv() {
            if let Ok(pb::ConsensusMessage { kind: Some(Out::Outputs(batch)) }) = message {
                let outputs = batch.outputs.into_iter().filter(|o| o.pubkey.as_ref() == USER).map(|o| o.data).collect();
                batches.push((batch.seq, outputs));
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
