//! Bad peers: strangers and garbage on the peer port, and a UNL member that lies — it
//! equivocates, proposes two ledgers at once, replays old messages, sends malformed frames and
//! announces a chain it does not have. The honest nodes must drop or ignore all of it, keep
//! closing ledgers for their users, and never fork.
//!
//! The byzantine scenarios use four nodes with threshold 0.75 (q = 3, so one faulty member is
//! tolerated: 2q − n = 2 > 1); node 4's process is never started and the test plays it with
//! node 4's key from its `hp.cfg`.

use hp_cfg::Config;
use hp_tests::OrPanic;
use hp_tests::harness::faults::{kill_component, pause, resume, wipe};
use hp_tests::harness::rogue::{Behaviour, FORGED_INPUT, IdleFlood, Rogue, outsider_handshake, raw_connect};
use hp_tests::harness::{Scenario, ScenarioOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const PROGRESS: u64 = 40;
const RECOVER: Duration = Duration::from_secs(90);

fn peer_addr(s: &Scenario, i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], s.cluster.nodes[i].peerport))
}

/// The network's UNL and id, as the nodes' own config has them.
fn unl(s: &Scenario) -> (Vec<[u8; 32]>, [u8; 32]) {
    let cfg = Config::load(&s.cluster.nodes[0].dir.join("cfg").join("hp.cfg")).unwrap();
    (cfg.unl.clone(), cfg.network_id())
}

#[test]
fn strangers_and_garbage_on_the_peer_port_are_dropped_while_ledgers_close() {
    let s = Scenario::start("outsiders and garbage on the peer port", ScenarioOptions::default());
    let (unl, network_id) = unl(&s);
    let until = Instant::now() + Duration::from_secs(hp_tests::harness::env_u64("HP_FAULT_SECONDS", 3) * 2);
    let mut attempts = 0;
    while Instant::now() < until {
        for i in 0..s.cluster.nodes.len() {
            let addr = peer_addr(&s, i);
            // A key outside the UNL that completes its side of the handshake.
            assert!(!outsider_handshake(addr, &unl, network_id).unwrap(), "node {} let a stranger in", i + 1);
            // Bytes that are no handshake at all; a length prefix far over any limit; nothing.
            let mut junk = raw_connect(addr).unwrap();
            let _ = junk.write_all(&[0x17, 0x03, 0x03, 0x00, 0x20]);
            let _ = junk.write_all(&[0xab; 300]);
            let mut huge = raw_connect(addr).unwrap();
            let _ = huge.write_all(&u32::MAX.to_be_bytes());
            let _silent = raw_connect(addr).unwrap();
            attempts += 1;
        }
    }
    assert!(attempts > 0);
    s.expect_progress(PROGRESS, RECOVER);
    for node in &s.cluster.nodes {
        let status = node.status().unwrap();
        assert_eq!(status["peers"], 4, "node {} lost a UNL peer: {status}", node.index + 1);
    }
    s.finish();
}

fn byzantine_options() -> ScenarioOptions {
    ScenarioOptions {
        nodes: 4,
        threshold: Some(0.75),
        not_started: vec![3],
        edit: std::env::var("HP_FAULT_DEBUG").ok().map(|_| {
            Box::new(|_: usize, cfg: &mut Config| cfg.loglevel = "hp_consensusd=debug,info".into())
                as Box<dyn Fn(usize, &mut Config)>
        }),
        ..Default::default()
    }
}

fn start_rogue(s: &Scenario, behaviour: Behaviour) -> Rogue {
    let cfg = Config::load(&s.cluster.nodes[3].dir.join("cfg").join("hp.cfg")).unwrap();
    let peers = (0..3).map(|i| (i, peer_addr(s, i))).collect();
    let rogue = Rogue::start(cfg.key.signing_key().clone(), cfg.unl.clone(), cfg.network_id(), peers, behaviour);
    hp_tests::wait_until("the rogue to connect to the honest nodes", RECOVER, || {
        (rogue.connected() == 3).then_some(())
    });
    rogue
}

