//! The bytes of a round's recorded result: the `reply` part of `hist/exec/record` (see
//! [`crate::snapshot`]), which lets a repeated `Execute` of the last seq return the same
//! result after a restart.
//!
//! The bytes are an `ExecuteReply` protobuf, as written by every execd so far: the very message
//! the service answers `Execute` with. This module is the one mapping between a round's result
//! and that message; the service's conversions ([`crate::convert`]) use it, and the engine
//! records through it without depending on the service. Whatever changes in the service's
//! messages, the records existing nodes hold must keep loading (the pinned bytes below).

use crate::round::RoundResult;
use hp_ledger::ExitKind;
use hp_proto::v1;
use hp_proto::v1::exit_status::Kind;
use prost::Message;

/// Why recorded bytes are not a round's result.
#[derive(Debug, thiserror::Error)]
pub enum RecordedResultError {
    #[error("not an ExecuteReply protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("the recorded ExecuteReply has no exit status")]
    NoExit,
    #[error("the recorded ExecuteReply's {field} is {len} bytes, not 32")]
    NotAKey { field: String, len: usize },
}

/// The bytes to record for a round's result.
pub fn encode(result: &RoundResult) -> Vec<u8> {
    to_reply(result).encode_to_vec()
}

/// An exit as the `ExitStatus` message (the spawn error's wording beside it).
pub fn exit_status(exit: &ExitKind, spawn_error: Option<&str>) -> v1::ExitStatus {
    let kind = match exit {
        ExitKind::Code(c) => Kind::Code(*c),
        ExitKind::Signal(s) => Kind::Signal(*s),
        ExitKind::TimedOut => Kind::TimedOut(true),
        ExitKind::SpawnError => Kind::SpawnError(spawn_error.unwrap_or_default().to_string()),
    };
    v1::ExitStatus { kind: Some(kind) }
}

/// A round's result as the `ExecuteReply` message.
pub fn to_reply(result: &RoundResult) -> v1::ExecuteReply {
    v1::ExecuteReply {
        seq: result.seq,
        state_hash: result.state_hash.to_vec().into(),
        outputs: result
            .outputs
            .iter()
            .map(|(user, data)| v1::UserOutput { pubkey: user.to_vec().into(), data: data.clone() })
            .collect(),
        exit: Some(exit_status(&result.exit, result.spawn_error.as_deref())),
        run_micros: result.run_micros,
        overhead_micros: result.overhead_micros,
        // Not part of the round's record: the service adds the config in force.
        config: None,
    }
}

/// The round's result that [`encode`] recorded.
pub fn decode(bytes: &[u8]) -> Result<RoundResult, RecordedResultError> {
    from_reply(v1::ExecuteReply::decode(bytes)?)
}

/// The round's result an `ExecuteReply` carries; every length is checked.
pub fn from_reply(reply: v1::ExecuteReply) -> Result<RoundResult, RecordedResultError> {
    let (exit, spawn_error) = match reply.exit.and_then(|e| e.kind) {
        Some(Kind::Code(c)) => (ExitKind::Code(c), None),
        Some(Kind::Signal(s)) => (ExitKind::Signal(s), None),
        Some(Kind::TimedOut(_)) => (ExitKind::TimedOut, None),
        Some(Kind::SpawnError(e)) => (ExitKind::SpawnError, Some(e)),
        None => return Err(RecordedResultError::NoExit),
    };
    let key = |bytes: &[u8], field: String| -> Result<[u8; 32], RecordedResultError> {
        bytes.try_into().map_err(|_| RecordedResultError::NotAKey { field, len: bytes.len() })
    };
    let outputs = reply
        .outputs
        .into_iter()
        .enumerate()
        .map(|(i, o)| Ok((key(&o.pubkey, format!("outputs[{i}].pubkey"))?, o.data)))
        .collect::<Result<Vec<_>, RecordedResultError>>()?;
    Ok(RoundResult {
        seq: reply.seq,
        state_hash: key(&reply.state_hash, "state_hash".into())?,
        outputs,
        exit,
        spawn_error,
        run_micros: reply.run_micros,
        overhead_micros: reply.overhead_micros,
    })
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
            (ExitKind::Code(-3), None, "220b08fdffffffffffffffff01"),
            (ExitKind::Signal(9), None, "22021009"),
            (ExitKind::TimedOut, None, "22021801"),
            (
                ExitKind::SpawnError,
                Some("bin/nope: No such file"),
                "2218221662696e2f6e6f70653a204e6f20737563682066696c65",
            ),
            (ExitKind::SpawnError, Some(""), "22022200"),
        ];
        for (exit, spawn_error, exit_bytes) in cases {
            let result = RoundResult {
                seq: 42,
                state_hash: [0xab; 32],
                outputs: vec![([1; 32], bytes::Bytes::from_static(b"first")), ([2; 32], bytes::Bytes::new())],
                exit,
                spawn_error: spawn_error.map(String::from),
                run_micros: 1234,
                overhead_micros: 56,
            };
            let golden = hex::decode(format!("{HEAD}{exit_bytes}28d2093038")).unwrap();
            assert_eq!(hex::encode(encode(&result)), hex::encode(&golden), "{:?}", result.exit);
            assert_eq!(decode(&golden).unwrap(), result);
        }
    }
}
