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

#[test]
fn outputs_reach_a_client_connected_to_every_node_with_proofs_it_verifies_against_the_unl() {
    let cluster = cluster(3);
    for protocol in ["json", "bson"] {
        let spec = json!({
            "servers": tls_urls(&cluster),
            "trusted": unl(&cluster),
            "protocol": protocol,
            "required": 3,
            "ops": [
                {"op": "input", "input": format!("hello {protocol}")},
                // One contract_output from each of the three nodes, each verified by the client.
                {"op": "outputs", "count": 3, "timeout_ms": 20000},
            ],
        });
        let results = js::run(&spec, CLIENT_TIMEOUT);
        let input = step(&results, "input");
        assert_eq!(input["status"], "accepted", "{protocol}: {results:?}");
        let outputs = step(&results, "outputs")["outputs"].as_array().cloned().unwrap_or_default();
        assert_eq!(outputs.len(), 3, "{protocol}: one verified output from each node: {outputs:?}");
        for output in &outputs {
            assert_eq!(output["output"], format!("HELLO {}", protocol.to_uppercase()), "{protocol}: {output}");
            assert_eq!(output["ledgerSeqNo"], input["ledgerSeqNo"], "{protocol}: the ledger that ran the input");
            assert_eq!(output["ledgerHash"], input["ledgerHash"], "{protocol}");
        }
    }
}

/// A relay on the user's side of a plain `ws://` port that rewrites `from` into `to` (the same
/// length, so the websocket framing still holds) in what the node sends; counts rewrites.
struct TamperingRelay {
    port: u16,
    rewrites: std::sync::Arc<std::sync::atomic::AtomicU64>,
    _runtime: tokio::runtime::Runtime,
}

impl TamperingRelay {
    fn start(target: std::net::SocketAddr, from: &'static [u8], to: &'static [u8]) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        assert_eq!(from.len(), to.len());
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().or_panic();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).or_panic();
        let port = listener.local_addr().or_panic().port();
        let rewrites = std::sync::Arc::new(AtomicU64::new(0));
        let counter = rewrites.clone();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(node) = tokio::net::TcpStream::connect(target).await else { continue };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut node_read, mut node_write) = node.into_split();
                tokio::spawn(async move { tokio::io::copy(&mut client_read, &mut node_write).await });
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(n) = node_read.read(&mut buffer).await {
                        if n == 0 {
                            break;
                        }
                        let chunk = &mut buffer[..n];
                        let mut i = 0;
                        while i + from.len() <= chunk.len() {
                            if &chunk[i..i + from.len()] == from {
                                chunk[i..i + from.len()].copy_from_slice(to);
                                counter.fetch_add(1, Ordering::Relaxed);
                            }
                            i += 1;
                        }
                        if client_write.write_all(chunk).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { port, rewrites, _runtime: runtime }
    }

    fn rewrites(&self) -> u64 {
        self.rewrites.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The threat model's relay: someone between a user and the node (here on `ws://`, where no
/// TLS stops them) rewrites the output. The client's own check of the proof refuses it, while a
/// user connected directly gets the output.
#[test]
fn a_relay_that_rewrites_an_output_cannot_make_the_client_accept_it() {
    let cluster = cluster(3);
    let (_, plain) = cluster.nodes[0].hotpocket_urls().expect("the cluster serves HotPocket 0.6");
    let target: std::net::SocketAddr = plain.trim_start_matches("ws://").parse().or_panic();
    let relay = TamperingRelay::start(target, b"UNPROVEN", b"FORGED!!");
    let through_relay = json!({
        "servers": [format!("ws://127.0.0.1:{}", relay.port)],
        "trusted": unl(&cluster),
        "protocol": "json",
        "required": 1,
        "ops": [
            {"op": "input", "input": "unproven"},
            {"op": "outputs", "count": 1, "timeout_ms": 5000},
        ],
    });
    let results = js::run(&through_relay, CLIENT_TIMEOUT);
    assert_eq!(step(&results, "input")["status"], "accepted", "{results:?}");
    assert!(relay.rewrites() > 0, "the relay never saw the output it means to forge");
    let outputs = step(&results, "outputs")["outputs"].as_array().cloned().unwrap_or_default();
    assert!(outputs.is_empty(), "the client accepted a rewritten output: {outputs:?}");

    let direct = json!({
        "servers": [plain],
        "trusted": unl(&cluster),
        "protocol": "json",
        "required": 1,
        "ops": [
            {"op": "input", "input": "unproven"},
            {"op": "outputs", "count": 1, "timeout_ms": 20000},
        ],
    });
    let results = js::run(&direct, CLIENT_TIMEOUT);
    let outputs = step(&results, "outputs")["outputs"].as_array().cloned().unwrap_or_default();
    assert_eq!(outputs.first().map(|o| o["output"].clone()), Some(json!("UNPROVEN")), "{results:?}");
}

#[test]
fn hp_client_speaks_hotpocket_and_prints_only_outputs_the_unl_signed() {
    let cluster = cluster(3);
    let (_, plain) = cluster.nodes[1].hotpocket_urls().expect("the cluster serves HotPocket 0.6");
    let bin = hp_tests::bins::bin_dir().or_panic().join("hp-client");
    let run = |trust: &str| {
        std::process::Command::new(&bin)
            .args([
                plain.as_str(),
                "--protocol",
                "hotpocket",
                "--trust",
                trust,
                "--send",
                "signed hello",
                "--timeout",
                "20",
            ])
            .output()
            .or_panic()
    };
    let out = run(&format!("ed{}", cluster.nodes[1].pubkey));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "SIGNED HELLO");
    // Trusting a key the network does not have: the node is refused at the handshake.
    let out = run(&format!("ed{}", "33".repeat(32)));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not among the trusted keys"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_ledger_query_returns_the_ledger_that_carries_an_input_with_its_inputs_and_outputs() {
    let cluster = cluster(3);
    for protocol in ["json", "bson"] {
        let spec = json!({
            "servers": [tls_urls(&cluster)[2]],
            "trusted": unl(&cluster),
            "protocol": protocol,
            "required": 1,
            "ops": [
                {"op": "input", "input": format!("query me {protocol}")},
                {"op": "outputs", "count": 1, "timeout_ms": 20000},
                {"op": "ledger", "seq": "last_input", "inputs": true, "outputs": true},
                {"op": "ledger", "seq": 1_000_000},
            ],
        });
        let results = js::run(&spec, CLIENT_TIMEOUT);
        let user = step(&results, "connect")["user"].clone();
        let input = step(&results, "input");
        assert_eq!(input["status"], "accepted", "{protocol}: {results:?}");
        let ledgers: Vec<&Value> = results.iter().filter(|r| r["op"] == "ledger").collect();
        let ledger = &ledgers[0]["ledger"];
        assert_eq!(ledger["seqNo"], input["ledgerSeqNo"], "{protocol}: {ledger}");
        assert_eq!(ledger["hash"], input["ledgerHash"], "{protocol}: the ledger the status named");
        let sent = format!("query me {protocol}");
        assert!(
            ledger["inputs"].as_array().into_iter().flatten().any(|i| i["pubkey"] == user && i["blob"] == sent),
            "{protocol}: the input is in the ledger: {ledger}"
        );
        assert!(
            ledger["outputs"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["pubkey"] == user && o["blobs"][0] == sent.to_uppercase()),
            "{protocol}: the output is in the ledger's outcome: {ledger}"
        );
        assert_eq!(ledgers[1]["ledger"], Value::Null, "{protocol}: a ledger the node does not hold");
    }
}

