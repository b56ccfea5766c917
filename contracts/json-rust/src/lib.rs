//! An example Hot Pocket contract in Rust that reads the JSON stdin header (config
//! `stdinfmt: "json"`, docs/contract-interface.md) and answers every user who sent input with one JSON
//! record: what it received, the ledger it runs for, and a running total kept in `state/`.
//!
//! # Layout
//! - [`Header`]: the JSON header, parsed with serde.
//! - [`Totals`]: the contract's state, one small JSON file in its working directory.
//! - [`reply`]: the answer to one user's input.
//! - [`run`]: one execution — header in, state and per-user outputs updated.
//!
//! The program (`main.rs`) only connects [`run`] to stdin, the user fds and `state/`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

/// The state file, relative to the working directory (the node's `state/`).
pub const TOTALS_FILE: &str = "totals.json";

/// The JSON header execd writes to the contract's stdin (`stdinfmt: "json"`):
/// `{"hotpocket":0.1,"type":"binexec","mver":1,"lcl":..,"time":..,"pubkey":..,"unl":[..],
/// "user":{"<pubkey>":[<read fd>,<write fd>]}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    /// Hex of the previous ledger's hash.
    pub lcl: String,
    /// The ledger time, unix seconds (agreed by the nodes: the only clock a contract may use).
    pub time: u64,
    /// This node's public key (differs between nodes: never put it in outputs or state).
    pub pubkey: String,
    /// The validators' public keys.
    #[serde(default)]
    pub unl: Vec<String>,
    /// Each listed user's pair of fds: read inputs from the first, write outputs to the second.
    /// A BTreeMap keeps the users in key order, so every node handles them in the same order.
    pub user: BTreeMap<String, (i32, i32)>,
}

impl Header {
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("the header is not JSON: {e}"))?;
        if value.get("type").and_then(Value::as_str) != Some("binexec") {
            return Err(format!("the header is not a binexec header: {text}"));
        }
        serde_json::from_value(value).map_err(|e| format!("bad header: {e}"))
    }
}

/// The contract's state: how many inputs and bytes it has answered since genesis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub inputs: u64,
    pub bytes: u64,
}

impl Totals {
    /// Reads the totals from `dir`; the first round starts from zero.
    pub fn load(dir: &Path) -> Result<Self, String> {
        match std::fs::read(dir.join(TOTALS_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{TOTALS_FILE} is damaged: {e}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("cannot read {TOTALS_FILE}: {e}")),
        }
    }

    /// Writes the totals to `dir` (temporary file, then rename: never half written).
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        let tmp = dir.join(format!("{TOTALS_FILE}.tmp"));
        let text = serde_json::to_vec(self).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(TOTALS_FILE)).map_err(|e| format!("cannot write {TOTALS_FILE}: {e}"))
    }
}

/// The answer to one user's input for the round. Every field comes from agreed data (the
/// input, the ledger header, the state), so every node writes the same bytes.
pub fn reply(header: &Header, input: &[u8], totals: &Totals) -> Value {
    json!({
        "input": String::from_utf8_lossy(input),
        "bytes": input.len(),
        "lcl": header.lcl,
        "time": header.time,
        "total_inputs": totals.inputs,
        "total_bytes": totals.bytes,
    })
}

/// One execution: for each listed user (in key order) reads the inputs from `open_input`,
/// answers through `open_output` when there were any, and keeps the totals in `state_dir`.
pub fn run<R: Read, W: Write>(
    header: &Header,
    state_dir: &Path,
    mut open_input: impl FnMut(i32) -> std::io::Result<R>,
    mut open_output: impl FnMut(i32) -> std::io::Result<W>,
) -> Result<Totals, String> {
    let mut totals = Totals::load(state_dir)?;
    let before = totals;
    for (user, (read_fd, write_fd)) in &header.user {
        let mut input = Vec::new();
        open_input(*read_fd)
            .and_then(|mut r| r.read_to_end(&mut input))
            .map_err(|e| format!("user {user}: cannot read fd {read_fd}: {e}"))?;
        if input.is_empty() {
            continue; // only connected this round: nothing to answer
        }
        totals.inputs += 1;
        totals.bytes += input.len() as u64;
        let mut answer = reply(header, &input, &totals).to_string().into_bytes();
        answer.push(b'\n');
        open_output(*write_fd)
            .and_then(|mut w| w.write_all(&answer))
            .map_err(|e| format!("user {user}: cannot write fd {write_fd}: {e}"))?;
    }
    if totals != before {
        totals.save(state_dir)?;
    }
    Ok(totals)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Cursor;

    const HEADER: &str = r#"{"hotpocket":0.1,"type":"binexec","mver":1,"lcl":"ab","time":1700000000,
        "pubkey":"cc","unl":["cc"],"user":{"bb":[5,6],"aa":[3,4]}}"#;

    #[test]
    fn answers_each_user_with_input_in_key_order_and_keeps_totals() {
        let header = Header::parse(HEADER).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let inputs: HashMap<i32, &[u8]> = [(3, &b"hi"[..]), (5, &b""[..])].into();
        let mut order = Vec::new();
        let outputs = tempfile::tempdir().unwrap();
        let output_file = |fd: i32| outputs.path().join(format!("fd{fd}"));
        let totals = run(
            &header,
            &dir,
            |fd| {
                order.push(fd);
                Ok(Cursor::new(inputs[&fd].to_vec()))
            },
            |fd| std::fs::File::create(output_file(fd)),
        )
        .unwrap();
        assert_eq!(order, vec![3, 5]);
        assert_eq!(totals, Totals { inputs: 1, bytes: 2 });
        let answer: Value = serde_json::from_slice(&std::fs::read(output_file(4)).unwrap()).unwrap();
        assert_eq!(answer["input"], "hi");
        assert_eq!(answer["total_inputs"], 1);
        assert!(!output_file(6).exists(), "no input, no output");
        assert_eq!(Totals::load(&dir).unwrap(), totals);
    }

    #[test]
    fn a_text_header_is_refused_with_a_reason() {
        assert!(Header::parse("HOTPOCKET 0.1\n").unwrap_err().contains("not JSON"));
    }
}
