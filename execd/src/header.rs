//! The header the contract reads on stdin (docs/contract-interface.md), byte-exact: existing contracts parse
//! it.
//!
//! Users are numbered in pubkey order; user `i` (from 0) reads its inputs from fd `3 + 2i` and
//! writes its outputs to fd `4 + 2i`. The numbers are fixed by the order alone, so every node
//! hands the contract the same header whatever descriptors execd itself holds.
//!
//! Text (`stdinfmt: "text"`), every line ending in `\n`:
//!
//! ```text
//! HOTPOCKET 0.1
//! <user pubkey hex>=<read fd>:<write fd>
//! ```
//!
//! JSON (`stdinfmt: "json"`), one line without spaces, ending in `\n`:
//!
//! ```text
//! {"hotpocket":0.1,"type":"binexec","mver":1,"lcl":"<hex>","time":<s>,"pubkey":"<hex>","unl":["<hex>",...],"user":{"<hex>":[<r>,<w>],...}}
//! ```

use hp_cfg::StdinFormat;
use std::fmt::Write;

/// The first fd number handed to users: 0, 1 and 2 are stdin, stdout and stderr.
pub const FIRST_USER_FD: i32 = 3;

/// The read fd (the contract's side of the input pipe) of user `index`.
pub fn read_fd(index: usize) -> i32 {
    FIRST_USER_FD + 2 * index as i32
}

/// The write fd (the contract's side of the output pipe) of user `index`.
pub fn write_fd(index: usize) -> i32 {
    FIRST_USER_FD + 2 * index as i32 + 1
}

/// What the JSON header says about the round and the node besides the users.
#[derive(Debug, Clone, Default)]
pub struct RoundInfo {
    /// The previous ledger's hash ("lcl").
    pub prev_hash: Vec<u8>,
    /// Ledger time, unix seconds.
    pub time_secs: u64,
    /// This node's public key.
    pub node_pubkey: [u8; 32],
    /// The UNL, in config order.
    pub unl: Vec<[u8; 32]>,
}

/// The header for users given in pubkey order.
pub fn build(format: StdinFormat, round: &RoundInfo, users: &[[u8; 32]]) -> Vec<u8> {
    match format {
        StdinFormat::Text => text(users),
        StdinFormat::Json => json(round, users, false),
    }
}

/// The header of a read-only run (docs/contract-interface.md): as a round's, and in JSON
/// `"readonly":true` after `"type"`; the text header has no room for it, so a text contract
/// simply runs, and what it changes is thrown away.
pub fn build_read(format: StdinFormat, round: &RoundInfo, user: &[u8; 32]) -> Vec<u8> {
    match format {
        StdinFormat::Text => text(std::slice::from_ref(user)),
        StdinFormat::Json => json(round, std::slice::from_ref(user), true),
    }
}

fn text(users: &[[u8; 32]]) -> Vec<u8> {
    let mut out = String::with_capacity(14 + users.len() * 80);
    out.push_str("HOTPOCKET 0.1\n");
    for (i, user) in users.iter().enumerate() {
        let _ = writeln!(out, "{}={}:{}", hex::encode(user), read_fd(i), write_fd(i));
    }
    out.into_bytes()
}

fn json(round: &RoundInfo, users: &[[u8; 32]], readonly: bool) -> Vec<u8> {
    // Written by hand so the bytes are fixed: field order, no spaces, integers as integers.
    let mut out = String::with_capacity(256 + users.len() * 80 + round.unl.len() * 70);
    let readonly = if readonly { r#""readonly":true,"# } else { "" };
    let _ = write!(
        out,
        r#"{{"hotpocket":0.1,"type":"binexec",{readonly}"mver":1,"lcl":"{}","time":{},"pubkey":"{}","unl":["#,
        hex::encode(&round.prev_hash),
        round.time_secs,
        hex::encode(round.node_pubkey)
    );
    for (i, key) in round.unl.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(out, r#"{sep}"{}""#, hex::encode(key));
    }
    out.push_str(r#"],"user":{"#);
    for (i, user) in users.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(out, r#"{sep}"{}":[{},{}]"#, hex::encode(user), read_fd(i), write_fd(i));
    }
    out.push_str("}}\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn text_header_is_byte_exact() {
        let users = [[0xaa; 32], [0xbb; 32]];
        let got = String::from_utf8(build(StdinFormat::Text, &RoundInfo::default(), &users)).unwrap();
        let expected = format!("HOTPOCKET 0.1\n{}=3:4\n{}=5:6\n", "aa".repeat(32), "bb".repeat(32));
        assert_eq!(got, expected);
        assert_eq!(build(StdinFormat::Text, &RoundInfo::default(), &[]), b"HOTPOCKET 0.1\n");
    }

    #[test]
    fn json_header_is_byte_exact_and_parses() {
        let round = RoundInfo {
            prev_hash: vec![1, 2],
            time_secs: 1_700_000_000,
            node_pubkey: [0x11; 32],
            unl: vec![[0x11; 32], [0x22; 32]],
        };
        let got = String::from_utf8(build(StdinFormat::Json, &round, &[[0xaa; 32]])).unwrap();
        let expected = format!(
            "{{\"hotpocket\":0.1,\"type\":\"binexec\",\"mver\":1,\"lcl\":\"0102\",\"time\":1700000000,\"pubkey\":\"{a}\",\"unl\":[\"{a}\",\"{b}\"],\"user\":{{\"{u}\":[3,4]}}}}\n",
            a = "11".repeat(32),
            b = "22".repeat(32),
            u = "aa".repeat(32)
        );
        assert_eq!(got, expected);
        let v: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(v["user"]["aa".repeat(32)], serde_json::json!([3, 4]));
        let empty = String::from_utf8(build(StdinFormat::Json, &round, &[])).unwrap();
        assert!(empty.ends_with("\"user\":{}}\n"), "{empty}");
    }

    #[test]
    fn a_read_only_runs_json_header_says_so_and_a_rounds_does_not() {
        let round = RoundInfo { prev_hash: vec![], time_secs: 1, node_pubkey: [0x11; 32], unl: vec![[0x11; 32]] };
        let read: serde_json::Value =
            serde_json::from_slice(&build_read(StdinFormat::Json, &round, &[0xaa; 32])).unwrap();
        assert_eq!(read["readonly"], serde_json::json!(true));
        assert_eq!(read["user"]["aa".repeat(32)], serde_json::json!([3, 4]));
        let round_header: serde_json::Value =
            serde_json::from_slice(&build(StdinFormat::Json, &round, &[[0xaa; 32]])).unwrap();
        assert!(round_header.get("readonly").is_none());
        assert_eq!(build_read(StdinFormat::Text, &round, &[0xaa; 32]), build(StdinFormat::Text, &round, &[[0xaa; 32]]));
    }
}
