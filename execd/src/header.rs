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
//!
//! HotPocket 0.6 (`stdinfmt: "hotpocket"`, what `hotpocket-nodejs-contract` reads), one JSON
//! document, then EOF. The descriptors are fixed: [`HP_USER_IN_FD`] holds every input of the
//! round one after the other (users in pubkey order, each user's in ledger order), each user's
//! entry lists its output fd and then the `[offset, length]` of each of its inputs in that file;
//! [`HP_NPL_FD`] and [`HP_CONTROL_FD`] are the NPL and control sockets; user `i` writes to
//! [`hp_out_fd`]`(i)`. Keys are `ed` + hex. Every value but `private_key` (empty unless the
//! operator opts in) is the same on every node but `public_key`, so the header itself is no
//! source of divergence: hpcore's `unl` values are local timestamps; here `active_on` is the
//! previous ledger's time for every member.
//!
//! ```text
//! {"hp_version":"0.6.4","contract_id":"…","public_key":"ed…","private_key":"","timestamp":<ms>,
//!  "readonly":false,"lcl_seq_no":<n>,"lcl_hash":"<hex>","user_in_fd":3,"npl_fd":4,"control_fd":5,
//!  "users":{"ed<hex>":[6,[0,5],[5,2]],…},"unl":{"ed<hex>":{"active_on":<ms>},…}}
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

/// The HotPocket ABI's inputs file.
pub const HP_USER_IN_FD: i32 = 3;
/// The HotPocket ABI's NPL socket.
pub const HP_NPL_FD: i32 = 4;
/// The HotPocket ABI's control socket.
pub const HP_CONTROL_FD: i32 = 5;
/// The HotPocket version a `hotpocket`-format contract is told (as userd tells clients).
pub const HP_VERSION: &str = "0.6.4";

/// The output fd of user `index` under the HotPocket ABI.
pub fn hp_out_fd(index: usize) -> i32 {
    HP_CONTROL_FD + 1 + index as i32
}

/// The node's secret key as a `hotpocket`-format contract gets it when the operator allows
/// (`contract_gets_secret_key`): `ed` + hex of the 32-byte seed and the 32-byte public key.
/// Never printed.
#[derive(Clone)]
pub struct ContractSecret(pub String);

impl std::fmt::Debug for ContractSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContractSecret(..)")
    }
}

/// What the header says about the round and the node besides the users.
#[derive(Debug, Clone, Default)]
pub struct RoundInfo {
    /// The previous ledger's hash ("lcl").
    pub prev_hash: Vec<u8>,
    /// The previous ledger's sequence number.
    pub prev_seq: u64,
    /// Ledger time, unix milliseconds.
    pub time_ms: u64,
    /// This node's public key.
    pub node_pubkey: [u8; 32],
    /// The UNL, in config order.
    pub unl: Vec<[u8; 32]>,
    /// The network's contract id (HotPocket header).
    pub contract_id: String,
    /// `Some` only when the operator lets a `hotpocket`-format contract have the node's key.
    pub secret: Option<ContractSecret>,
}

/// A user and the length of each of its inputs (only the HotPocket header lists them).
pub type HeaderUser = ([u8; 32], Vec<usize>);

/// The header for users given in pubkey order.
pub fn build(format: StdinFormat, round: &RoundInfo, users: &[HeaderUser]) -> Vec<u8> {
    let keys: Vec<[u8; 32]> = users.iter().map(|(k, _)| *k).collect();
    match format {
        StdinFormat::Text => text(&keys),
        StdinFormat::Json => json(round, &keys, false),
        StdinFormat::Hotpocket => hotpocket(round, users, false),
    }
}

/// The header of a read-only run (docs/contract-interface.md): as a round's, and in JSON
/// `"readonly":true` after `"type"` (HotPocket: `"readonly":true`); the text header has no
/// room for it, so a text contract simply runs, and what it changes is thrown away.
pub fn build_read(format: StdinFormat, round: &RoundInfo, user: &[u8; 32], request_len: usize) -> Vec<u8> {
    match format {
        StdinFormat::Text => text(std::slice::from_ref(user)),
        StdinFormat::Json => json(round, std::slice::from_ref(user), true),
        StdinFormat::Hotpocket => hotpocket(round, &[(*user, vec![request_len])], true),
    }
}

