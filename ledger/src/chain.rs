//! Checking ledgers against the UNL, offline: what `hotpocket verify` runs over a whole store
//! and what a catching-up node runs over every ledger a peer sends before storing it.

use crate::membership::Membership;
use crate::record::LedgerRecord;
use crate::{Hash, Ledger};
use ed25519_dalek::VerifyingKey;
use hp_consensus::NetworkId;

/// The first fault found in a chain, with the sequence number where it is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("ledger {seq}: expected sequence {expected}")]
    Gap { seq: u64, expected: u64 },
    #[error(
        "ledger 0 is not the genesis ledger of network {network} with this UNL \
         (a chain of another network, or of another UNL)"
    )]
    BadGenesis { network: NetworkId },
    #[error("ledger {seq}: prev_hash does not link to ledger {}", seq - 1)]
    BrokenLink { seq: u64 },
    #[error("ledger {seq}: time {time_ms} does not follow the previous ledger's {prev_time_ms}")]
    TimeNotIncreasing { seq: u64, time_ms: u64, prev_time_ms: u64 },
    #[error("ledger {seq}: no commit certificate")]
    MissingCommit { seq: u64 },
    #[error("ledger {seq}: commit certificate is for height {height}")]
    CommitForOtherHeight { seq: u64, height: u64 },
    #[error("ledger {seq}: commit certificate is for another ledger hash")]
    CommitForOtherLedger { seq: u64 },
    #[error("ledger {seq}: commit certificate: {problem}")]
    BadCommit { seq: u64, problem: String },
    #[error("ledger {seq}: result certificate: {problem}")]
    BadResult { seq: u64, problem: String },
    #[error("ledger {seq}: carries a result of ledger {} that differs from its certificate", seq - 1)]
    ResultMismatch { seq: u64 },
    #[error("ledger {seq}: input {origin}/{nonce} was already in ledger {first_seq}")]
    DuplicateInput { seq: u64, origin: String, nonce: u64, first_seq: u64 },
    #[error("ledger {seq}: {problem}")]
    BadInput { seq: u64, problem: String },
    #[error("the genesis UNL and quorum: {0}")]
    BadUnl(String),
    #[error(
        "ledger {seq}: names config {named}, but the membership the chain hands it is {expected} \
         (a UNL change this chain did not record)"
    )]
    WrongMembership { seq: u64, named: String, expected: String },
}

/// Parses the UNL's keys for signature checks.
pub fn unl_keys(unl: &[[u8; 32]]) -> Result<Vec<VerifyingKey>, ChainError> {
    unl.iter().map(|k| VerifyingKey::from_bytes(k).map_err(|_| ChainError::BadUnl(hex::encode(k)))).collect()
}

/// The membership ledger 1 is closed under: the genesis UNL (hp.cfg's), its quorum and
/// input window (`max_input_ledger_offset`).
pub fn genesis_members(unl: &[[u8; 32]], quorum: usize, input_window: u64) -> Result<Membership, ChainError> {
    Membership::new(unl.to_vec(), quorum)
        .and_then(|m| m.with_input_window(input_window))
        .map_err(|e| ChainError::BadUnl(e.to_string()))
}

/// Checks one record on its own and its link to the ledger before it (`prev`: hash and time
/// of ledger `seq - 1`, and its result summary if certified): that it names `members` (the
/// membership the chain hands it, [`Membership::after`] the previous ledger), its certificates
/// by those members, signed in `network`, and that every input was signed by its origin, one
/// of them, in `network`.
pub fn verify_next(
    record: &LedgerRecord,
    prev: &Ledger,
    prev_result: Option<&crate::ResultSummary>,
    network: &NetworkId,
    members: &Membership,
) -> Result<(), ChainError> {
    let (unl, quorum) = (members.keys(), members.quorum());
    let ledger = &record.ledger;
    let seq = ledger.seq;
    if seq != prev.seq + 1 {
        return Err(ChainError::Gap { seq, expected: prev.seq + 1 });
    }
    if ledger.prev_hash != prev.hash() {
        return Err(ChainError::BrokenLink { seq });
    }
    if seq > 1 && ledger.time_ms <= prev.time_ms {
        return Err(ChainError::TimeNotIncreasing { seq, time_ms: ledger.time_ms, prev_time_ms: prev.time_ms });
    }
    if ledger.config_hash != members.hash() {
        return Err(ChainError::WrongMembership {
            seq,
            named: hex::encode(ledger.config_hash),
            expected: hex::encode(members.hash()),
        });
    }
    let commit = record.commit.as_ref().ok_or(ChainError::MissingCommit { seq })?;
    if commit.height != seq {
        return Err(ChainError::CommitForOtherHeight { seq, height: commit.height });
    }
    if commit.value_id != ledger.hash() {
        return Err(ChainError::CommitForOtherLedger { seq });
    }
    commit.verify(network, unl, quorum).map_err(|e| ChainError::BadCommit { seq, problem: e.to_string() })?;
    if let Some(result) = &record.result {
        if result.height != seq {
            return Err(ChainError::BadResult { seq, problem: format!("certificate is for height {}", result.height) });
        }
        result.verify(network, unl, quorum).map_err(|e| ChainError::BadResult { seq, problem: e.to_string() })?;
    }
    if let (Some(carried), Some(certified)) = (&ledger.prev_result, prev_result)
        && carried != certified
    {
        return Err(ChainError::ResultMismatch { seq });
    }
    let mut inputs = Vec::with_capacity(ledger.inputs.len());
    for input in &ledger.inputs {
        if !unl.iter().any(|k| k.as_bytes() == &input.id.origin) {
            let problem =
                format!("input {}/{}: the origin is not in the UNL", hex::encode(input.id.origin), input.id.nonce);
            return Err(ChainError::BadInput { seq, problem });
        }
        inputs.push(input);
    }
    crate::input::verify_origins(network, &inputs).map_err(|e| ChainError::BadInput { seq, problem: e.to_string() })?;
    Ok(())
}

