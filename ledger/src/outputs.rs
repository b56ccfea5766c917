//! A round's outcome — what the contract wrote to each user and how it ended — and the hash
//! the nodes sign in their result vote.
//!
//! ```text
//! outcome := u8 exit_kind | i32-as-u32 exit_value | u32 n | ([32] user | u32 len | data)*   (users sorted)
//! outputs_hash := SHA-256( u32 len(tag) | tag "hotpocket/outputs/v1" | outcome )
//! ```

use crate::codec::{DecodeError, Reader, Writer};
use crate::{Hash, tagged_hash};
use bytes::Bytes;

const OUTPUTS_TAG: &[u8] = b"hotpocket/outputs/v1";

/// How the contract's run ended. Part of the agreed result: a crash is deterministic too.
///
/// The one exit type of a contract run: execd's runner produces it, execd's `ExecuteReply`
/// carries it (`ExitStatus`), consensusd puts it in the [`Outcome`] whose hash the nodes sign.
/// Only the kind and the code or signal are agreed. Why a run counts as `SpawnError` (the
/// binary is missing, the process could not be waited for) is wording for the logs that
/// travels beside it (`ExitStatus.spawn_error`, execd's `RoundResult::spawn_error`), never in
/// it: nodes agree that the contract could not run, not on the operating system's message.
///
/// There is no "no exit": every run ends in one of these, and execd always sets
/// `ExecuteReply.exit`. A reply without one is malformed, and both sides treat it so:
/// consensusd's executor refuses it (it never votes for a clean exit nobody saw), and execd
/// treats a recorded result without one as unreadable, as if no result had been recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitKind {
    Code(i32),
    Signal(i32),
    TimedOut,
    SpawnError,
}

impl ExitKind {
    fn encode(&self) -> (u8, i32) {
        match self {
            ExitKind::Code(c) => (0, *c),
            ExitKind::Signal(s) => (1, *s),
            ExitKind::TimedOut => (2, 0),
            ExitKind::SpawnError => (3, 0),
        }
    }
}

/// The outputs of one execution, sorted by user, with the exit status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub exit: ExitKind,
    pub outputs: Vec<([u8; 32], Bytes)>,
}

impl Outcome {
    pub fn hash(&self) -> Hash {
        tagged_hash(OUTPUTS_TAG, &[&self.encode()])
    }

    /// The canonical bytes (module docs), users sorted: what [`Self::hash`] covers, and what a
    /// peer sends a node that could not compute the agreed outcome itself.
    pub fn encode(&self) -> Vec<u8> {
        let mut outputs: Vec<&([u8; 32], Bytes)> = self.outputs.iter().collect();
        outputs.sort_by_key(|o| o.0);
        let (kind, value) = self.exit.encode();
        let mut w = Writer::with_capacity(5 + encoded_len(outputs.iter().copied()));
        w.u8(kind).u32(value as u32);
        write_outputs(&mut w, outputs.into_iter());
        w.finish()
    }

    /// Decodes what [`Self::encode`] wrote; every length is checked against the bytes present.
    /// Whether the outcome is the agreed one is for the caller to check, by its hash.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let kind = r.u8("exit kind")?;
        let value = r.u32("exit value")? as i32;
        let exit = match kind {
            0 => ExitKind::Code(value),
            1 => ExitKind::Signal(value),
            2 => ExitKind::TimedOut,
            3 => ExitKind::SpawnError,
            other => return Err(DecodeError::Invalid { what: "exit kind", problem: format!("unknown kind {other}") }),
        };
        let outputs = read_outputs(&mut r, bytes.len())?;
        r.finish()?;
        Ok(Outcome { exit, outputs })
    }
}

/// How one user's output of a round divides into the messages users receive. The agreed bytes
/// are always what the contract wrote; the framing only says how to read them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// The seed's contracts (`text`, `json`): everything written is one message.
    Whole,
    /// The HotPocket ABI: each message is written as a 4-byte big-endian length, then the
    /// message. execd keeps only whole messages ([`complete_frames_len`]).
    LengthPrefixed,
}

impl Framing {
    /// From the wire's `length_prefixed` flag (`OutputBatch`, `LedgerQueryReply`, `ReadReply`).
    pub fn from_flag(length_prefixed: bool) -> Self {
        if length_prefixed { Framing::LengthPrefixed } else { Framing::Whole }
    }

    /// The wire's `length_prefixed` flag.
    pub fn flag(self) -> bool {
        self == Framing::LengthPrefixed
    }
}

/// The messages of one user's output. A trailing partial frame (which execd never records) is
/// left out; an empty output has no messages.
pub fn messages(framing: Framing, output: &[u8]) -> Vec<&[u8]> {
    match framing {
        Framing::Whole if output.is_empty() => Vec::new(),
        Framing::Whole => vec![output],
        Framing::LengthPrefixed => {
            let mut out = Vec::new();
            let mut rest = output;
            while let Some((len, after)) = rest.split_first_chunk::<4>() {
                let len = u32::from_be_bytes(*len) as usize;
                if after.len() < len {
                    break;
                }
                let (message, tail) = after.split_at(len);
                out.push(message);
                rest = tail;
            }
            out
        }
    }
}

/// How many leading bytes of a length-prefixed output are whole frames: what execd records of
/// a contract that stopped in the middle of a message.
pub fn complete_frames_len(output: &[u8]) -> usize {
    let mut used = 0;
    let mut rest = output;
    while let Some((len, after)) = rest.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        if after.len() < len {
            break;
        }
        used += 4 + len;
        rest = &after[len..];
    }
    used
}