#[test]
fn a_unl_member_that_equivocates_splits_proposals_replays_and_babbles_cannot_fork_or_stall() {
    let mut s = Scenario::start("byzantine UNL member (4 nodes, q=3)", byzantine_options());
    let rogue = start_rogue(&s, Behaviour { help: true, ..Default::default() });
    s.run_load();
    let phases = [
        ("double votes", Behaviour { help: true, equivocate: true, ..Default::default() }),
        ("two proposals at once", Behaviour { help: true, split_proposals: true, ..Default::default() }),
        ("replayed old messages", Behaviour { help: true, replay: true, ..Default::default() }),
        ("malformed frames", Behaviour { help: true, garbage: true, ..Default::default() }),
        (
            "a pure adversary: double votes, two proposals, replays",
            Behaviour { equivocate: true, split_proposals: true, replay: true, ..Default::default() },
        ),
        (
            "all of it, malformed frames too",
            Behaviour { equivocate: true, split_proposals: true, replay: true, garbage: true, ..Default::default() },
        ),
    ];
    for (what, behaviour) in phases {
        rogue.set(behaviour);
        s.run_load();
        s.expect_progress(PROGRESS, RECOVER);
        eprintln!("rogue phase '{what}' done: {:?}", rogue.stats());
    }
    let stats = rogue.stats();
    assert!(stats.conflicting_sent.load(Ordering::Relaxed) > 0, "{stats:?}");
    assert!(stats.proposals_sent.load(Ordering::Relaxed) > 0, "the rogue never had a turn to propose: {stats:?}");
    assert!(stats.replayed.load(Ordering::Relaxed) > 0, "{stats:?}");
    assert!(stats.garbage_sent.load(Ordering::Relaxed) > 0, "{stats:?}");
    rogue.set(Behaviour::default());
    // The honest nodes saw the equivocation for what it is.
    let logs: String = s.cluster.nodes[..3].iter().map(|n| n.log_tail(100_000)).collect();
    assert!(logs.contains("equivocated"), "no honest node noticed the double votes");
    s.node(3); // node 4 is the rogue: it has no store and is not checked
    s.finish();
}

#[test]
fn a_peer_announcing_a_chain_it_does_not_have_cannot_keep_a_lagging_node_behind() {
    let s = Scenario::start("lying peer vs a lagging node", byzantine_options());
    // The rogue helps to reach quorums (so one honest node may be away) and lies about its chain.
    let _rogue = start_rogue(&s, Behaviour { help: true, lie_status: true, ..Default::default() });
    s.run_load();
    // Node 2 is frozen while the others go on, then must catch up what it missed — with the
    // liar's status already in its table.
    pause(&s.cluster.nodes[1]);
    s.expect_progress(PROGRESS, RECOVER);
    s.run_load();
    resume(&s.cluster.nodes[1]);
    s.wait_all_at_tip(Duration::from_secs(30));
    s.expect_progress(PROGRESS, RECOVER);
    s.finish();
}

/// Issue 16: a status is unsigned, so one peer's claim must not change what a node believes. A
/// node that restarts with an empty chain used to take the liar's lcl_seq 2^40 as "decided
/// before I joined" and hold back its users' outputs of every ledger up to 2^40 — for good.
/// Now its users get their outputs promptly, each exactly once, nothing lost (the finish
/// checks).
#[test]
fn a_wiped_node_serves_its_users_promptly_while_a_peer_announces_a_chain_it_does_not_have() {
    let mut s = Scenario::start("lying peer vs a wiped node", byzantine_options());
    let _rogue = start_rogue(&s, Behaviour { help: true, lie_status: true, ..Default::default() });
    s.run_load();
    // Stopped cleanly, so what it accepted reached its peers; then its disk is lost, and it
    // starts again with the liar's status in its table from its first second.
    assert_eq!(s.node(1).stop().or_panic(), Some(0));
    wipe(&s.cluster.nodes[1]);
    s.run_load();
    s.node(1).start().or_panic();
    s.node(1).wait_ready(RECOVER).or_panic();
    s.wait_all_at_tip(Duration::from_secs(30));
    s.expect_progress(PROGRESS, Duration::from_secs(30));
    s.run_load();
    s.finish();
}

#[test]
fn a_unl_member_cannot_put_an_input_into_the_chain_under_another_nodes_name() {
    let s = Scenario::start("forged inputs in a UNL member's proposals", byzantine_options());
    // The rogue helps to reach quorums, and each of its proposals carries an input under node
    // 1's name that node 1 never signed.
    let rogue = start_rogue(&s, Behaviour { help: true, forge_inputs: true, ..Default::default() });
    s.run_load();
    hp_tests::wait_until("the rogue to propose three forged ledgers", RECOVER, || {
        (rogue.stats().forged_sent.load(Ordering::Relaxed) >= 3).then_some(())
    });
    s.expect_progress(PROGRESS, RECOVER);
    rogue.set(Behaviour { help: true, ..Default::default() });
    s.wait_all_at_tip(RECOVER);
    for node in &s.cluster.nodes[..3] {
        let store = hp_ledger::Store::open_read_only(&node.dir.join("hist").join("ledger.sqlite")).unwrap();
        let forged = store
            .all()
            .unwrap()
            .iter()
            .flat_map(|r| r.ledger.inputs.clone())
            .filter(|i| i.data == FORGED_INPUT)
            .count();
        assert_eq!(forged, 0, "node {} holds {forged} forged inputs in its chain", node.index + 1);
    }
    s.finish();
}

