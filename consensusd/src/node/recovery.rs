//! The core's crash-recovery state (height, round, lock, valid value, what it signed) in
//! `hist/consensus.state.{a,b}`.
//!
//! Made durable before any message that follows it leaves the node, so a restarted consensusd —
//! also after a power loss — resumes without signing anything twice and keeps its lock: a node
//! that forgot its lock could help decide a second value.
//!
//! Two slots are written in turn, each `u64 counter | u32 len | [32] sha256(payload) | payload`
//! and one `fdatasync`: a write torn by a power loss leaves the other slot intact, and no rename
//! (with its directory fsync) is needed on the hot path. Loading takes the valid slot with the
//! higher counter.

use crate::wire::{self, PeerMessage};
use hp_consensus::{Message, NetworkId, RecoveryState, RoundValue};
use hp_ledger::codec::{Reader, Writer};
use hp_ledger::{Epochs, Ledger};
use prost::Message as _;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

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

fn encode(state: &RecoveryState<Ledger>) -> Vec<u8> {
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
    w.finish()
}

/// The two slots on disk.
/// The core's crash-recovery state: the file, what a previous run left in it, and how far this
/// run has written.
pub(super) struct Recovery {
    pub file: RecoveryFile,
    /// The recovery state a previous run left, used once when its height starts.
    pub resume: Option<RecoveryState<Ledger>>,
    /// (height, round, signed messages) of the last state written, so it never goes backwards.
    pub persisted_rank: Option<(u64, u32, usize)>,
}

impl Recovery {
    /// Opens the file at `base` and reads what a previous run left (checked in `network`
    /// against the members of its height).
    pub fn open(base: &Path, network: &NetworkId, epochs: &Epochs) -> std::io::Result<Self> {
        let file = RecoveryFile::open(base)?;
        let resume = file.load(network, epochs);
        Ok(Self { file, resume, persisted_rank: None })
    }
}

pub struct RecoveryFile {
    slots: [PathBuf; 2],
    counter: u64,
}

/// A slot's payload if its checksum holds, with its counter.
fn read_slot(path: &Path) -> Option<(u64, Vec<u8>)> {
    let bytes = std::fs::read(path).ok()?;
    let mut r = Reader::new(&bytes);
    let counter = r.u64("counter").ok()?;
    let len = r.u32("len").ok()? as usize;
    let digest = r.array::<32>("digest").ok()?;
    let rest = bytes.get(44..44 + len)?;
    let actual: [u8; 32] = Sha256::digest(rest).into();
    (actual == digest).then(|| (counter, rest.to_vec()))
}

impl RecoveryFile {
    /// Opens (creating) both slots next to `base`.
    pub fn open(base: &Path) -> std::io::Result<Self> {
        let slots = [base.with_extension("state.a"), base.with_extension("state.b")];
        let mut created = false;
        for slot in &slots {
            if !slot.exists() {
                std::fs::File::create(slot)?.sync_all()?;
                created = true;
            }
        }
        if created && let Some(dir) = base.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        let counter = slots.iter().filter_map(|s| read_slot(s)).map(|(c, _)| c).max().unwrap_or(0);
        Ok(Self { slots, counter })
    }

    /// Makes `state` durable, replacing the previous one.
    pub fn save(&mut self, state: &RecoveryState<Ledger>) -> std::io::Result<()> {
        use std::io::Write;
        let payload = encode(state);
        self.counter += 1;
        let mut bytes = Vec::with_capacity(payload.len() + 44);
        bytes.extend_from_slice(&self.counter.to_be_bytes());
        bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&Sha256::digest(&payload));
        bytes.extend_from_slice(&payload);
        let slot = &self.slots[(self.counter % 2) as usize];
        let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(slot)?;
        file.write_all(&bytes)?;
        file.sync_data()
    }

    /// The latest saved state, or `None` if there is none or neither slot can be read (then
    /// the height starts fresh at round 0, as after a clean start).
    pub fn load(&self, network: &NetworkId, epochs: &Epochs) -> Option<RecoveryState<Ledger>> {
        let (_, payload) = self.slots.iter().filter_map(|s| read_slot(s)).max_by_key(|(c, _)| *c)?;
        decode(&payload, network, epochs)
    }
}

fn decode(bytes: &[u8], network: &NetworkId, epochs: &Epochs) -> Option<RecoveryState<Ledger>> {
    let unl = &wire::Signers { epochs, known_through: u64::MAX };
    let mut r = Reader::new(bytes);
    let height = r.u64("height").ok()?;
    let round = r.u32("round").ok()?;
    let locked = decode_value(&mut r)?;
    let valid = decode_value(&mut r)?;
    let n = r.count("signed", 4, 64).ok()?;
    let mut signed = Vec::with_capacity(n);
    for _ in 0..n {
        let bytes = r.bytes("signed message", hp_ledger::record::MAX_LEDGER_BYTES).ok()?;
        let frame = hp_proto::v1::peer::Frame::decode(bytes).ok()?;
        match wire::decode(frame, network, unl).ok()? {
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
        match wire::decode(frame, network, unl).ok()? {
            PeerMessage::Vote(v) => proof_of_lock.push(v),
            _ => return None,
        }
    }
    Some(RecoveryState { height, round, locked, valid, signed, proof_of_lock })
}
