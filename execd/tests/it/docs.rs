//! Keeps `docs/contract-interface.md` true: its example headers are what execd hands a contract
//! for the round the document describes, byte for byte.

use hp_cfg::StdinFormat;
use hp_execd::header::{self, RoundInfo};

const DOC: &str = include_str!("../../../docs/contract-interface.md");

/// The body of the first fenced block opened with "```<lang>".
fn block(lang: &str) -> &'static str {
    let open = format!("```{lang}\n");
    let start = DOC.find(&open).unwrap_or_else(|| panic!("no ```{lang} block")) + open.len();
    let len = DOC[start..].find("```").expect("an unclosed block");
    &DOC[start..start + len]
}

/// The round of the document's example.
fn example() -> (RoundInfo, Vec<header::HeaderUser>) {
    let round = RoundInfo {
        prev_hash: vec![0x5c; 32],
        prev_seq: 41,
        time_ms: 1_700_000_000_000,
        node_pubkey: [0xaa; 32],
        unl: vec![[0xaa; 32], [0xbb; 32]],
        contract_id: "3f2a0c9e-5b1d-4c7e-9a41-0d2f6e8b7c15".into(),
        secret: None,
    };
    (round, vec![([0x11; 32], vec![5, 2]), ([0x22; 32], vec![])])
}

#[test]
fn the_documented_text_header_is_what_execd_writes() {
    let (round, users) = example();
    let built = header::build(StdinFormat::Text, &round, &users);
    assert_eq!(block("text"), String::from_utf8(built).unwrap());
}

#[test]
fn the_documented_json_header_is_what_execd_writes_and_parses() {
    let (round, users) = example();
    let built = String::from_utf8(header::build(StdinFormat::Json, &round, &users)).unwrap();
    assert_eq!(block("json"), built);
    let parsed: serde_json::Value = serde_json::from_str(&built).unwrap();
    assert_eq!(parsed["user"][hex::encode([0x22; 32])], serde_json::json!([5, 6]));
}

#[test]
fn the_documented_hotpocket_header_is_what_execd_writes_and_what_the_library_reads() {
    let (round, users) = example();
    let built = String::from_utf8(header::build(StdinFormat::Hotpocket, &round, &users)).unwrap();
    assert_eq!(block("hotpocket").trim_end(), built);
    let parsed: serde_json::Value = serde_json::from_str(&built).unwrap();
    let first = format!("ed{}", hex::encode([0x11; 32]));
    assert_eq!(parsed["users"][&first], serde_json::json!([6, [0, 5], [5, 2]]));
    assert_eq!(parsed["users"][format!("ed{}", hex::encode([0x22; 32]))], serde_json::json!([7]));
    assert_eq!(parsed["private_key"], "", "the node's key is not the contract's by default");
    assert_eq!(parsed["readonly"], false);
    assert_eq!(parsed["lcl_seq_no"], 41);
    assert_eq!(parsed["unl"][format!("ed{}", hex::encode([0xbb; 32]))]["active_on"], 1_700_000_000_000u64);
}

#[test]
fn the_documented_fd_numbers_are_execds() {
    assert!(DOC.contains("`3 + 2i`") && DOC.contains("`4 + 2i`"));
    for i in 0..4 {
        assert_eq!(header::read_fd(i), 3 + 2 * i as i32);
        assert_eq!(header::write_fd(i), 4 + 2 * i as i32);
    }
}