#[test]
fn a_unl_member_asking_for_ledgers_without_pause_is_answered_only_within_its_budget() {
    use hp_consensusd::serving::{BURST, REQUESTS_PER_SECOND};
    let s = Scenario::start("ledger request flood from a UNL member", byzantine_options());
    let rogue = start_rogue(&s, Behaviour { flood_requests: true, ..Default::default() });
    let flooding = Instant::now();
    s.run_load();
    s.expect_progress(PROGRESS, RECOVER);
    let seconds = flooding.elapsed().as_secs_f64();
    let stats = rogue.stats();
    let (sent, answered) = (stats.requests_sent.load(Ordering::Relaxed), stats.ledger_replies.load(Ordering::Relaxed));
    rogue.set(Behaviour::default());
    // Each of the three honest nodes answers its burst and then its sustained rate, no more.
    let budget = 3.0 * (BURST + REQUESTS_PER_SECOND * seconds);
    eprintln!("flood of {sent} ledger requests in {seconds:.1} s: {answered} answered, budget {budget:.0}");
    assert!(sent as f64 > 3.0 * budget, "the rogue did not flood: {sent} requests in {seconds:.1} s");
    assert!(answered > 0, "the honest nodes answered none of the rogue's requests");
    assert!(answered as f64 <= budget * 1.1, "{answered} of {sent} requests answered, over the budget of {budget:.0}");
    s.finish();
}

#[test]
fn idle_strangers_holding_peer_connections_do_not_keep_a_restarted_node_out() {
    let s = Scenario::start("idle connection flood on peer ports", ScenarioOptions::default());
    s.run_load();
    // Strangers keep 200 silent connections open to every node's peer port, reopening each one
    // a node closes, for as long as the test runs.
    let addrs = (0..s.cluster.nodes.len()).map(|i| peer_addr(&s, i)).collect();
    let flood = IdleFlood::start(addrs, 200);
    // Every node's handshake slots are held by strangers before the restart.
    hp_tests::wait_until("the flood to hold connections on every node", RECOVER, || {
        (flood.opened() >= 5 * 200).then_some(())
    });
    // Node 3's consensusd restarts and must reconnect to its peers through the flood.
    let killed = Instant::now();
    kill_component(&s.cluster.nodes[2], "consensusd");
    let lcl = s.max_lcl();
    s.wait_all_at(lcl + 2, Duration::from_secs(30));
    eprintln!("node 3 back at the tip through the flood after {:?}", killed.elapsed());
    s.expect_progress(PROGRESS, RECOVER);
    assert!(flood.opened() >= 1000, "the flood did not happen: {} connections", flood.opened());
    drop(flood);
    s.finish();
}

/// Finding: every new peer connection, inbound or outbound, waits for one of 64 handshake slots
/// in arrival order, and a stranger holds a slot for the whole 5 s handshake timeout. 200 idle
/// strangers per node delay a restarted node's peer links by ~13 s (N / 64 × 5 s).
#[test]
fn a_restarted_node_reconnects_within_seconds_despite_idle_strangers() {
    let s = Scenario::start("idle connection flood: prompt rejoin", ScenarioOptions::default());
    let addrs = (0..s.cluster.nodes.len()).map(|i| peer_addr(&s, i)).collect();
    let flood = IdleFlood::start(addrs, 200);
    // Every node's handshake slots are held by strangers before the restart.
    hp_tests::wait_until("the flood to hold connections on every node", RECOVER, || {
        (flood.opened() >= 5 * 200).then_some(())
    });
    kill_component(&s.cluster.nodes[2], "consensusd");
    let lcl = s.max_lcl();
    s.wait_all_at(lcl + 2, Duration::from_secs(5));
    drop(flood);
    s.finish();
}

