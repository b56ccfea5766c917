//! Explicit conversions between the `Exec` service's protobuf messages and execd's own types.
//! Errors name the message and field that was wrong.

use crate::engine::{EngineError, ExecRequest, RoundResult};
use crate::runner::{Exit, UserInput};
use crate::state_hash::{Entry, Kind};
use crate::sync::{self, WireEntry};
use hp_proto::v1;
use hp_proto::v1::exit_status::Kind as ExitKind;
use prost::Message;

fn pubkey(bytes: &[u8], field: &str) -> Result<[u8; 32], String> {
    bytes.try_into().map_err(|_| format!("{field} must be 32 bytes, got {}", bytes.len()))
}

/// `ExecuteRequest` → a round to execute.
pub fn execute_request(req: v1::ExecuteRequest) -> Result<ExecRequest, String> {
    let users = req
        .users
        .into_iter()
        .enumerate()
        .map(|(i, u)| {
            Ok(UserInput { pubkey: pubkey(&u.pubkey, &format!("ExecuteRequest.users[{i}].pubkey"))?, inputs: u.inputs })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(ExecRequest { seq: req.seq, prev_hash: req.prev_hash.to_vec(), time_ms: req.time_ms, users })
}

/// A round's result → `ExecuteReply`.
pub fn reply_to_proto(r: &RoundResult) -> v1::ExecuteReply {
    let kind = match &r.exit {
        Exit::Code(c) => ExitKind::Code(*c),
        Exit::Signal(s) => ExitKind::Signal(*s),
        Exit::TimedOut => ExitKind::TimedOut(true),
        Exit::SpawnError(e) => ExitKind::SpawnError(e.clone()),
    };
    v1::ExecuteReply {
        seq: r.seq,
        state_hash: r.state_hash.to_vec().into(),
        outputs: r
            .outputs
            .iter()
            .map(|(k, data)| v1::UserOutput { pubkey: k.to_vec().into(), data: data.clone() })
            .collect(),
        exit: Some(v1::ExitStatus { kind: Some(kind) }),
        run_micros: r.run_micros,
        overhead_micros: r.overhead_micros,
    }
}

/// `ExecuteReply` → a round's result.
pub fn reply_from_proto(p: v1::ExecuteReply) -> Result<RoundResult, String> {
    let exit = match p.exit.and_then(|e| e.kind) {
        Some(ExitKind::Code(c)) => Exit::Code(c),
        Some(ExitKind::Signal(s)) => Exit::Signal(s),
        Some(ExitKind::TimedOut(_)) => Exit::TimedOut,
        Some(ExitKind::SpawnError(e)) => Exit::SpawnError(e),
        None => return Err("ExecuteReply.exit is missing".into()),
    };
    let outputs = p
        .outputs
        .into_iter()
        .enumerate()
        .map(|(i, o)| Ok((pubkey(&o.pubkey, &format!("ExecuteReply.outputs[{i}].pubkey"))?, o.data)))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(RoundResult {
        seq: p.seq,
        state_hash: pubkey(&p.state_hash, "ExecuteReply.state_hash")?,
        outputs,
        exit,
        run_micros: p.run_micros,
        overhead_micros: p.overhead_micros,
    })
}

/// The recorded form of a result (`reply-<seq>.pb`): the `ExecuteReply` protobuf.
pub fn encode_recorded(r: &RoundResult) -> Vec<u8> {
    reply_to_proto(r).encode_to_vec()
}

pub fn decode_recorded(bytes: &[u8]) -> Result<RoundResult, String> {
    reply_from_proto(v1::ExecuteReply::decode(bytes).map_err(|e| e.to_string())?)
}

/// A committed entry → `StateEntry` (see [`crate::sync`] for `mode`).
pub fn entry_to_proto(e: &Entry) -> Result<v1::StateEntry, EngineError> {
    let path = String::from_utf8(e.path.clone())
        .map_err(|_| EngineError::NotUtf8 { path: String::from_utf8_lossy(&e.path).into_owned() })?;
    Ok(v1::StateEntry {
        path,
        is_dir: e.kind == Kind::Dir,
        mode: sync::wire_mode(e),
        size: e.size,
        hash: e.leaf.to_vec().into(),
        content_hash: if e.kind == Kind::Dir { Default::default() } else { e.content.to_vec().into() },
    })
}

/// `StateEntry` of a target manifest → a wire entry to check.
pub fn wire_entry(e: v1::StateEntry) -> WireEntry {
    WireEntry { path: e.path, is_dir: e.is_dir, mode: e.mode, size: e.size, content_hash: e.content_hash.to_vec() }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The recorded bytes of existing nodes' `hist/exec/record`: they must keep loading, and a
    /// round must keep being recorded the same way.
    #[test]
    fn recorded_results_keep_their_bytes() {
        const HEAD: &str = "082a1220abababababababababababababababababababababababababababababababab1a290a20\
                            0101010101010101010101010101010101010101010101010101010101010101120566697273741a\
                            220a200202020202020202020202020202020202020202020202020202020202020202";
        let cases = [
            (Exit::Code(-3), "220b08fdffffffffffffffff01"),
            (Exit::Signal(9), "22021009"),
            (Exit::TimedOut, "22021801"),
            (Exit::SpawnError("bin/nope: No such file".into()), "2218221662696e2f6e6f70653a204e6f20737563682066696c65"),
            (Exit::SpawnError(String::new()), "22022200"),
        ];
        for (exit, exit_bytes) in cases {
            let result = RoundResult {
                seq: 42,
                state_hash: [0xab; 32],
                outputs: vec![([1; 32], bytes::Bytes::from_static(b"first")), ([2; 32], bytes::Bytes::new())],
                exit,
                run_micros: 1234,
                overhead_micros: 56,
            };
            let golden = hex::decode(format!("{HEAD}{exit_bytes}28d2093038")).unwrap();
            assert_eq!(hex::encode(encode_recorded(&result)), hex::encode(&golden), "{:?}", result.exit);
            assert_eq!(decode_recorded(&golden).unwrap(), result);
        }
    }
}
