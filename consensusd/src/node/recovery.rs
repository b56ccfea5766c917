//! The core's crash-recovery state (height, round, lock, valid value, what it signed) in
//! `hist/consensus.state`.
//!
//! Written (temporary file, fsync, rename) before any message that follows it leaves the node,
//! so a restarted consensusd — also after a power loss — resumes without signing anything twice
//! and keeps its lock: a node that forgot its lock could help decide a second value.

use crate::wire::{self, PeerMessage};
use ed25519_dalek::VerifyingKey;
use hp_consensus::{Message, RecoveryState, RoundValue};
use hp_ledger::Ledger;
use hp_ledger::codec::{Reader, Writer};
use prost::Message as _;
use std::path::Path;

fn encode_value(w: &mut Writer, v: &Option<RoundValue<Ledger>>) {
    match v {
        None => {
            w.u8(0);
        }
        Some(rv) => {
            w.u8(1).u32(rv.round).bytes(&rv.value.encode());
        }
    }
}

fn decode_value(r: &mut Reader<'_>) -> Option<Option<RoundValue<Ledger>>> {
    match r.u8("flag").ok()? {
        0 => Some(None),
        _ => {
            let round = r.u32("round").ok()?;
            let value = Ledger::decode(r.bytes("ledger", hp_ledger::record::MAX_LEDGER_BYTES).ok()?).ok()?;
            Some(Some(RoundValue { round, value }))
        }
    }
}

pub fn save(path: &Path, state: &RecoveryState<Ledger>) -> std::io::Result<()> {
    let mut w = Writer::new();
    w.u64(state.height).u32(state.round);
    encode_value(&mut w, &state.locked);
    encode_value(&mut w, &state.valid);
    w.u32(state.signed.len() as u32);
    for message in &state.signed {
        let frame = match message {
            Message::Proposal(p) => wire::proposal(p),
            Message::Vote(v) => wire::vote(v),
        };
        w.bytes(&frame.encode_to_vec());
    }
    w.u32(state.proof_of_lock.len() as u32);
    for vote in &state.proof_of_lock {
        w.bytes(&wire::vote(vote).encode_to_vec());
    }
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&w.finish())?;
        file.sync_data()?;
    }
    std::fs::rename(&tmp, path)?;
    // The rename itself must survive a power loss too.
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The saved state, or `None` if there is none or it cannot be read (then the height starts
/// fresh at round 0, as after a clean start).
pub fn load(path: &Path, unl: &[VerifyingKey]) -> Option<RecoveryState<Ledger>> {
    let bytes = std::fs::read(path).ok()?;
    let mut r = Reader::new(&bytes);
    let height = r.u64("height").ok()?;
    let round = r.u32("round").ok()?;
    let locked = decode_value(&mut r)?;
    let valid = decode_value(&mut r)?;
    let n = r.count("signed", 4, 64).ok()?;
    let mut signed = Vec::with_capacity(n);
    for _ in 0..n {
        let bytes = r.bytes("signed message", hp_ledger::record::MAX_LEDGER_BYTES).ok()?;
        let frame = hp_proto::v1::peer::Frame::decode(bytes).ok()?;
        match wire::decode(frame, unl).ok()? {
            PeerMessage::Proposal(p) => signed.push(Message::Proposal(p)),
            PeerMessage::Vote(v) => signed.push(Message::Vote(v)),
            _ => return None,
        }
    }
    let n = r.count("proof of lock", 4, 100_000).ok()?;
    let mut proof_of_lock = Vec::with_capacity(n);
    for _ in 0..n {
        let bytes = r.bytes("proof vote", 4096).ok()?;
        let frame = hp_proto::v1::peer::Frame::decode(bytes).ok()?;
        match wire::decode(frame, unl).ok()? {
            PeerMessage::Vote(v) => proof_of_lock.push(v),
            _ => return None,
        }
    }
    Some(RecoveryState { height, round, locked, valid, signed, proof_of_lock })
}
