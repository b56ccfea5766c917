//! Explicit conversions between the `Exec` service's protobuf messages and execd's own types.
//! Errors name the message and field that was wrong.

use crate::round::{ExecRequest, RoundResult, UserInput};
use crate::state_hash::{Entry, Kind};
use crate::sync::{self, WireEntry};
use hp_ledger::ExitKind;
use hp_proto::v1;
use hp_proto::v1::exit_status::Kind as PbExit;

/// A committed path that is not UTF-8: `StateEntry.path` is a protobuf string.
#[derive(Debug, thiserror::Error)]
#[error("state path {path:?} is not UTF-8 and cannot be listed for peers")]
pub struct NotUtf8Path {
    pub path: String,
}

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
        ExitKind::Code(c) => PbExit::Code(*c),
        ExitKind::Signal(s) => PbExit::Signal(*s),
        ExitKind::TimedOut => PbExit::TimedOut(true),
        ExitKind::SpawnError => PbExit::SpawnError(r.spawn_error.clone().unwrap_or_default()),
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
    let (exit, spawn_error) = match p.exit.and_then(|e| e.kind) {
        Some(PbExit::Code(c)) => (ExitKind::Code(c), None),
        Some(PbExit::Signal(s)) => (ExitKind::Signal(s), None),
        Some(PbExit::TimedOut(_)) => (ExitKind::TimedOut, None),
        Some(PbExit::SpawnError(e)) => (ExitKind::SpawnError, Some(e)),
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
        spawn_error,
        run_micros: p.run_micros,
        overhead_micros: p.overhead_micros,
    })
}

/// A committed entry → `StateEntry` (see [`crate::sync`] for `mode`).
pub fn entry_to_proto(e: &Entry) -> Result<v1::StateEntry, NotUtf8Path> {
    let path = String::from_utf8(e.path.clone())
        .map_err(|_| NotUtf8Path { path: String::from_utf8_lossy(&e.path).into_owned() })?;
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
