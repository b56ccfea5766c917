//! The HotPocket 0.6 contract ABI with the published contract library (issue 18): the example
//! contract `contracts/nodejs`, written with hotpocket-nodejs-contract 0.7.4 unchanged, on a
//! real 3-node cluster with `stdinfmt: "hotpocket"`, driven by the published client
//! (hotpocket-js-client 0.5.7) and by a seed-protocol user.

use hp_tests::js;
use hp_tests::{Cluster, ClusterOptions, OrPanic};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

fn nodejs_cluster() -> Cluster {
    nodejs_cluster_with_observers(3, 0)
}

/// `nodes` nodes running the Node.js contract, the last `observers` of them observers.
fn nodejs_cluster_with_observers(nodes: usize, observers: usize) -> Cluster {
    let cluster = Cluster::start(ClusterOptions {
        nodes,
        hotpocket: true,
        contract: Some(hp_tests::contracts::nodejs()),
        // Node.js takes tens of milliseconds to start: fewer idle rounds on a small machine.
        roundtime_ms: 1000,
        edit: Some(Box::new(move |_, cfg| {
            cfg.stdinfmt = hp_cfg::StdinFormat::Hotpocket;
            // The contract's script and its node_modules stay in the repository (issue 20).
            cfg.sandbox_read_paths = vec![hp_tests::contracts::nodejs_dir()];
            let all = cfg.unl.clone();
            cfg.unl = all[..nodes - observers].to_vec();
            cfg.observers = all[nodes - observers..].to_vec();
        })),
        ..Default::default()
    })
    .or_panic();
    cluster.wait_all_at(1, Duration::from_secs(60)).or_panic();
    cluster
}

