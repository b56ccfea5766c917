//! The HotPocket 0.6 user protocol with the published client (issue 17): hotpocket-js-client
//! 0.5.7, unchanged, driven by Node.js against real nodes over `wss://` and `ws://`.

use hp_tests::js;
use hp_tests::{Cluster, ClusterOptions, OrPanic};
use serde_json::{Value, json};
use std::time::Duration;

const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

fn cluster(nodes: usize) -> Cluster {
    let cluster = Cluster::start(ClusterOptions { nodes, hotpocket: true, ..Default::default() }).or_panic();
    cluster.wait_all_at(1, Duration::from_secs(30)).or_panic();
    cluster
}

fn unl(cluster: &Cluster) -> Vec<String> {
    cluster.nodes.iter().map(|n| format!("ed{}", n.pubkey)).collect()
}

fn tls_urls(cluster: &Cluster) -> Vec<String> {
    cluster.nodes.iter().filter_map(|n| n.hotpocket_urls()).map(|(tls, _)| tls).collect()
}

fn step<'a>(results: &'a [Value], op: &str) -> &'a Value {
    results.iter().find(|r| r["op"] == op).unwrap_or_else(|| panic!("no `{op}` result in {results:?}"))
}

#[test]
fn a_client_trusting_the_unl_connects_to_every_node_over_tls_and_reads_status_and_lcl() {
    let cluster = cluster(3);
    let unl = unl(&cluster);
    for protocol in ["json", "bson"] {
        let spec = json!({
            "servers": tls_urls(&cluster),
            "trusted": unl,
            "protocol": protocol,
            "required": 3,
            "ops": [{"op": "status"}, {"op": "lcl"}],
        });
        let results = js::run(&spec, CLIENT_TIMEOUT);
        assert_eq!(step(&results, "connect")["connected"], true, "{protocol}: {results:?}");
        let statuses = step(&results, "status")["results"].as_array().cloned().unwrap_or_default();
        assert_eq!(statuses.len(), 3, "{protocol}: one status from each node: {statuses:?}");
        for status in &statuses {
            assert!(status["hpVersion"].as_str().is_some_and(|v| v.starts_with("0.6.")), "{status}");
            assert!(status["ledgerSeqNo"].as_u64().is_some_and(|s| s >= 1), "{status}");
            assert_eq!(status["ledgerHash"].as_str().map(str::len), Some(64), "{status}");
            let mut shown: Vec<String> = status["currentUnl"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect();
            shown.sort();
            let mut want = unl.clone();
            want.sort();
            assert_eq!(shown, want, "{protocol}: the UNL each node reports");
        }
        // Each node's last closed ledger is one of the cluster's chain.
        let lcls = step(&results, "lcl")["results"].as_array().cloned().unwrap_or_default();
        assert_eq!(lcls.len(), 3, "{lcls:?}");
        let highest = lcls.iter().filter_map(|l| l["ledgerSeqNo"].as_u64()).max().unwrap_or(0);
        cluster.wait_all_at(highest, Duration::from_secs(30)).or_panic();
        let chain = cluster.nodes[0].ledgers().or_panic();
        for lcl in &lcls {
            let seq = lcl["ledgerSeqNo"].as_u64();
            let ledger = chain.iter().find(|l| l["seq"].as_u64() == seq);
            assert_eq!(ledger.map(|l| l["hash"].clone()), Some(lcl["ledgerHash"].clone()), "{protocol}: {lcl}");
        }
    }
}

#[test]
fn a_client_that_trusts_other_keys_refuses_the_node() {
    let cluster = cluster(1);
    let stranger = format!("ed{}", "11".repeat(32));
    let spec = json!({
        "servers": tls_urls(&cluster),
        "trusted": [stranger],
        "protocol": "json",
        "required": 1,
        "timeout_ms": 3000,
        "ops": [{"op": "status"}],
    });
    let results = js::run(&spec, CLIENT_TIMEOUT);
    assert_eq!(step(&results, "connect")["connected"], false, "{results:?}");
}

#[test]
fn the_plain_port_serves_the_same_protocol_without_tls() {
    let cluster = cluster(1);
    let (_, plain) = cluster.nodes[0].hotpocket_urls().expect("the cluster serves HotPocket 0.6");
    let spec = json!({
        "servers": [plain],
        "trusted": unl(&cluster),
        "protocol": "bson",
        "required": 1,
        "ops": [{"op": "lcl"}],
    });
    let results = js::run(&spec, CLIENT_TIMEOUT);
    assert_eq!(step(&results, "connect")["connected"], true, "{results:?}");
    let lcl = &step(&results, "lcl")["results"][0];
    assert!(lcl["ledgerSeqNo"].as_u64().is_some_and(|s| s >= 1), "{lcl}");
}

/// The `input` results of a run, in order.
fn inputs(results: &[Value]) -> Vec<&Value> {
    results.iter().filter(|r| r["op"] == "input").collect()
}

#[test]
fn signed_inputs_are_accepted_in_a_closed_ledger_and_replays_and_stale_windows_are_refused() {
    let cluster = cluster(3);
    for protocol in ["json", "bson"] {
        let nonce = 1_000 + u64::from(protocol == "bson") * 1_000;
        let spec = json!({
            "servers": tls_urls(&cluster),
            "trusted": unl(&cluster),
            "protocol": protocol,
            "required": 3,
            "ops": [
                {"op": "input", "input": "first", "nonce": nonce},
                // The same nonce again, other bytes: a replay of the user's nonce.
                {"op": "input", "input": "again", "nonce": nonce},
                // A lower nonce than one already in the chain.
                {"op": "input", "input": "older", "nonce": nonce - 1},
                {"op": "input", "input": "second", "nonce": nonce + 1},
                // A window past max_input_ledger_offset (10), and one already over.
                {"op": "input", "input": "far", "nonce": nonce + 2, "max_ledger": 50},
                {"op": "input", "input": "late", "nonce": nonce + 3, "max_ledger": 1, "is_offset": false},
            ],
        });
        let results = js::run(&spec, CLIENT_TIMEOUT);
        assert_eq!(step(&results, "connect")["connected"], true, "{protocol}: {results:?}");
        let inputs = inputs(&results);
        assert_eq!(inputs.len(), 6, "{protocol}: {results:?}");
        let chain = {
            let highest = inputs.iter().filter_map(|r| r["ledgerSeqNo"].as_u64()).max().unwrap_or(0);
            cluster.wait_all_at(highest, Duration::from_secs(30)).or_panic();
            cluster.nodes[1].ledgers().or_panic()
        };
        for (i, want) in [(0, "accepted"), (3, "accepted")] {
            let r = inputs[i];
            assert_eq!(r["status"], want, "{protocol} input {i}: {r}");
            let seq = r["ledgerSeqNo"].as_u64();
            let ledger = chain.iter().find(|l| l["seq"].as_u64() == seq).unwrap_or_else(|| panic!("no ledger {seq:?}"));
            assert_eq!(ledger["hash"], r["ledgerHash"], "{protocol}: the status names the ledger that carries it");
        }
        assert!(inputs[0]["ledgerSeqNo"].as_u64() <= inputs[3]["ledgerSeqNo"].as_u64());
        let reasons: Vec<&str> = inputs.iter().map(|r| r["reason"].as_str().unwrap_or("")).collect();
        assert_eq!(inputs[1]["status"], "rejected", "{protocol}: {:?}", inputs[1]);
        assert!(["already_submitted", "nonce_expired"].contains(&reasons[1]), "{protocol}: {reasons:?}");
        assert_eq!((inputs[2]["status"].as_str(), reasons[2]), (Some("rejected"), "nonce_expired"), "{protocol}");
        assert_eq!(reasons[4], "max_ledger_offset_exceeded", "{protocol}");
        assert_eq!(reasons[5], "max_ledger_expired", "{protocol}");
    }
}
