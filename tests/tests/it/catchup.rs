//! A node that was away gets back by itself (issue 6): it fetches and verifies the ledgers it
//! missed, rebuilds a wiped directory, and copies a damaged state from its peers.

use hp_tests::OrPanic;
use hp_tests::contracts::compile;
use hp_tests::user::send_one;
use hp_tests::{Cluster, ClusterOptions, wait_until};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn stateful(nodes: usize) -> ClusterOptions {
    ClusterOptions { nodes, contract: Some(compile("stateful")), roundtime_ms: 200, ..Default::default() }
}

/// Waits until every node reports the same last ledger and state hash.
fn wait_converged(cluster: &Cluster) -> (u64, String) {
    wait_until(&format!("nodes to converge\n{}", cluster.logs()), LONG, || {
        let statuses: Vec<_> = cluster.nodes.iter().map(|n| n.status()).collect::<Option<Vec<_>>>()?;
        // Every node's own executed state is the same (execution may trail the chain).
        if statuses.iter().any(|s| s["state_hash"] != statuses[0]["state_hash"]) {
            return None;
        }
        let target = statuses.iter().map(|s| s["lcl_seq"].as_u64().unwrap_or(0)).max()?;
        // Compare the ledger each node holds at a common sequence, and the state there.
        let ledgers: Vec<_> = cluster.nodes.iter().map(|n| n.ledgers().or_panic()).collect();
        let common = ledgers.iter().map(|l| l.len() as u64).min()?.checked_sub(1)?;
        if common + 2 < target {
            return None;
        }
        let at =
            |l: &Vec<serde_json::Value>| (l[common as usize]["hash"].clone(), l[common as usize]["state_hash"].clone());
        let first = at(&ledgers[0]);
        (!first.1.as_str().unwrap_or("").is_empty() && ledgers.iter().all(|l| at(l) == first))
            .then(|| (common, first.1.as_str().unwrap_or("").to_string()))
    })
}

#[test]
fn a_stopped_node_catches_up_fifty_ledgers_with_inputs_and_rejoins() {
    let mut cluster = Cluster::start(stateful(5)).or_panic();
    cluster.node(4).stop().or_panic();
    let url = cluster.nodes[0].url();
    let start = cluster.nodes[0].lcl_seq();
    for i in 0..50 {
        let out = send_one(&url, format!("while away {i}").as_bytes(), LONG);
        assert!(String::from_utf8_lossy(&out).ends_with(&format!("while away {i}")));
    }
    assert!(cluster.nodes[0].lcl_seq() >= start + 50);
    cluster.node(4).start().or_panic();
    let (seq, _) = wait_converged(&cluster);
    assert!(seq >= start + 50);
    // It votes again: the cluster keeps closing ledgers with it.
    let out = send_one(&cluster.nodes[4].url(), b"back", LONG);
    assert!(String::from_utf8_lossy(&out).ends_with("back"));
    let (code, text) = cluster.nodes[4].verify().or_panic();
    assert_eq!(code, 0, "{text}");
}

#[test]
fn a_wiped_node_rebuilds_history_and_state_from_its_peers() {
    let mut cluster = Cluster::start(stateful(3)).or_panic();
    for i in 0..5 {
        send_one(&cluster.nodes[i % 3].url(), format!("before wipe {i}").as_bytes(), LONG);
    }
    cluster.node(2).stop().or_panic();
    let dir = cluster.nodes[2].dir.clone();
    for sub in ["hist", "state"] {
        std::fs::remove_dir_all(dir.join(sub)).unwrap();
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    cluster.node(2).start().or_panic();
    cluster.nodes[2].wait_ready(LONG).or_panic();
    let (_, state) = wait_converged(&cluster);
    assert!(!state.is_empty());
    let log = std::fs::read_to_string(dir.join("state").join("inputs.log")).unwrap();
    assert_eq!(log.lines().count(), 5, "{log}");
    let (code, text) = cluster.nodes[2].verify().or_panic();
    assert_eq!(code, 0, "{text}");
}

#[test]
fn a_damaged_state_is_copied_from_peers_moving_only_the_files_that_differ() {
    let mut cluster = Cluster::start(stateful(3)).or_panic();
    // A large state: 8 MiB over a few files, then one small file.
    for name in ["a.bin", "b.bin", "c.bin", "d.bin"] {
        send_one(&cluster.nodes[0].url(), format!("big {name} 2097152").as_bytes(), LONG);
    }
    send_one(&cluster.nodes[0].url(), b"small", LONG);
    cluster.node(1).stop().or_panic();
    // Behind the node's back: change one small file in both the live state and execd's
    // committed copy, so it cannot repair itself locally.
    let dir = cluster.nodes[1].dir.clone();
    for base in [dir.join("state"), dir.join("hist").join("exec").join("committed")] {
        let path = base.join("inputs.log");
        if path.exists() {
            std::fs::write(&path, b"tampered\n").unwrap();
        }
    }
    cluster.node(1).start().or_panic();
    cluster.nodes[1].wait_ready(LONG).or_panic();
    send_one(&cluster.nodes[0].url(), b"after", LONG);
    wait_converged(&cluster);
    let log = std::fs::read_to_string(dir.join("log").join("node.log")).unwrap();
    let line = log.lines().rev().find(|l| l.contains("state copied from peer"));
    let line = line.unwrap_or_else(|| panic!("no state copy in the log:\n{}", cluster.logs()));
    let bytes: u64 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("bytes=").and_then(|v| v.parse().ok()))
        .unwrap_or_else(|| panic!("no byte count in `{line}`"));
    assert!(bytes < 64 * 1024, "copied {bytes} bytes for one small file: {line}");
    let content = std::fs::read_to_string(dir.join("state").join("inputs.log")).unwrap();
    assert!(content.contains("small"), "{content}");
}
