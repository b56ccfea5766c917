//! Explicit conversions between the `Exec` service's protobuf messages and execd's own types.
//! Errors name the message and field that was wrong.

use crate::round::{ExecRequest, RoundResult, UserInput};
use crate::state_hash::{Entry, Kind};
use crate::sync::{self, WireEntry};
use hp_proto::v1;

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
    Ok(ExecRequest {
        seq: req.seq,
        ledger_hash: req.ledger_hash.to_vec(),
        prev_hash: req.prev_hash.to_vec(),
        time_ms: req.time_ms,
        users,
    })
}

/// A round's result → `ExecuteReply` (the same message as the recorded result).
pub fn reply_to_proto(r: &RoundResult) -> v1::ExecuteReply {
    crate::recorded_result::to_reply(r)
}

/// `ExecuteReply` → a round's result.
pub fn reply_from_proto(p: v1::ExecuteReply) -> Result<RoundResult, String> {
    crate::recorded_result::from_reply(p).map_err(|e| e.to_string())
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
