//! Answers `Consensus.Ledger`: one stored ledger as HotPocket clients' `ledger_query` shows it,
//! read from a read-only connection to the store off the node loop (the store's WAL lets it
//! read while the loop writes).

use hp_ledger::user_signed::parse_container;
use hp_ledger::{Framing, Outcome, Store};
use hp_proto::v1 as pb;
use std::path::Path;

/// The reply for ledger `query.seq`; `found: false` when this node does not hold it. `framing`
/// says how its outputs divide into messages.
pub fn answer(store_path: &Path, query: &pb::LedgerQuery, framing: Framing) -> Result<pb::LedgerQueryReply, String> {
    let store = Store::open_read_only(store_path).map_err(|e| e.to_string())?;
    let Some(record) = store.get(query.seq).map_err(|e| e.to_string())? else {
        return Ok(pb::LedgerQueryReply::default());
    };
    let ledger = &record.ledger;
    let mut users = blake3::Hasher::new();
    for user in &ledger.users {
        users.update(user);
    }
    let mut inputs_hash = blake3::Hasher::new();
    let mut inputs = Vec::new();
    for input in &ledger.inputs {
        let (hash, nonce) = match &input.user_signed {
            Some(signed) => {
                let nonce = parse_container(signed.format, &signed.container).map(|c| c.nonce).unwrap_or(0);
                (signed.input_hash(), nonce)
            }
            None => (*blake3::hash(&input.signature.to_bytes()).as_bytes(), input.id.nonce),
        };
        inputs_hash.update(&hash);
        if query.inputs {
            inputs.push(pb::QueriedInput {
                pubkey: input.user.to_vec().into(),
                hash: hash.to_vec().into(),
                nonce,
                data: input.data.clone(),
            });
        }
    }
    let (mut outputs, mut outputs_kept) = (Vec::new(), true);
    if query.outputs {
        match store.agreed_outcome(query.seq).map_err(|e| e.to_string())? {
            Some(bytes) => {
                let outcome = Outcome::decode(&bytes).map_err(|e| e.to_string())?;
                outputs = outcome
                    .outputs
                    .into_iter()
                    .map(|(user, data)| pb::UserOutput { pubkey: user.to_vec().into(), data })
                    .collect();
            }
            None => outputs_kept = false,
        }
    }
    let result = record.result.as_ref();
    Ok(pb::LedgerQueryReply {
        found: true,
        seq: ledger.seq,
        time_ms: ledger.time_ms,
        hash: ledger.hash().to_vec().into(),
        prev_hash: ledger.prev_hash.to_vec().into(),
        state_hash: result.map(|r| r.state_hash.to_vec()).unwrap_or_default().into(),
        outputs_hash: result.map(|r| r.outputs_hash.to_vec()).unwrap_or_default().into(),
        user_hash: users.finalize().as_bytes().to_vec().into(),
        input_hash: inputs_hash.finalize().as_bytes().to_vec().into(),
        inputs,
        outputs,
        outputs_kept,
        length_prefixed: framing.flag(),
        config_hash: ledger.config_hash.to_vec().into(),
    })
}
