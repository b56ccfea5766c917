//! The C example contract (`contracts/echo-c/contract.c`), compiled here with cc and run by a
//! real node: inputs come back upper-cased with a count kept in the contract's state.

use hp_tests::OrPanic;
use hp_tests::user::send_one;
use hp_tests::{Cluster, ClusterOptions};
use std::path::Path;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn the_c_example_upper_cases_and_counts_inputs_across_rounds() {
    let build = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/echo-c/contract.c");
    let binary = build.path().join("echo-c");
    hp_localnet::contract::compile_c(&source, &binary).unwrap_or_else(|e| panic!("{e}"));

    let cluster = Cluster::start(ClusterOptions { nodes: 1, contract: Some(binary), ..Default::default() }).or_panic();
    let url = cluster.nodes[0].url();
    let first = send_one(&url, b"hello", TIMEOUT);
    assert_eq!(String::from_utf8_lossy(&first), "HELLO (input #1)");
    let second = send_one(&url, b"Hot Pocket 0.1", TIMEOUT);
    assert_eq!(String::from_utf8_lossy(&second), "HOT POCKET 0.1 (input #2)");

    let count = std::fs::read_to_string(cluster.nodes[0].dir.join("state/inputs.count"))
        .unwrap_or_else(|e| panic!("the contract's state file: {e}"));
    assert_eq!(count.trim(), "2");
}