#[test]
fn a_subscribed_client_is_told_of_each_new_ledger_and_the_ledgers_link() {
    let cluster = cluster(3);
    for protocol in ["json", "bson"] {
        let spec = json!({
            "servers": [tls_urls(&cluster)[0]],
            "trusted": unl(&cluster),
            "protocol": protocol,
            "required": 1,
            "ops": [
                {"op": "subscribe_ledgers"},
                {"op": "input", "input": "a ledger with an input"},
                {"op": "ledger_events", "count": 3, "timeout_ms": 20000},
            ],
        });
        let results = js::run(&spec, CLIENT_TIMEOUT);
        let events = step(&results, "ledger_events")["events"].as_array().cloned().unwrap_or_default();
        assert!(events.len() >= 3, "{protocol}: {results:?}");
        let highest = events.iter().filter_map(|e| e["seqNo"].as_u64()).max().unwrap_or(0);
        cluster.wait_all_at(highest, Duration::from_secs(30)).or_panic();
        let chain = cluster.nodes[1].ledgers().or_panic();
        for event in &events {
            let stored = chain.iter().find(|l| l["seq"].as_u64() == event["seqNo"].as_u64());
            assert_eq!(stored.map(|l| l["hash"].clone()), Some(event["hash"].clone()), "{protocol}: {event}");
            // The members that closed it, as the chain names them.
            assert_eq!(
                stored.map(|l| l["config_hash"].clone()),
                Some(event["configHash"].clone()),
                "{protocol}: {event}"
            );
        }
        for pair in events.windows(2) {
            assert!(pair[0]["seqNo"].as_u64() < pair[1]["seqNo"].as_u64(), "{protocol}: in order: {events:?}");
            if pair[0]["seqNo"].as_u64().map(|s| s + 1) == pair[1]["seqNo"].as_u64() {
                assert_eq!(pair[1]["prevHash"], pair[0]["hash"], "{protocol}: each links to the one before");
            }
        }
        let input = step(&results, "input");
        assert!(
            events.iter().any(|e| e["seqNo"] == input["ledgerSeqNo"] && e["hash"] == input["ledgerHash"]),
            "{protocol}: the ledger with the input was announced: {events:?}"
        );
    }
}