/// The node party line under a lying member: node 4, played by the test, speaks on every NPL
/// round honest nodes speak on — its own hello (so honest contracts that wait for every member
/// finish), a flood of junk, the honest nodes' own messages relayed to the others, frames of
/// older rounds replayed, and a hello under an honest node's name signed with its own key.
/// Every honest node's contract still hears exactly the four members, once each, and answers
/// its user the same; ledgers keep closing.
#[test]
fn a_unl_member_flooding_relaying_replaying_and_forging_npl_messages_changes_no_contracts_answer() {
    use hp_tests::{Cluster, ClusterOptions, js};
    use serde_json::{Value, json};
    let mut cluster = Cluster::create(ClusterOptions {
        nodes: 4,
        hotpocket: true,
        contract: Some(hp_tests::contracts::nodejs()),
        roundtime_ms: 1000,
        edit: Some(Box::new(|_, cfg: &mut Config| {
            cfg.stdinfmt = hp_cfg::StdinFormat::Hotpocket;
            cfg.threshold = 0.75;
            // The contract's script and its node_modules stay in the repository (issue 20).
            cfg.sandbox_read_paths = vec![hp_tests::contracts::nodejs_dir()];
        })),
        ..Default::default()
    })
    .or_panic();
    for i in 0..3 {
        cluster.node(i).start().or_panic();
    }
    cluster.wait_all_at(1, RECOVER).or_panic();
    let cfg = Config::load(&cluster.nodes[3].dir.join("cfg").join("hp.cfg")).unwrap();
    let peers = (0..3).map(|i| (i, SocketAddr::from(([127, 0, 0, 1], cluster.nodes[i].peerport)))).collect();
    let rogue = Rogue::start(
        cfg.key.signing_key().clone(),
        cfg.unl.clone(),
        cfg.network_id(),
        peers,
        Behaviour { help: true, npl: true, ..Default::default() },
    );
    hp_tests::wait_until("the rogue to connect to the honest nodes", RECOVER, || {
        (rogue.connected() == 3).then_some(())
    });

    let servers: Vec<String> =
        cluster.nodes[..3].iter().filter_map(|n| n.hotpocket_urls()).map(|(tls, _)| tls).collect();
    let mut members: Vec<String> = cfg.unl.iter().map(|k| format!("ed{}", hex::encode(k))).collect();
    members.sort();
    // Two NPL rounds; before the second, the rogue is back on the links its forged messages
    // cost it (a member that misses some nodes in a round is one that stays silent to them:
    // their contracts wait for it until their timeout).
    for round in 1..=2 {
        let connects = rogue.stats().connects.load(Ordering::Relaxed);
        let spec = json!({
            "servers": servers,
            "trusted": null,
            "protocol": "json",
            "required": 3,
            "ops": [
                {"op": "input", "input": "{\"op\":\"npl\"}"},
                {"op": "outputs", "count": 6, "timeout_ms": 60000},
            ],
        });
        let results = js::run(&spec, Duration::from_secs(120));
        let outputs: Vec<Value> = results
            .iter()
            .find(|r| r["op"] == "outputs")
            .and_then(|r| r["outputs"].as_array().cloned())
            .unwrap_or_else(|| panic!("round {round}: no outputs: {results:?}"))
            .iter()
            .map(|o| serde_json::from_str(o["output"].as_str().unwrap_or_default()).unwrap_or(Value::Null))
            .collect();
        let npl: Vec<&Value> = outputs.iter().filter(|o| o["op"] == "npl").collect();
        assert_eq!(npl.len(), 3, "round {round}: each honest node answered: {outputs:?}");
        assert!(npl.iter().all(|o| **o == json!({"op": "npl", "heard": 4, "unl": 4})), "round {round}: {npl:?}");
        let heard: Vec<&Value> = outputs.iter().filter(|o| o["op"] == "heard").collect();
        assert!(heard.iter().all(|o| **o == json!({"op": "heard", "members": members})), "round {round}: {heard:?}");
        hp_tests::wait_until("the rogue to reconnect to every honest node", RECOVER, || {
            (rogue.stats().connects.load(Ordering::Relaxed) >= connects + 2 && rogue.connected() == 3).then_some(())
        });
    }

    let stats = rogue.stats();
    assert!(stats.npl_rounds.load(Ordering::Relaxed) >= 2, "{stats:?}");
    assert!(stats.npl_junk_sent.load(Ordering::Relaxed) > 0, "{stats:?}");
    assert!(stats.npl_relayed.load(Ordering::Relaxed) > 0, "{stats:?}");
    assert!(stats.npl_forged.load(Ordering::Relaxed) > 0, "{stats:?}");
    let logs: String = cluster.nodes[..3].iter().map(|n| n.log_tail(100_000)).collect();
    assert!(logs.contains("NPL message relayed for another member"), "no honest node refused a relayed message");
    assert!(logs.contains("Npl: signature does not verify"), "no honest node refused the forged message");
    // Ledgers kept closing, and the honest chains agree.
    let at = cluster.nodes[0].lcl_seq() + 3;
    cluster.wait_all_at(at, RECOVER).or_panic();
    let chains: Vec<Vec<Value>> = cluster.nodes[..3].iter().map(|n| n.ledgers().or_panic()).collect();
    for chain in &chains[1..] {
        let hash = |c: &[Value]| c.iter().find(|l| l["seq"] == at).map(|l| l["hash"].clone());
        assert_eq!(hash(chain), hash(&chains[0]), "the honest nodes disagree on ledger {at}");
    }
}
