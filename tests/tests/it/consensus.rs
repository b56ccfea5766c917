//! Several nodes agree (issue 5): the same chain everywhere, inputs from any node executed on
//! all, progress exactly while a quorum is up, and offline verification of the chain.

use hp_tests::OrPanic;
use hp_tests::user::{send_many, send_one};
use hp_tests::{Cluster, ClusterOptions};
use serde_json::Value;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(30);

/// (seq, hash) of every ledger a node stores.
fn chain(node: &hp_tests::Node) -> Vec<(u64, String)> {
    node.ledgers()
        .or_panic()
        .iter()
        .map(|l| (l["seq"].as_u64().unwrap_or(u64::MAX), l["hash"].as_str().unwrap_or("").to_string()))
        .collect()
}

/// Asserts that no two nodes hold different ledgers at one sequence.
fn assert_no_fork(cluster: &Cluster) {
    let chains: Vec<Vec<(u64, String)>> = cluster.nodes.iter().map(chain).collect();
    for (i, a) in chains.iter().enumerate() {
        for b in &chains[i + 1..] {
            for ((sa, ha), (sb, hb)) in a.iter().zip(b.iter()) {
                assert_eq!(sa, sb);
                assert_eq!(ha, hb, "fork at ledger {sa}");
            }
        }
    }
}

