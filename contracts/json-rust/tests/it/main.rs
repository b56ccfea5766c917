//! The Rust example contract through a real node: `hp-example-json` installed as the
//! contract of a one-node network with `stdinfmt: "json"`, driven by users over the websocket.

use hp_tests::OrPanic;
use hp_tests::user::send_one;
use hp_tests::{Cluster, ClusterOptions};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

fn json_cluster() -> Cluster {
    Cluster::start(ClusterOptions {
        nodes: 1,
        contract: Some(PathBuf::from(env!("CARGO_BIN_EXE_hp-example-json"))),
        edit: Some(Box::new(|_, cfg| cfg.stdinfmt = hp_cfg::StdinFormat::Json)),
        ..Default::default()
    })
    .or_panic()
}

fn parse(output: &[u8]) -> Value {
    serde_json::from_slice(output).unwrap_or_else(|e| panic!("output is not JSON ({e}): {output:?}"))
}

#[test]
fn each_user_gets_a_json_answer_and_the_totals_carry_across_rounds() {
    let cluster = json_cluster();
    let url = cluster.nodes[0].url();

    let first = parse(&send_one(&url, b"hello", TIMEOUT));
    assert_eq!(first["input"], "hello", "{first}");
    assert_eq!(first["bytes"], 5);
    assert_eq!(first["total_inputs"], 1);
    assert_eq!(first["lcl"].as_str().map(str::len), Some(64), "lcl is a hex hash: {first}");

    let second = parse(&send_one(&url, "grüße".as_bytes(), TIMEOUT));
    assert_eq!(second["input"], "grüße");
    assert_eq!(second["total_inputs"], 2, "state carried from the earlier round: {second}");
    assert_eq!(second["total_bytes"], 5 + "grüße".len());

    let state = std::fs::read_to_string(cluster.nodes[0].dir.join("state").join(hp_example_json::TOTALS_FILE))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parse(state.as_bytes())["inputs"], 2);
}
