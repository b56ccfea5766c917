//! The contract runs in a sandbox (issue 20): a hostile contract (tests/contracts/escape.c)
//! tries every way out and reports each attempt; a real 3-node network must stop every one and
//! keep closing ledgers. The same probe without the sandbox shows that it does see escapes.

use hp_tests::OrPanic;
use hp_tests::contracts::compile;
use hp_tests::user::send_one;
use hp_tests::{Cluster, ClusterOptions};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// Every attempt the probe makes, in its order.
const PROBES: [&str; 18] = [
    "read_key",
    "read_tls_key",
    "list_cfg",
    "read_ledger",
    "list_log",
    "connect_consensusd",
    "connect_execd",
    "connect_userd",
    "connect_supervisor",
    "tcp_peer_port",
    "write_parent",
    "write_tmp",
    "symlink_read_key",
    "symlink_write_out",
    "signal_execd",
    "read_execd_environ",
    "alloc_10gib",
    "fork_bomb",
];

/// The probe's answer as (name, escaped) pairs, checking that it tried everything.
fn parse(answer: &[u8]) -> Vec<(String, bool)> {
    let text = String::from_utf8_lossy(answer);
    let pairs: Vec<(String, bool)> = text
        .lines()
        .map(|l| {
            let (name, verdict) = l.split_once('=').unwrap_or_else(|| panic!("not name=verdict: {l:?} in {text}"));
            assert!(verdict == "blocked" || verdict == "ESCAPED", "{l:?}");
            (name.to_string(), verdict == "ESCAPED")
        })
        .collect();
    let names: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, PROBES, "the probe did not try every escape:\n{text}");
    pairs
}

#[test]
fn a_contract_trying_every_escape_is_stopped_each_time_and_the_network_keeps_closing_ledgers() {
    let cluster = Cluster::start(ClusterOptions {
        nodes: 3,
        contract: Some(compile("escape")),
        roundtime_ms: 200,
        ..Default::default()
    })
    .or_panic();
    let url = cluster.nodes[0].url();
    let port = cluster.nodes[1].peerport;
    let answer = send_one(&url, format!("probe {port}").as_bytes(), LONG);
    let escaped: Vec<String> = parse(&answer).into_iter().filter(|(_, e)| *e).map(|(n, _)| n).collect();
    assert!(escaped.is_empty(), "the contract escaped: {escaped:?}\n{}", String::from_utf8_lossy(&answer));
    for node in &cluster.nodes {
        for outside in ["x", "y"] {
            assert!(
                !node.dir.join(outside).exists(),
                "the contract wrote {outside} beside state/ of {}",
                node.dir.display()
            );
        }
    }
    // The network goes on: more ledgers close, the contract still answers, every chain verifies.
    let seq = cluster.nodes[0].lcl_seq();
    cluster.wait_all_at(seq + 3, LONG).or_panic();
    assert_eq!(send_one(&url, b"still here", LONG), b"still here");
    for node in &cluster.nodes {
        let (code, text) = node.verify().or_panic();
        assert_eq!(code, 0, "{text}");
    }
}

/// The control: with `sandbox: false` (what every node did before issue 20) the same probe
/// reports escapes, so its "blocked" above means something.
#[test]
fn without_the_sandbox_the_same_probe_escapes() {
    let cluster = Cluster::start(ClusterOptions {
        nodes: 1,
        contract: Some(compile("escape")),
        edit: Some(Box::new(|_, c| c.sandbox = false)),
        ..Default::default()
    })
    .or_panic();
    let node = &cluster.nodes[0];
    let answer = send_one(&node.url(), format!("probe {}", node.peerport).as_bytes(), LONG);
    let escaped: Vec<String> = parse(&answer).into_iter().filter(|(_, e)| *e).map(|(n, _)| n).collect();
    for expected in [
        "read_key",
        "connect_consensusd",
        "tcp_peer_port",
        "write_parent",
        "symlink_read_key",
        "alloc_10gib",
        "fork_bomb",
    ] {
        assert!(escaped.iter().any(|e| e == expected), "{expected} did not escape without the sandbox: {escaped:?}");
    }
}

/// Not root: the node runs as an ordinary user (here `nobody`, through `setpriv`), so the
/// contract shares it (`sandbox_allow_missing: ["own_user"]`, as `hotpocket new` writes for such
/// a user). Landlock and seccomp still stop every escape but one: the process limit counts per
/// uid and so is not enforced, which is what `own_user` being missing means.
#[test]
fn as_an_ordinary_user_the_node_still_stops_every_escape_but_the_process_limit() {
    use hp_localnet::cluster::Host;
    const NOBODY: u32 = 65534;
    let prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
    let mut cluster = hp_localnet::Cluster::create(ClusterOptions {
        nodes: 1,
        contract: Some(compile("escape")),
        hosts: Some(vec![Host { exec_prefix: prefix.map(String::from).to_vec(), ..Host::localhost() }]),
        edit: Some(Box::new(|_, c| {
            c.contract_user = None;
            c.sandbox_allow_missing = vec![hp_cfg::Protection::OwnUser];
        })),
        ..Default::default()
    })
    .or_panic();
    fn give(path: &std::path::Path) {
        std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY)).unwrap();
        if path.is_dir() && !path.is_symlink() {
            for entry in std::fs::read_dir(path).unwrap() {
                give(&entry.unwrap().path());
            }
        }
    }
    give(cluster.root());
    cluster.node(0).start().or_panic();
    cluster.node(0).wait_ready(LONG).or_panic();
    let node = &cluster.nodes[0];
    let log = node.log();
    assert!(log.contains("contract sandbox ready") && log.contains("own_user"), "{log}");
    let answer = send_one(&node.url(), format!("probe {}", node.peerport).as_bytes(), LONG);
    let escaped: Vec<String> = parse(&answer).into_iter().filter(|(_, e)| *e).map(|(n, _)| n).collect();
    assert_eq!(escaped, ["fork_bomb"], "{}", String::from_utf8_lossy(&answer));
    assert_eq!(send_one(&node.url(), b"still here", LONG), b"still here");
}