#[test]
fn three_nodes_agree_on_every_ledger_and_run_inputs_from_any_node() {
    let cluster = Cluster::start(ClusterOptions { nodes: 3, ..Default::default() }).or_panic();
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();
    let inputs: Vec<Vec<u8>> = (0..9).map(|i| format!("input {i}").into_bytes()).collect();
    let outputs = send_many(&urls, &inputs, LONG);
    for (input, output) in inputs.iter().zip(&outputs) {
        assert_eq!(output, &input.to_ascii_uppercase());
    }
    let seq = cluster.nodes[0].lcl_seq();
    cluster.wait_all_at(seq, LONG).or_panic();
    assert_no_fork(&cluster);
    // Every input is in exactly one ledger, signed by the whole UNL (q = 3 of 3).
    let ledgers = cluster.nodes[1].ledgers().or_panic();
    let carried: u64 = ledgers.iter().map(|l| l["inputs"].as_u64().unwrap_or(0)).sum();
    assert_eq!(carried, 9);
    assert!(ledgers.iter().skip(1).all(|l| l["signers"].as_u64() == Some(3)));
    // Every ledger was closed by the same members, named by their hash; none hands over.
    assert!(ledgers.iter().skip(1).all(|l| l["config_hash"] == ledgers[1]["config_hash"] && l["unl_change"].is_null()));
    // The state each node reports is the same.
    let statuses: Vec<Value> = cluster.nodes.iter().map(|n| n.status().unwrap()).collect();
    let states: Vec<&Value> = statuses.iter().map(|s| &s["state_hash"]).collect();
    assert!(states.windows(2).all(|w| w[0] == w[1]), "{states:?}");
    // Each node shows the UNL in force (the three of them), its quorum and its own role.
    let mut keys: Vec<String> = cluster.nodes.iter().map(|n| format!("ed{}", n.pubkey)).collect();
    keys.sort();
    for status in &statuses {
        let mut unl: Vec<String> =
            status["unl"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
        unl.sort();
        assert_eq!(unl, keys, "{status}");
        assert_eq!((status["quorum"].as_u64(), status["role"].as_str()), (Some(3), Some("validator")), "{status}");
        assert_eq!(status["config_hash"], ledgers[1]["config_hash"], "the members in force closed the ledgers");
        assert_eq!(status["config_hash"].as_str().map(str::len), Some(64));
    }
    for node in &cluster.nodes {
        let (code, text) = node.verify().or_panic();
        assert_eq!(code, 0, "{text}");
    }
}

#[test]
fn five_nodes_close_ledgers_with_one_down_and_stop_without_forking_with_two_down() {
    let mut cluster = Cluster::start(ClusterOptions { nodes: 5, roundtime_ms: 150, ..Default::default() }).or_panic();
    cluster.node(4).kill();
    // q = 4 of 5: one node down, ledgers still close and inputs are served.
    let before = cluster.nodes[0].lcl_seq();
    assert_eq!(send_one(&cluster.nodes[0].url(), b"one down", LONG), b"ONE DOWN");
    cluster.wait_all_at(before + 3, LONG).or_panic();
    // Two down: no quorum, nothing closes.
    cluster.node(3).kill();
    let stalled_at = hp_tests::wait_until("the chain to stall", LONG, || {
        let a = cluster.nodes[0].lcl_seq();
        std::thread::sleep(Duration::from_millis(1500));
        (cluster.nodes[0].lcl_seq() == a).then_some(a)
    });
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(cluster.nodes[0].lcl_seq(), stalled_at, "a ledger closed without a quorum");
    assert_no_fork(&cluster);
    // They come back: progress resumes and they catch up.
    cluster.node(3).start().or_panic();
    cluster.node(4).start().or_panic();
    cluster.wait_all_at(stalled_at + 3, Duration::from_secs(60)).or_panic();
    assert_no_fork(&cluster);
    assert_eq!(send_one(&cluster.nodes[4].url(), b"all back", LONG), b"ALL BACK");
}

#[test]
fn verify_finds_a_tampered_ledger() {
    let mut cluster = Cluster::start(ClusterOptions { nodes: 1, ..Default::default() }).or_panic();
    send_one(&cluster.nodes[0].url(), b"keep me", LONG);
    cluster.wait_all_at(3, LONG).or_panic();
    assert_eq!(cluster.node(0).stop().or_panic(), Some(0));
    let node = &cluster.nodes[0];
    let (code, text) = node.verify().or_panic();
    assert_eq!(code, 0, "{text}");
    // Change one byte of an input inside a stored ledger: its certificate no longer matches.
    let db = node.dir.join("hist").join("ledger.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (seq, mut blob): (i64, Vec<u8>) = conn
        .query_row("SELECT seq, ledger FROM ledgers WHERE n_inputs > 0 ORDER BY seq LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let pos = blob.windows(7).position(|w| w == b"keep me").unwrap();
    blob[pos] = b'K';
    let hash = hp_ledger::Ledger::decode(&blob).unwrap().hash();
    conn.execute(
        "UPDATE ledgers SET ledger = ?1, hash = ?2 WHERE seq = ?3",
        rusqlite::params![blob, hash.as_slice(), seq],
    )
    .unwrap();
    drop(conn);
    let (code, text) = node.verify().or_panic();
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&format!("ledger {seq}")), "{text}");
}

/// Issue 19, observers: a node whose key is not in the UNL (it is in every node's `observers`)
/// follows the chain live, runs the contract and verifies the chain, but never signs a ledger;
/// an input sent to it is refused with a reason, and it is shown as an observer.
#[test]
fn an_observer_follows_the_chain_without_voting_and_refuses_inputs() {
    use hp_client::{Client, Output};
    let cluster = Cluster::start(ClusterOptions {
        nodes: 4,
        edit: Some(Box::new(|_, cfg| {
            let all = cfg.unl.clone();
            cfg.unl = all[..3].to_vec();
            cfg.observers = all[3..].to_vec();
        })),
        ..Default::default()
    })
    .or_panic();
    let validators: Vec<String> = cluster.nodes[..3].iter().map(|n| n.url()).collect();
    let inputs: Vec<Vec<u8>> = (0..6).map(|i| format!("input {i}").into_bytes()).collect();
    for (input, output) in inputs.iter().zip(send_many(&validators, &inputs, LONG)) {
        assert_eq!(output, input.to_ascii_uppercase());
    }
    let seq = cluster.nodes[0].lcl_seq();
    cluster.wait_all_at(seq, LONG).or_panic();
    assert_no_fork(&cluster);
    // The observer holds the chain, and every ledger was closed by the three validators alone.
    let observed = cluster.nodes[3].ledgers().or_panic();
    assert!(observed.len() as u64 > seq);
    assert!(observed.iter().skip(1).all(|l| l["signers"].as_u64() == Some(3)), "{observed:?}");
    let (code, text) = cluster.nodes[3].verify().or_panic();
    assert_eq!(code, 0, "{text}");
    let roles: Vec<Value> = cluster.nodes.iter().map(|n| n.status().unwrap()["role"].clone()).collect();
    assert_eq!(roles, ["validator", "validator", "validator", "observer"]);
    // A validator counts only UNL members among its peers: never the observer's link.
    for node in &cluster.nodes[..3] {
        let peers = node.status().unwrap()["peers"].as_u64().unwrap();
        assert!(peers <= 2, "node {} counts {peers} UNL peers of 2", node.index + 1);
    }
    // An input sent to the observer is refused, with the reason.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut client = Client::connect(&cluster.nodes[3].url(), &hp_client::generate_key()).await.unwrap();
        client.send(b"to the observer").await.unwrap();
        match tokio::time::timeout(LONG, client.recv()).await {
            Ok(Some(Output::Error(reason))) => assert!(reason.contains("observer"), "{reason}"),
            other => panic!("expected the observer's refusal, got {other:?}"),
        }
    });
    // The validators' state is the observer's: it ran every ledger itself.
    let states: Vec<Value> = cluster.nodes.iter().map(|n| n.status().unwrap()["state_hash"].clone()).collect();
    assert!(states.windows(2).all(|w| w[0] == w[1]), "{states:?}");
}
