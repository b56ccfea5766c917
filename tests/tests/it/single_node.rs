//! One node, a UNL of itself: the foundation's round trip (issue 2).

use hp_tests::OrPanic;
use hp_tests::bins::bin;
use hp_tests::{Cluster, ClusterOptions};
use std::process::Command;
use std::time::Duration;

#[test]
fn a_user_input_comes_back_upper_cased_through_a_real_node() {
    let cluster = Cluster::start(ClusterOptions::default()).or_panic();
    let node = &cluster.nodes[0];
    let out = Command::new(bin("hp-client").or_panic())
        .arg(node.url())
        .args(["--send", "hello", "--wait", "1", "--timeout", "20"])
        .output()
        .unwrap();
    assert!(out.status.success(), "hp-client failed: {}\n{}", String::from_utf8_lossy(&out.stderr), cluster.logs());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO\n");
    // The input closed a ledger that carries it, with the node's own signature.
    let ledgers = node.ledgers().or_panic();
    assert!(ledgers.iter().any(|l| l["inputs"] == 1 && l["signers"] == 1), "{ledgers:?}");
    let (code, text) = node.verify().or_panic();
    assert_eq!(code, 0, "{text}");
}

#[test]
fn an_idle_node_closes_heartbeat_ledgers() {
    let cluster = Cluster::start(ClusterOptions { roundtime_ms: 100, ..Default::default() }).or_panic();
    cluster.wait_all_at(5, Duration::from_secs(20)).or_panic();
    let ledgers = cluster.nodes[0].ledgers().or_panic();
    assert!(ledgers.len() >= 6);
    assert!(ledgers.iter().skip(1).all(|l| l["inputs"] == 0));
}

/// Overload: once the inputs waiting for a ledger reach `max_pending_input_bytes`, the node
/// refuses further inputs with an error frame naming the limit (the connection stays open),
/// answers every input it accepted, and accepts again once the backlog is gone. The contract
/// takes a second per run, so inputs pile up while it runs.
#[test]
fn inputs_past_the_pending_limit_are_refused_with_a_reason_and_accepted_again_later() {
    use hp_client::{Client, Output};
    use std::collections::HashSet;
    async fn next_frame(client: &mut Client, within: Duration) -> Output {
        match tokio::time::timeout(within, client.recv()).await {
            Ok(Some(output)) => output,
            other => panic!("expected a frame within {within:?}, got {other:?}"),
        }
    }
    const INPUTS: usize = 60;
    const SIZE: usize = 2048;
    let cluster = Cluster::start(ClusterOptions {
        contract: Some(hp_tests::contracts::compile("slow")),
        edit: Some(Box::new(|_, c| c.max_pending_input_bytes = 64 * 1024)),
        ..Default::default()
    })
    .or_panic();
    let url = cluster.nodes[0].url();
    let token = |i: usize| format!("t{i};");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let key = hp_client::generate_key();
        let mut client = Client::connect(&url, &key).await.unwrap();
        for i in 0..INPUTS {
            let mut input = token(i).into_bytes();
            input.resize(SIZE, b'x');
            client.send(&input).await.unwrap();
        }
        let (mut answered, mut refused) = (HashSet::new(), 0);
        while answered.len() + refused < INPUTS {
            match next_frame(&mut client, Duration::from_secs(60)).await {
                Output::Data(data) => {
                    for piece in data.split(|b| *b == b'x').filter(|p| !p.is_empty()) {
                        let piece = String::from_utf8(piece.to_vec()).unwrap();
                        assert!(answered.insert(piece.clone()), "{piece} answered twice");
                    }
                }
                Output::Error(reason) => {
                    assert!(reason.contains("max_pending_input_bytes"), "refused for another reason: {reason}");
                    refused += 1;
                }
            }
        }
        assert_eq!(answered.len() + refused, INPUTS, "answered {answered:?}, {refused} refused");
        assert!(refused > 0, "all {INPUTS} inputs were taken: the limit did not bite");
        assert!(answered.contains(&token(0)), "the first input, sent into an empty queue, was refused");
        // The backlog is gone: the same connection's next input is taken and answered.
        client.send(b"after;").await.unwrap();
        match next_frame(&mut client, Duration::from_secs(30)).await {
            Output::Data(data) => assert_eq!(&data[..], b"after;"),
            Output::Error(reason) => panic!("refused after the backlog was gone: {reason}"),
        }
    });
    let log = cluster.nodes[0].log();
    assert!(log.contains("refusing users' new inputs"), "the node did not log that it refused inputs");
}