/// Verifies a whole chain of network `network` from genesis, following every hand-over of
/// membership from `genesis` (hp.cfg's UNL and quorum): the genesis ledger is the
/// network's, every link, every certificate (by that ledger's members, signed in `network`), every input's origin
/// signature, that no input instance appears twice, and for user-signed inputs the user's
/// signature, their bytes, their window (at least the ledger that carries them, at most the
/// input window of its members past the ledger before) and their growing nonces. Returns the
/// hash of the last ledger.
pub fn verify_chain(
    records: impl IntoIterator<Item = LedgerRecord>,
    network: &NetworkId,
    genesis_members: &Membership,
) -> Result<(u64, Hash), ChainError> {
    let mut members = genesis_members.clone();
    let genesis = Ledger::genesis(members.unl(), network);
    let mut iter = records.into_iter();
    let Some(first) = iter.next() else {
        return Ok((0, genesis.hash()));
    };
    if first.ledger.hash() != genesis.hash() {
        return Err(ChainError::BadGenesis { network: *network });
    }
    let mut prev = first.ledger;
    let mut prev_result =
        first.result.as_ref().map(|r| crate::ResultSummary { state_hash: r.state_hash, outputs_hash: r.outputs_hash });
    let mut seen = std::collections::HashMap::new();
    // The highest nonce of each user's signed inputs so far (crate::user_signed).
    let mut user_nonces: std::collections::HashMap<[u8; 32], u64> = std::collections::HashMap::new();
    for record in iter {
        verify_next(&record, &prev, prev_result.as_ref(), network, &members)?;
        let window_end = record.ledger.seq.saturating_sub(1).saturating_add(members.input_window());
        if !members.users_within_input_bytes(&record.ledger.inputs) {
            let problem =
                format!("a user's inputs exceed the {} bytes of user_input_bytes", members.user_input_bytes());
            return Err(ChainError::BadInput { seq: record.ledger.seq, problem });
        }
        members = members.after(&record.ledger);
        let seq = record.ledger.seq;
        let opened_all = crate::user_signed::open_inputs(&record.ledger.inputs);
        for (input, opened) in record.ledger.inputs.iter().zip(opened_all) {
            let Some(opened) = opened else { continue };
            let name = || format!("user-signed input {}/{}", hex::encode(input.id.origin), input.id.nonce);
            let problem = match opened {
                Err(why) => Some(format!("{}: {why}", name())),
                Ok(o) if o.max_ledger_seq < seq => {
                    Some(format!("{}: its window ended at {}", name(), o.max_ledger_seq))
                }
                Ok(o) if o.max_ledger_seq > window_end => Some(format!(
                    "{}: its window ends at {}, past the input window's {window_end}",
                    name(),
                    o.max_ledger_seq
                )),
                Ok(o) if user_nonces.get(&input.user).is_some_and(|h| o.nonce <= *h) => {
                    Some(format!("{}: nonce {} is not above the user's last", name(), o.nonce))
                }
                Ok(o) => {
                    user_nonces.insert(input.user, o.nonce);
                    None
                }
            };
            if let Some(problem) = problem {
                return Err(ChainError::BadInput { seq, problem });
            }
        }
        for input in &record.ledger.inputs {
            if let Some(first_seq) = seen.insert(input.id, seq) {
                return Err(ChainError::DuplicateInput {
                    seq,
                    origin: hex::encode(input.id.origin),
                    nonce: input.id.nonce,
                    first_seq,
                });
            }
        }
        prev_result = record.result_summary();
        prev = record.ledger;
    }
    Ok((prev.seq, prev.hash()))
}
