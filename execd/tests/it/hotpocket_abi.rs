//! The HotPocket ABI (`stdinfmt: "hotpocket"`, docs/contract-interface.md) as a contract sees
//! it: the header, the sealed inputs file, length-prefixed outputs, the NPL of its round, the
//! control channel. The contract is `contracts/hotpocket.c`.

use crate::support::*;
use bytes::Bytes;
use hp_execd::{Engine, EngineConfig};
use hp_ledger::{ExitKind, Framing, outputs::messages};
use hp_proto::v1 as pb;
use serde_json::Value;
use std::time::Duration;

fn engine_and_hub(node: &Node) -> (Engine, std::sync::Arc<hp_execd::npl::NplHub>) {
    let cfg = EngineConfig::new(&node.root, &node.cfg).unwrap();
    let hub = cfg.npl.clone();
    (Engine::open(cfg).unwrap(), hub)
}

fn user_messages(result: &hp_execd::RoundResult, user: [u8; 32]) -> Vec<Vec<u8>> {
    messages(Framing::LengthPrefixed, &output_of(result, user)).into_iter().map(<[u8]>::to_vec).collect()
}

#[test]
fn inputs_come_in_a_sealed_file_named_by_the_header_and_only_whole_messages_are_kept() {
    let node = Node::hotpocket("echo");
    let mut engine = node.engine();
    let result = execute(
        &mut engine,
        request(3, vec![(key(2), vec![b"bb".to_vec()]), (key(1), vec![b"hello".to_vec(), b"x".to_vec()])]),
    );
    assert_eq!(result.exit, ExitKind::Code(0));
    let out = output_of(&result, key(1));
    let got = user_messages(&result, key(1));
    assert_eq!(got.len(), 3, "header, inputs, verdict; the half message at the end is dropped: {got:?}");
    assert_eq!(hp_ledger::outputs::complete_frames_len(&out), out.len(), "the recorded output ends on a message");

    let header: Value = serde_json::from_slice(&got[0]).unwrap();
    let ed = |b: u8| format!("ed{}", hex::encode([b; 32]));
    assert_eq!(header["users"][ed(1)], serde_json::json!([6, [0, 5], [5, 1]]), "{header}");
    assert_eq!(header["users"][ed(2)], serde_json::json!([7, [6, 2]]), "{header}");
    assert_eq!(
        (header["user_in_fd"].clone(), header["npl_fd"].clone(), header["control_fd"].clone()),
        (3.into(), 4.into(), 5.into())
    );
    assert_eq!(header["public_key"], format!("ed{}", node.cfg.key.public_hex()));
    assert_eq!(header["private_key"], "", "the node's secret key is not handed out by default");
    assert_eq!(header["readonly"], false);
    assert_eq!(header["lcl_seq_no"], 2);
    assert_eq!(header["lcl_hash"], "ab".repeat(32));
    assert_eq!(header["timestamp"], 1_700_000_000_123u64);
    assert_eq!(header["contract_id"], node.cfg.contract_id.as_str());
    assert!(header["unl"][format!("ed{}", node.cfg.key.public_hex())]["active_on"].is_u64());

    assert_eq!(got[1], b"helloxbb", "users in key order, each one's inputs in ledger order");
    assert_eq!(got[2], b"write=-1", "the inputs file cannot be written");
}

#[test]
fn the_operator_may_hand_the_contract_the_node_key() {
    let mut node = Node::hotpocket("echo");
    node.cfg.contract_gets_secret_key = true;
    let (mut engine, _) = engine_and_hub(&node);
    let result = execute(&mut engine, request(1, vec![(key(1), vec![])]));
    let header: Value = serde_json::from_slice(&user_messages(&result, key(1))[0]).unwrap();
    let expected = format!("ed{}{}", node.cfg.key.secret_hex(), node.cfg.key.public_hex());
    assert_eq!(header["private_key"], expected);
}

#[test]
fn a_peers_npl_message_reaches_the_run_of_its_round_and_the_runs_own_comes_back_to_it() {
    let node = Node::hotpocket("npl one 2");
    let (mut engine, hub) = engine_and_hub(&node);
    let mut events = hub.subscribe();
    // A peer's run got there first: its message waits for this node's run of round 1.
    hub.deliver(pb::NplDelivery {
        seq: 1,
        lcl_hash: Bytes::from(vec![0xab; 32]),
        sender: Bytes::from(vec![7; 32]),
        data: Bytes::from_static(b"hi"),
    });
    // One for another previous ledger never reaches it.
    hub.deliver(pb::NplDelivery {
        seq: 1,
        lcl_hash: Bytes::from(vec![0x99; 32]),
        sender: Bytes::from(vec![8; 32]),
        data: Bytes::from_static(b"forked"),
    });
    let result = execute(&mut engine, request(1, vec![(key(1), vec![])]));
    let got: Vec<String> = user_messages(&result, key(1)).into_iter().map(|m| String::from_utf8(m).unwrap()).collect();
    let me = format!("ed{}", node.cfg.key.public_hex());
    assert_eq!(got, vec![format!("ed{} hi", hex::encode([7; 32])), format!("{me} ping one")]);
    match events.try_recv().map(|e| e.kind) {
        Ok(Some(pb::npl_event::Kind::Npl(out))) => {
            assert_eq!((out.seq, out.data.as_ref(), out.lcl_hash.as_ref()), (1, &b"ping one"[..], &[0xab; 32][..]));
        }
        other => panic!("the run's NPL message did not go to consensusd: {other:?}"),
    }
}

#[test]
fn a_peer_changeset_goes_to_consensusd_and_closing_the_control_channel_ends_the_run() {
    let node = Node::hotpocket("control linger");
    let (mut engine, hub) = engine_and_hub(&node);
    let mut events = hub.subscribe();
    let started = std::time::Instant::now();
    let result = execute(&mut engine, request(1, vec![(key(1), vec![])]));
    assert!(started.elapsed() < Duration::from_secs(10), "the run lasted until its timeout");
    assert_eq!(result.exit, ExitKind::Signal(9), "it did not exit within the grace, so it was ended");
    assert_eq!(user_messages(&result, key(1)), vec![b"closed".to_vec()]);
    match events.try_recv().map(|e| e.kind) {
        Ok(Some(pb::npl_event::Kind::PeerChangeset(change))) => {
            assert_eq!(change.add, vec!["127.0.0.1:9"]);
            assert_eq!(change.remove, vec!["127.0.0.1:8"]);
        }
        other => panic!("no peer changeset: {other:?}"),
    }
    assert!(events.try_recv().is_err(), "the unknown control message was not passed on");

    let node = Node::hotpocket("control exit");
    let mut engine = node.engine();
    assert_eq!(execute(&mut engine, request(1, vec![(key(1), vec![])])).exit, ExitKind::Code(3));
}
