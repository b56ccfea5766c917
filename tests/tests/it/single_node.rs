//! One node, a UNL of itself: the foundation's round trip (issue 2).

use hp_tests::bins::bin;
use hp_tests::{Cluster, ClusterOptions};
use std::process::Command;
use std::time::Duration;

#[test]
fn a_user_input_comes_back_upper_cased_through_a_real_node() {
    let cluster = Cluster::start(ClusterOptions::default());
    let node = &cluster.nodes[0];
    let out = Command::new(bin("hp-client"))
        .arg(node.url())
        .args(["--send", "hello", "--wait", "1", "--timeout", "20"])
        .output()
        .unwrap();
    assert!(out.status.success(), "hp-client failed: {}\n{}", String::from_utf8_lossy(&out.stderr), cluster.logs());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO\n");
    // The input closed a ledger that carries it, with the node's own signature.
    let ledgers = node.ledgers();
    assert!(ledgers.iter().any(|l| l["inputs"] == 1 && l["signers"] == 1), "{ledgers:?}");
    let (code, text) = node.verify();
    assert_eq!(code, 0, "{text}");
}

#[test]
fn an_idle_node_closes_heartbeat_ledgers() {
    let cluster = Cluster::start(ClusterOptions { roundtime_ms: 100, ..Default::default() });
    cluster.wait_all_at(5, Duration::from_secs(20));
    let ledgers = cluster.nodes[0].ledgers();
    assert!(ledgers.len() >= 6);
    assert!(ledgers.iter().skip(1).all(|l| l["inputs"] == 0));
}