#[test]
fn a_read_request_runs_the_contract_on_every_node_without_a_ledger() {
    let cluster = cluster(3);
    let carried = |cluster: &Cluster| -> u64 {
        cluster.nodes[0].ledgers().or_panic().iter().map(|l| l["inputs"].as_u64().unwrap_or(0)).sum()
    };
    let before = carried(&cluster);
    for protocol in ["json", "bson"] {
        let spec = json!({
            "servers": tls_urls(&cluster),
            "trusted": unl(&cluster),
            "protocol": protocol,
            "required": 3,
            "ops": [{"op": "read", "request": format!("read {protocol}")}],
        });
        let results = js::run(&spec, CLIENT_TIMEOUT);
        let replies = step(&results, "read")["replies"].as_array().cloned().unwrap_or_default();
        let want = json!(format!("READ {}", protocol.to_uppercase()));
        assert_eq!(
            replies,
            vec![want.clone(), want.clone(), want],
            "{protocol}: one answer from each node: {results:?}"
        );
    }
    assert_eq!(carried(&cluster), before, "a read request became an input of a ledger");
}

#[test]
fn a_subscribed_client_hears_how_well_the_node_is_connected_and_how_proposals_reach_it() {
    let health = |cluster: &Cluster, node: usize, count: usize| {
        let (_, plain) = cluster.nodes[node].hotpocket_urls().expect("the cluster serves HotPocket 0.6");
        let spec = json!({
            "servers": [plain],
            "trusted": unl(cluster),
            "protocol": "bson",
            "required": 1,
            "ops": [{"op": "subscribe_health"}, {"op": "health_events", "count": count, "timeout_ms": 20000}],
        });
        let results = js::run(&spec, CLIENT_TIMEOUT);
        step(&results, "health_events")["events"].as_array().cloned().unwrap_or_default()
    };
    let cluster = cluster(3);
    let events = health(&cluster, 0, 2);
    let first = events.first().unwrap_or_else(|| panic!("no health event"));
    assert_eq!((first["event"].as_str(), first["peerCount"].as_u64()), (Some("connectivity"), Some(2)), "{first}");
    assert_eq!(first["weaklyConnected"], false, "{first}");
    // Ledgers close, led in turn by the other two: how their proposals reached this node.
    let proposal = events.iter().find(|e| e["event"] == "proposal").unwrap_or_else(|| panic!("{events:?}"));
    for latency in ["commLatency", "readLatency"] {
        let ms = |f: &str| proposal[latency][f].as_u64().unwrap_or_else(|| panic!("{latency}.{f}: {proposal}"));
        assert!(ms("min") <= ms("avg") && ms("avg") <= ms("max"), "{proposal}");
        assert!(ms("max") < 10_000, "on one host a proposal takes less than 10 s: {proposal}");
    }
    assert!(proposal["batchSize"].is_u64(), "{proposal}");
    drop(cluster);

    // One node of three started: it has no peers, and says it is weakly connected.
    let mut alone = Cluster::create(ClusterOptions { nodes: 3, hotpocket: true, ..Default::default() }).or_panic();
    alone.node(0).start().or_panic();
    alone.node(0).wait_ready(Duration::from_secs(30)).or_panic();
    let events = health(&alone, 0, 1);
    let first = events.first().unwrap_or_else(|| panic!("no health event"));
    assert_eq!((first["peerCount"].as_u64(), first["weaklyConnected"].as_bool()), (Some(0), Some(true)), "{first}");
}

#[test]
fn an_input_signed_with_another_key_is_refused_as_bad_sig_and_the_users_own_then_runs() {
    use hp_client::Output;
    use hp_client::hotpocket::HpClient;
    let cluster = cluster(3);
    let (_, plain) = cluster.nodes[0].hotpocket_urls().expect("the cluster serves HotPocket 0.6");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().or_panic();
    rt.block_on(async {
        let key = hp_client::generate_key();
        let client = HpClient::connect(&plain, &key, None, 5).await.or_panic();
        let (mut tx, mut rx) = client.split();
        let stranger = hp_client::generate_key();
        tx.send_signed_by(b"forged", &stranger).await.or_panic();
        let first = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.or_panic();
        assert!(matches!(&first, Some(Output::Error(reason)) if reason == "bad_sig"), "{first:?}");
        tx.send(b"genuine").await.or_panic();
        let second = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.or_panic();
        assert!(matches!(&second, Some(Output::Data(d)) if d.as_ref() == b"GENUINE"), "{second:?}");
    });
}