fn hotpocket(round: &RoundInfo, users: &[HeaderUser], readonly: bool) -> Vec<u8> {
    // By hand, like the JSON header, so that the bytes are fixed; every string written is hex,
    // digits or the contract id (checked to be of `A-Za-z0-9-_.` by the config).
    let mut out = String::with_capacity(512 + users.len() * 100 + round.unl.len() * 100);
    let secret = round.secret.as_ref().map(|s| s.0.as_str()).unwrap_or("");
    let _ = write!(
        out,
        r#"{{"hp_version":"{HP_VERSION}","contract_id":"{}","public_key":"ed{}","private_key":"{secret}","timestamp":{},"readonly":{readonly},"lcl_seq_no":{},"lcl_hash":"{}","user_in_fd":{HP_USER_IN_FD},"npl_fd":{HP_NPL_FD},"control_fd":{HP_CONTROL_FD},"users":{{"#,
        round.contract_id,
        hex::encode(round.node_pubkey),
        round.time_ms,
        round.prev_seq,
        hex::encode(&round.prev_hash),
    );
    let mut offset = 0usize;
    for (i, (user, inputs)) in users.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(out, r#"{sep}"ed{}":[{}"#, hex::encode(user), hp_out_fd(i));
        for len in inputs {
            let _ = write!(out, ",[{offset},{len}]");
            offset += len;
        }
        out.push(']');
    }
    out.push_str(r#"},"unl":{"#);
    for (i, key) in round.unl.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(out, r#"{sep}"ed{}":{{"active_on":{}}}"#, hex::encode(key), round.time_ms);
    }
    out.push_str("}}");
    out.into_bytes()
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
        round.time_ms / 1000,
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
        let users = [([0xaa; 32], vec![]), ([0xbb; 32], vec![])];
        let got = String::from_utf8(build(StdinFormat::Text, &RoundInfo::default(), &users)).unwrap();
        let expected = format!("HOTPOCKET 0.1\n{}=3:4\n{}=5:6\n", "aa".repeat(32), "bb".repeat(32));
        assert_eq!(got, expected);
        assert_eq!(build(StdinFormat::Text, &RoundInfo::default(), &[]), b"HOTPOCKET 0.1\n");
    }

    #[test]
    fn json_header_is_byte_exact_and_parses() {
        let round = RoundInfo {
            prev_hash: vec![1, 2],
            time_ms: 1_700_000_000_000,
            node_pubkey: [0x11; 32],
            unl: vec![[0x11; 32], [0x22; 32]],
            ..Default::default()
        };
        let got = String::from_utf8(build(StdinFormat::Json, &round, &[([0xaa; 32], vec![])])).unwrap();
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
        let round = RoundInfo { time_ms: 1000, node_pubkey: [0x11; 32], unl: vec![[0x11; 32]], ..Default::default() };
        let read: serde_json::Value =
            serde_json::from_slice(&build_read(StdinFormat::Json, &round, &[0xaa; 32], 0)).unwrap();
        assert_eq!(read["readonly"], serde_json::json!(true));
        assert_eq!(read["user"]["aa".repeat(32)], serde_json::json!([3, 4]));
        let round_header: serde_json::Value =
            serde_json::from_slice(&build(StdinFormat::Json, &round, &[([0xaa; 32], vec![])])).unwrap();
        assert!(round_header.get("readonly").is_none());
        assert_eq!(
            build_read(StdinFormat::Text, &round, &[0xaa; 32], 0),
            build(StdinFormat::Text, &round, &[([0xaa; 32], vec![])])
        );
        let hp: serde_json::Value =
            serde_json::from_slice(&build_read(StdinFormat::Hotpocket, &round, &[0xaa; 32], 7)).unwrap();
        assert_eq!(hp["readonly"], serde_json::json!(true));
        assert_eq!(hp["users"][format!("ed{}", "aa".repeat(32))], serde_json::json!([6, [0, 7]]));
    }

    #[test]
    fn a_secret_key_is_in_the_hotpocket_header_only_when_given_and_never_in_debug_output() {
        let mut round = RoundInfo { node_pubkey: [0x11; 32], ..Default::default() };
        let plain: serde_json::Value = serde_json::from_slice(&build(StdinFormat::Hotpocket, &round, &[])).unwrap();
        assert_eq!(plain["private_key"], "");
        round.secret = Some(ContractSecret(format!("ed{}", "ab".repeat(64))));
        let given: serde_json::Value = serde_json::from_slice(&build(StdinFormat::Hotpocket, &round, &[])).unwrap();
        assert_eq!(given["private_key"], format!("ed{}", "ab".repeat(64)));
        assert!(!format!("{round:?}").contains("abab"));
    }
}