fn step<'a>(results: &'a [Value], op: &str) -> &'a Value {
    results.iter().find(|r| r["op"] == op).unwrap_or_else(|| panic!("no `{op}` result in {results:?}"))
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn notes(cluster: &Cluster, node: usize) -> Value {
    let path = cluster.nodes[node].dir.join("state").join("notes.json");
    parse(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

#[test]
fn the_library_contract_answers_keeps_its_state_on_every_node_hears_every_member_over_npl_and_reads_read_only() {
    let cluster = nodejs_cluster();
    let unl: Vec<String> = cluster.nodes.iter().map(|n| format!("ed{}", n.pubkey)).collect();
    let servers: Vec<String> = cluster.nodes.iter().filter_map(|n| n.hotpocket_urls()).map(|(tls, _)| tls).collect();
    let spec = json!({
        "servers": servers,
        "trusted": unl,
        "protocol": "json",
        "required": 3,
        "ops": [
            {"op": "input", "input": "{\"op\":\"add\",\"text\":\"first\"}"},
            {"op": "input", "input": "{\"op\":\"add\",\"text\":\"second\"}"},
            {"op": "input", "input": "{\"op\":\"npl\"}"},
            {"op": "read", "request": "how many?"},
            // Two messages per input, from each of the 3 nodes.
            {"op": "outputs", "count": 18, "timeout_ms": 30000},
        ],
    });
    let results = js::run(&spec, CLIENT_TIMEOUT);
    assert_eq!(step(&results, "connect")["connected"], true, "{results:?}");
    let accepted: Vec<&Value> = results.iter().filter(|r| r["op"] == "input").collect();
    assert!(accepted.iter().all(|r| r["status"] == "accepted"), "{accepted:?}");

    // Every output the client shows passed its own check against the UNL's signatures.
    let outputs = step(&results, "outputs")["outputs"].as_array().cloned().unwrap_or_default();
    assert_eq!(outputs.len(), 18, "{outputs:?}");
    let first_ledger = accepted[0]["ledgerSeqNo"].as_u64();
    let of_first: Vec<Value> = outputs
        .iter()
        .filter(|o| o["ledgerSeqNo"].as_u64() == first_ledger)
        .map(|o| parse(o["output"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(of_first.len(), 6, "two messages from each node: {of_first:?}");
    for pair in of_first.chunks(2) {
        assert_eq!(pair[0]["op"], "add", "each node's messages in the order written: {pair:?}");
        assert_eq!(pair[0]["count"], 1);
        assert_eq!(pair[1], json!({"op": "added", "text": "first"}));
    }
    let counts: BTreeSet<String> = outputs
        .iter()
        .map(|o| parse(o["output"].as_str().unwrap_or_default()))
        .filter(|o| o["op"] == "add")
        .map(|o| o["count"].to_string())
        .collect();
    assert_eq!(counts, BTreeSet::from(["1".to_string(), "2".to_string()]), "the state carried to the next round");

    // NPL: each node's run heard all three members' messages for that round.
    let npl: Vec<Value> =
        outputs.iter().map(|o| parse(o["output"].as_str().unwrap_or_default())).filter(|o| o["op"] == "npl").collect();
    assert_eq!(npl, vec![json!({"op": "npl", "heard": 3, "unl": 3}); 3], "{npl:?}");
    let mut members = unl.clone();
    members.sort();
    let heard: Vec<Value> = outputs
        .iter()
        .map(|o| parse(o["output"].as_str().unwrap_or_default()))
        .filter(|o| o["op"] == "heard")
        .collect();
    assert_eq!(heard, vec![json!({"op": "heard", "members": members}); 3], "every member, by its key");

    // The read-only run saw the state of two notes; what it wrote was thrown away.
    let replies = step(&results, "read")["replies"].as_array().cloned().unwrap_or_default();
    assert_eq!(replies.len(), 3, "{replies:?}");
    for reply in &replies {
        assert_eq!(parse(reply.as_str().unwrap_or_default()), json!({"op": "read", "count": 2, "readonly": true}));
    }

    // The same state on every node once all have closed the NPL ledger.
    let npl_ledger = accepted[2]["ledgerSeqNo"].as_u64().unwrap_or(0);
    cluster.wait_all_at(npl_ledger + 1, Duration::from_secs(60)).or_panic();
    for node in 0..3 {
        assert_eq!(notes(&cluster, node), json!(["first", "second"]), "node {}", node + 1);
    }
    let chain = cluster.nodes[0].ledgers().or_panic();
    for node in &cluster.nodes[1..] {
        let theirs = node.ledgers().or_panic();
        let at = |chain: &[Value]| chain.iter().find(|l| l["seq"].as_u64() == Some(npl_ledger)).cloned();
        assert_eq!(at(&chain), at(&theirs), "node {} has another ledger {npl_ledger}", node.index + 1);
    }
}

#[test]
fn a_seed_protocol_user_gets_each_message_of_a_library_contract_as_its_own_frame() {
    let cluster = nodejs_cluster();
    let frames =
        hp_tests::user::send_and_collect(&cluster.nodes[0].url(), br#"{"op":"add","text":"seed"}"#, 2, CLIENT_TIMEOUT);
    let frames: Vec<Value> = frames.iter().map(|f| parse(&String::from_utf8_lossy(f))).collect();
    assert_eq!(frames[0]["op"], "add", "{frames:?}");
    assert_eq!(frames[0]["count"], 1);
    assert_eq!(frames[1], json!({"op": "added", "text": "seed"}));
}

/// Issue 19: the library's `getConfig` reads `../patch.cfg` (hp.cfg's values on a new network)
/// and its `updateConfig` writes it; the written patch is agreed with the state, so a later
/// round on another node reads it back.
#[test]
fn the_contract_library_reads_and_updates_patch_cfg_through_the_sandbox() {
    let cluster = nodejs_cluster();
    let ask = |node: usize, input: &[u8]| {
        let frames = hp_tests::user::send_and_collect(&cluster.nodes[node].url(), input, 1, CLIENT_TIMEOUT);
        parse(&String::from_utf8_lossy(&frames[0]))
    };
    let before = ask(0, br#"{"op":"config"}"#);
    assert_eq!(before["unl"], 3, "{before}");
    assert_eq!(before["version"], "1.0", "{before}");
    assert_eq!(ask(1, br#"{"op":"version","version":"2.5"}"#), json!({"op": "version", "version": "2.5"}));
    let after = ask(2, br#"{"op":"config"}"#);
    assert_eq!(after["version"], "2.5", "the patch written on every node in one round: {after}");
    assert_eq!(after["roundtime"], before["roundtime"]);
    // HotPocket users are told the agreed version: a client that expects it connects.
    let servers: Vec<String> =
        cluster.nodes.iter().filter_map(|n| n.hotpocket_urls().map(|(_, plain)| plain)).collect();
    let connects = |version: &str| {
        let spec = json!({"servers": servers, "required": servers.len(), "contract_version": version, "ops": []});
        step(&js::run(&spec, CLIENT_TIMEOUT), "connect")["connected"] == true
    };
    hp_tests::wait_until("every node to tell users version 2.5", Duration::from_secs(30), || {
        connects("2.5").then_some(())
    });
    assert!(!connects("1.0"), "a client expecting the old version refuses the nodes");
}

/// Issue 19: a roundtime the contract agrees (`updateConfig`) is the one every node runs its
/// rounds by and tells HotPocket users in `stat`.
#[test]
fn every_node_runs_by_and_reports_the_roundtime_the_contract_agreed() {
    let cluster = nodejs_cluster();
    let round_times = || -> Vec<u64> {
        let servers: Vec<String> =
            cluster.nodes.iter().filter_map(|n| n.hotpocket_urls().map(|(_, plain)| plain)).collect();
        let spec = json!({"servers": servers, "required": servers.len(), "ops": [{"op": "status"}]});
        let results = js::run(&spec, CLIENT_TIMEOUT);
        step(&results, "status")["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["roundTime"].as_u64())
            .collect()
    };
    assert_eq!(round_times(), vec![1000; 3], "hp.cfg's roundtime to begin with");
    assert_eq!(
        ask(&cluster, 1, &json!({"op": "roundtime", "roundtime": 1500})),
        json!({"op": "roundtime", "roundtime": 1500})
    );
    hp_tests::wait_until("every node to run by the agreed roundtime", Duration::from_secs(30), || {
        (round_times() == vec![1500; 3]).then_some(())
    });
    assert_eq!(ask(&cluster, 2, &json!({"op": "config"}))["roundtime"], 1500);
}

/// Issue 19: an input window (`max_input_ledger_offset`) the contract agrees is handed over to
/// like a UNL: from then on every node takes a signed input that names a last ledger past the
/// old window, the chain records the change, and every node's chain still verifies.
#[test]
fn a_wider_input_window_the_contract_agreed_is_the_one_every_node_judges_by() {
    let cluster = nodejs_cluster();
    let hp_url = cluster.nodes[0].hotpocket_urls().map(|(_, plain)| plain).unwrap_or_default();
    let far_input = |text: &str| {
        let spec = json!({
            "servers": [hp_url],
            "ops": [{"op": "input", "input": json!({"op": "add", "text": text}).to_string(), "max_ledger": 15}],
        });
        step(&js::run(&spec, CLIENT_TIMEOUT), "input").clone()
    };
    let refused = far_input("15 ledgers ahead");
    assert_eq!(refused["reason"], "max_ledger_offset_exceeded", "the genesis window is 10: {refused}");
    let answer = ask(&cluster, 1, &json!({"op": "input_window", "offset": 20}));
    assert_eq!(answer, json!({"op": "input_window", "offset": 20}));
    let accepted = hp_tests::wait_until("the wider window to be in force", Duration::from_secs(30), || {
        let status = far_input("15 ledgers ahead, once the window is 20");
        (status["status"] == "accepted").then_some(status)
    });
    let seq = accepted["ledgerSeqNo"].as_u64().unwrap_or_default();
    let ledgers = cluster.nodes[2].ledgers().or_panic();
    let change = ledgers.iter().find(|l| !l["unl_change"].is_null()).unwrap_or_else(|| panic!("{ledgers:?}"));
    assert_eq!(change["unl_change"]["max_input_ledger_offset"], 20, "{change}");
    assert_eq!(change["unl_change"]["unl"].as_array().map(Vec::len), Some(3), "the same members");
    for node in &cluster.nodes {
        hp_tests::wait_until("the input's ledger on every node", Duration::from_secs(30), || {
            (node.lcl_seq() >= seq).then_some(())
        });
        let (code, text) = node.verify().or_panic();
        assert_eq!(code, 0, "{text}");
    }
}

/// Issue 19: `round_limits.user_input_bytes` the contract agrees is handed over like the input
/// window: from then on a ledger carries at most that many bytes of one user's inputs (a single
/// larger one still goes alone), so inputs a user sends together run in successive ledgers.
#[test]
fn the_agreed_user_input_bytes_spread_one_users_inputs_over_ledgers() {
    use hp_client::{Client, Output};
    let cluster = nodejs_cluster();
    let answer = ask(&cluster, 0, &json!({"op": "user_input_bytes", "bytes": 50}));
    assert_eq!(answer, json!({"op": "user_input_bytes", "bytes": 50}));
    let change = hp_tests::wait_until("the hand-over to user_input_bytes 50", Duration::from_secs(30), || {
        let ledgers = cluster.nodes[0].ledgers().ok()?;
        ledgers.into_iter().find(|l| l["unl_change"]["user_input_bytes"] == 50)
    });
    let from = change["seq"].as_u64().unwrap_or(u64::MAX) + 1;
    hp_tests::wait_until("the new rules in force", Duration::from_secs(30), || {
        cluster.nodes.iter().all(|n| n.lcl_seq() >= from).then_some(())
    });
    // Four inputs of 40-odd bytes, sent together by one user: each runs in a ledger of its own.
    let url = cluster.nodes[1].url();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().or_panic();
    let ledgers: Vec<u64> = rt.block_on(async {
        let key = hp_client::generate_key();
        let mut client = Client::connect(&url, &key).await.or_panic();
        for i in 0..4 {
            let input = json!({"op": "add", "text": format!("note {i} {}", "x".repeat(20))}).to_string();
            client.send(input.as_bytes()).await.or_panic();
        }
        let mut ledgers = Vec::new();
        while ledgers.len() < 4 {
            match tokio::time::timeout(CLIENT_TIMEOUT, client.recv()).await {
                Ok(Some(Output::Data(data))) => {
                    let answer = parse(&String::from_utf8_lossy(&data));
                    if answer["op"] == "add" {
                        ledgers.push(answer["ledger"].as_u64().unwrap_or_default());
                    }
                }
                other => panic!("expected an answer, got {other:?}"),
            }
        }
        ledgers
    });
    let distinct: BTreeSet<u64> = ledgers.iter().copied().collect();
    assert_eq!(distinct.len(), 4, "one of the user's inputs per ledger: {ledgers:?}");
    for node in &cluster.nodes {
        let (code, text) = node.verify().or_panic();
        assert_eq!(code, 0, "{text}");
    }
}

/// One input to `node` (seed protocol); its first output, as JSON.
fn ask(cluster: &Cluster, node: usize, input: &Value) -> Value {
    let frames =
        hp_tests::user::send_and_collect(&cluster.nodes[node].url(), input.to_string().as_bytes(), 1, CLIENT_TIMEOUT);
    parse(&String::from_utf8_lossy(&frames[0]))
}

/// Issue 19: the network changes its own UNL. The contract writes it to `patch.cfg` (the
/// library's `updateConfig`); once the round is agreed, the next ledger hands over and the new
/// members close every ledger after it. Three validators and an observer: the observer is
/// added, then an original validator removed and killed, and the network goes on. Every node's
/// chain verifies from the genesis UNL alone, no input is lost, and a second observer that was
/// down across both hand-overs catches up and follows.
#[test]
fn the_network_hands_over_to_the_unl_its_contract_agreed_and_goes_on_without_the_removed_node() {
    // A fifth node, an observer, is down across both hand-overs: it catches up at the end.
    let mut cluster = nodejs_cluster_with_observers(5, 2);
    cluster.nodes[4].stop().or_panic();
    let ed = |i: usize| format!("ed{}", cluster.nodes[i].pubkey);
    let keys: Vec<String> = (0..4).map(ed).collect();
    let notes = std::cell::Cell::new(0u64);
    let add = |cluster: &Cluster, node: usize, text: &str| {
        let answer = ask(cluster, node, &json!({"op": "add", "text": text}));
        notes.set(notes.get() + 1);
        assert_eq!(answer["count"], notes.get(), "node {}: every note so far is kept: {answer}", node + 1);
    };
    // Waits until every node in `nodes` reports `unl` in force, and each its role.
    let members_in_force = |cluster: &Cluster, nodes: &[usize], unl: &[String], roles: &[&str]| {
        hp_tests::wait_until("every node to report the new UNL in force", Duration::from_secs(60), || {
            let statuses: Vec<Value> = nodes.iter().filter_map(|&i| cluster.nodes[i].status()).collect();
            let seen: Vec<(Vec<String>, String)> = statuses
                .iter()
                .map(|s| {
                    let mut keys: Vec<String> = s["unl"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|k| k.as_str().map(String::from))
                        .collect();
                    keys.sort();
                    (keys, s["role"].as_str().unwrap_or_default().to_string())
                })
                .collect();
            let mut want: Vec<String> = unl.to_vec();
            want.sort();
            let done = seen.len() == nodes.len()
                && seen.iter().zip(roles).all(|((keys, role), expected)| *keys == want && role == expected);
            done.then_some(())
        });
    };

    add(&cluster, 0, "under the genesis UNL");
    // The observer joins: four validators.
    let four = json!({"op": "unl", "unl": keys.clone()});
    assert_eq!(ask(&cluster, 1, &four), json!({"op": "unl", "unl": 4}));
    members_in_force(&cluster, &[0, 1, 2, 3], &keys, &["validator"; 4]);
    add(&cluster, 3, "to the observer made a validator");
    add(&cluster, 0, "to an original validator");

    // The first validator leaves, asked by a user of the published client who trusts the four
    // members: it learns the new UNL (`unl_change`) and keeps verifying outputs, which only
    // the three remaining members sign from then on (3 of 4 trusted keys would be too few).
    let three = keys[1..].to_vec();
    let hp_url = cluster.nodes[1].hotpocket_urls().map(|(tls, _)| tls).unwrap_or_default();
    let spec = json!({
        "servers": [hp_url],
        "trusted": keys.clone(),
        "ops": [
            {"op": "input", "input": json!({"op": "unl", "unl": three.clone()}).to_string()},
            {"op": "unl_events", "count": 1, "timeout_ms": 60_000},
            {"op": "input", "input": json!({"op": "add", "text": "after the hand-over"}).to_string()},
            {"op": "outputs", "count": 3, "timeout_ms": 60_000},
        ],
    });
    let results = js::run(&spec, CLIENT_TIMEOUT);
    assert_eq!(step(&results, "connect")["connected"], true, "{results:?}");
    let events = step(&results, "unl_events")["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), 1, "one unl_change: {results:?}");
    assert_eq!(events[0].as_array().map(Vec::len), Some(3), "{events:?}");
    let outputs: Vec<Value> = step(&results, "outputs")["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| parse(o["output"].as_str().unwrap_or_default()))
        .collect();
    notes.set(notes.get() + 1);
    assert_eq!(outputs.len(), 3, "verified outputs, before and after the hand-over: {results:?}");
    assert_eq!(outputs[0], json!({"op": "unl", "unl": 3}));
    assert_eq!((&outputs[1]["op"], &outputs[1]["count"]), (&json!("add"), &json!(notes.get())), "{outputs:?}");
    members_in_force(&cluster, &[0, 1, 2, 3], &three, &["observer", "validator", "validator", "validator"]);
    let removed_at = cluster.nodes[0].lcl_seq();
    cluster.nodes[0].kill();
    for node in 1..4 {
        add(&cluster, node, &format!("to node {} without the removed one", node + 1));
    }
    let config = ask(&cluster, 3, &json!({"op": "config"}));
    let mut sorted = three.clone();
    sorted.sort();
    assert_eq!(config["members"], json!(sorted), "the contract's header names the UNL in force: {config}");

    // The chain records both hand-overs, closed by the members in force at each ledger.
    let seq = cluster.nodes[1].lcl_seq();
    for node in 1..4 {
        hp_tests::wait_until("the live nodes to hold the same chain", Duration::from_secs(30), || {
            (cluster.nodes[node].lcl_seq() >= seq).then_some(())
        });
        let (code, text) = cluster.nodes[node].verify().or_panic();
        assert_eq!(code, 0, "node {}: {text}", node + 1);
    }
    let ledgers = cluster.nodes[3].ledgers().or_panic();
    let changes: Vec<&Value> = ledgers.iter().filter(|l| !l["unl_change"].is_null()).collect();
    assert_eq!(changes.len(), 2, "two hand-overs recorded: {changes:?}");
    assert_eq!(changes[0]["unl_change"]["unl"].as_array().map(Vec::len), Some(4));
    assert_eq!(changes[1]["unl_change"]["unl"].as_array().map(Vec::len), Some(3));
    let second = changes[1]["seq"].as_u64().unwrap_or(u64::MAX);
    assert!(second <= removed_at, "the hand-over was stored before the node was removed");
    for ledger in ledgers.iter().filter(|l| l["seq"].as_u64().is_some_and(|s| s > second)) {
        assert!(ledger["signers"].as_u64().is_some_and(|n| n <= 3), "closed by the three members: {ledger}");
    }
    // The node that was down catches up across both hand-overs from the genesis UNL alone,
    // verifies the chain and follows the members in force.
    cluster.nodes[4].start().or_panic();
    hp_tests::wait_until("the node that was down to catch up", Duration::from_secs(60), || {
        (cluster.nodes[4].lcl_seq() >= seq).then_some(())
    });
    let (code, text) = cluster.nodes[4].verify().or_panic();
    assert_eq!(code, 0, "node 5: {text}");
    members_in_force(&cluster, &[4], &three, &["observer"]);
    let hashes: BTreeSet<String> = (1..5)
        .filter_map(|node| cluster.nodes[node].ledgers().ok()?.into_iter().find(|l| l["seq"] == seq))
        .map(|l| l["hash"].to_string())
        .collect();
    assert_eq!(hashes.len(), 1, "one chain: {hashes:?}");
}