/// Each user's output of one round, as kept for delivery: `u32 n | ([32] user | u32 len | data)*`.
pub type UserOutputs = Vec<([u8; 32], Bytes)>;

/// Encodes outputs for [`decode_outputs`].
pub fn encode_outputs(outputs: &[([u8; 32], Bytes)]) -> Vec<u8> {
    let mut w = Writer::with_capacity(encoded_len(outputs.iter()));
    write_outputs(&mut w, outputs.iter());
    w.finish()
}

/// Decodes what [`encode_outputs`] wrote; every length is checked against the bytes present.
pub fn decode_outputs(bytes: &[u8]) -> Result<UserOutputs, DecodeError> {
    let mut r = Reader::new(bytes);
    let outputs = read_outputs(&mut r, bytes.len())?;
    r.finish()?;
    Ok(outputs)
}

/// `u32 n | ([32] user | u32 len | data)*`, in the order given.
fn write_outputs<'a>(w: &mut Writer, outputs: impl ExactSizeIterator<Item = &'a ([u8; 32], Bytes)>) {
    w.u32(outputs.len() as u32);
    for (user, data) in outputs {
        w.fixed(user).bytes(data);
    }
}

fn encoded_len<'a>(outputs: impl Iterator<Item = &'a ([u8; 32], Bytes)>) -> usize {
    4 + outputs.map(|(_, d)| 36 + d.len()).sum::<usize>()
}

/// Reads what [`write_outputs`] wrote; no length may exceed `limit` (the bytes present).
fn read_outputs(r: &mut Reader<'_>, limit: usize) -> Result<UserOutputs, DecodeError> {
    let n = r.count("outputs", 36, usize::MAX)?;
    let mut outputs = Vec::with_capacity(n);
    for _ in 0..n {
        let user = r.array::<32>("output user")?;
        let data = r.bytes("output data", limit)?;
        outputs.push((user, Bytes::copy_from_slice(data)));
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn hash_ignores_order_and_covers_exit() {
        let a = Outcome {
            exit: ExitKind::Code(0),
            outputs: vec![([1; 32], Bytes::from_static(b"x")), ([2; 32], Bytes::new())],
        };
        let mut b = a.clone();
        b.outputs.reverse();
        assert_eq!(a.hash(), b.hash());
        b.exit = ExitKind::Signal(9);
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn outcome_round_trips_to_the_same_hash_and_bad_bytes_are_refused() {
        let outcome = Outcome {
            exit: ExitKind::Signal(9),
            outputs: vec![([2; 32], Bytes::from_static(b"second")), ([1; 32], Bytes::from_static(b"first"))],
        };
        let bytes = outcome.encode();
        let back = Outcome::decode(&bytes).unwrap();
        assert_eq!(back.hash(), outcome.hash());
        assert_eq!(back.outputs[0].0, [1; 32], "encoded sorted by user");
        assert!(Outcome::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut unknown_exit = bytes.clone();
        unknown_exit[0] = 7;
        assert!(Outcome::decode(&unknown_exit).is_err());
        let mut forged = bytes.clone();
        forged[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Outcome::decode(&forged).is_err());
        for exit in [ExitKind::Code(-3), ExitKind::TimedOut, ExitKind::SpawnError] {
            let o = Outcome { exit, outputs: vec![] };
            assert_eq!(Outcome::decode(&o.encode()).unwrap(), o);
        }
    }

    /// The agreed bytes of each exit: the outcome hash of every existing result depends on them.
    #[test]
    fn exit_kinds_keep_their_bytes() {
        let cases = [
            (ExitKind::Code(-3), "00fffffffd00000000"),
            (ExitKind::Signal(9), "010000000900000000"),
            (ExitKind::TimedOut, "020000000000000000"),
            (ExitKind::SpawnError, "030000000000000000"),
        ];
        for (exit, bytes) in cases {
            assert_eq!(hex::encode(Outcome { exit, outputs: vec![] }.encode()), bytes);
        }
    }

    #[test]
    fn length_prefixed_outputs_split_into_their_messages_and_a_partial_tail_is_not_one() {
        let mut framed = Vec::new();
        for m in [&b"one"[..], b"", b"three"] {
            framed.extend_from_slice(&(m.len() as u32).to_be_bytes());
            framed.extend_from_slice(m);
        }
        let whole = framed.len();
        assert_eq!(messages(Framing::LengthPrefixed, &framed), vec![&b"one"[..], b"", b"three"]);
        assert_eq!(complete_frames_len(&framed), whole);
        framed.extend_from_slice(&[0, 0, 0, 9, b'x']);
        assert_eq!(messages(Framing::LengthPrefixed, &framed).len(), 3);
        assert_eq!(complete_frames_len(&framed), whole);
        assert_eq!(complete_frames_len(&[0, 0]), 0);
        let huge = [0xff, 0xff, 0xff, 0xff, 1];
        assert!(messages(Framing::LengthPrefixed, &huge).is_empty());
        assert_eq!(messages(Framing::Whole, b"raw"), vec![&b"raw"[..]]);
        assert!(messages(Framing::Whole, b"").is_empty());
    }

    #[test]
    fn outputs_round_trip_and_truncation_is_refused() {
        let outputs = vec![([1; 32], Bytes::from_static(b"first")), ([2; 32], Bytes::new())];
        let bytes = encode_outputs(&outputs);
        assert_eq!(decode_outputs(&bytes).unwrap(), outputs);
        assert!(decode_outputs(&bytes[..bytes.len() - 1]).is_err());
        let mut forged = bytes.clone();
        forged[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_outputs(&forged).is_err());
        assert_eq!(decode_outputs(&encode_outputs(&[])).unwrap(), vec![]);
    }
}
