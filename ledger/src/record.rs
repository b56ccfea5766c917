//! A stored ledger: the ledger, the commit certificate that closed it, and — once the nodes
//! agreed on its execution — the result certificate.
//!
//! ```text
//! record  := u32 len | ledger | u8 has_commit | commit? | u8 has_result | result?
//! commit  := u64 height | u32 round | [32] ledger_hash | sigs
//! result  := u64 height | [32] state_hash | [32] outputs_hash | sigs
//! sigs    := u32 n | (u32 validator | [64] signature)*
//! ```

use crate::codec::{DecodeError, Reader, Writer};
use crate::ledger::{Ledger, ResultSummary};
use ed25519_dalek::Signature;
use hp_consensus::{CommitCertificate, ResultCertificate, ValidatorIndex};

/// The most bytes one encoded ledger may have.
pub const MAX_LEDGER_BYTES: usize = 1 << 30;
/// More signatures than any UNL we accept could produce.
const MAX_SIGNATURES: usize = 10_000;

/// A ledger as stored and as sent to peers that catch up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerRecord {
    pub ledger: Ledger,
    /// `None` only for the genesis ledger, which needs no votes.
    pub commit: Option<CommitCertificate>,
    /// `None` until the result of executing this ledger is certified.
    pub result: Option<ResultCertificate>,
}

impl LedgerRecord {
    pub fn result_summary(&self) -> Option<ResultSummary> {
        self.result.as_ref().map(|r| ResultSummary { state_hash: r.state_hash, outputs_hash: r.outputs_hash })
    }

    pub fn encode(&self) -> Vec<u8> {
        let ledger = self.ledger.encode();
        let mut w = Writer::with_capacity(ledger.len() + 512);
        w.bytes(&ledger);
        match &self.commit {
            None => {
                w.u8(0);
            }
            Some(c) => {
                w.u8(1);
                encode_commit(&mut w, c);
            }
        }
        match &self.result {
            None => {
                w.u8(0);
            }
            Some(r) => {
                w.u8(1);
                encode_result(&mut w, r);
            }
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let ledger = Ledger::decode(r.bytes("record ledger", MAX_LEDGER_BYTES)?)?;
        let commit = match r.u8("record commit flag")? {
            0 => None,
            1 => Some(decode_commit(&mut r)?),
            other => return Err(DecodeError::Invalid { what: "record commit flag", problem: format!("{other}") }),
        };
        let result = match r.u8("record result flag")? {
            0 => None,
            1 => Some(decode_result(&mut r)?),
            other => return Err(DecodeError::Invalid { what: "record result flag", problem: format!("{other}") }),
        };
        r.finish()?;
        Ok(Self { ledger, commit, result })
    }
}

fn encode_sigs(w: &mut Writer, sigs: &[(ValidatorIndex, Signature)]) {
    w.u32(sigs.len() as u32);
    for (validator, sig) in sigs {
        w.u32(*validator as u32).fixed(&sig.to_bytes());
    }
}

fn decode_sigs(r: &mut Reader<'_>) -> Result<Vec<(ValidatorIndex, Signature)>, DecodeError> {
    let n = r.count("signatures", 68, MAX_SIGNATURES)?;
    let mut sigs = Vec::with_capacity(n);
    for _ in 0..n {
        let validator = r.u32("signature validator")? as ValidatorIndex;
        let sig = Signature::from_bytes(&r.array::<64>("signature")?);
        sigs.push((validator, sig));
    }
    Ok(sigs)
}

pub fn encode_commit(w: &mut Writer, c: &CommitCertificate) {
    w.u64(c.height).u32(c.round).fixed(&c.value_id);
    encode_sigs(w, &c.signatures);
}

pub fn decode_commit(r: &mut Reader<'_>) -> Result<CommitCertificate, DecodeError> {
    Ok(CommitCertificate {
        height: r.u64("commit height")?,
        round: r.u32("commit round")?,
        value_id: r.array::<32>("commit ledger hash")?,
        signatures: decode_sigs(r)?,
    })
}

pub fn encode_result(w: &mut Writer, c: &ResultCertificate) {
    w.u64(c.height).fixed(&c.state_hash).fixed(&c.outputs_hash);
    encode_sigs(w, &c.signatures);
}

pub fn decode_result(r: &mut Reader<'_>) -> Result<ResultCertificate, DecodeError> {
    Ok(ResultCertificate {
        height: r.u64("result height")?,
        state_hash: r.array::<32>("result state_hash")?,
        outputs_hash: r.array::<32>("result outputs_hash")?,
        signatures: decode_sigs(r)?,
    })
}

/// Encodes a certificate alone (for the store's columns).
pub fn commit_bytes(c: &CommitCertificate) -> Vec<u8> {
    let mut w = Writer::new();
    encode_commit(&mut w, c);
    w.finish()
}

/// Encodes a result certificate alone (for the store's columns).
pub fn result_bytes(c: &ResultCertificate) -> Vec<u8> {
    let mut w = Writer::new();
    encode_result(&mut w, c);
    w.finish()
}

pub fn commit_from_bytes(bytes: &[u8]) -> Result<CommitCertificate, DecodeError> {
    let mut r = Reader::new(bytes);
    let c = decode_commit(&mut r)?;
    r.finish()?;
    Ok(c)
}

pub fn result_from_bytes(bytes: &[u8]) -> Result<ResultCertificate, DecodeError> {
    let mut r = Reader::new(bytes);
    let c = decode_result(&mut r)?;
    r.finish()?;
    Ok(c)
}
