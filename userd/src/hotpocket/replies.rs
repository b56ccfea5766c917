//! The node's answers: `stat` and `lcl` (from consensusd's status and the config) and the
//! status of a signed input.

use super::HotPocketShared;
use super::message::Outgoing;
use super::node_view::NodeState;

/// `stat_response`: the node's version, last closed ledger, UNL and peers.
pub fn stat(shared: &HotPocketShared, state: &NodeState) -> Outgoing {
    let others = shared.unl.len().saturating_sub(1);
    // hpcore's rule: fewer than 70 % of the other UNL members connected.
    let weakly_connected = others > 0 && (state.peers as usize) * 10 < others * 7;
    Outgoing::new("stat_response")
        .str("hp_version", super::HP_VERSION)
        .u64("ledger_seq_no", state.lcl_seq)
        .bytes("ledger_hash", &state.lcl_hash)
        .str("vote_status", if state.in_sync { "synced" } else { "desync" })
        .u64("round_time", shared.roundtime_ms)
        .bool("contract_execution_enabled", true)
        .bool("read_requests_enabled", false)
        .bool("is_full_history_node", true)
        .bool("weakly_connected", weakly_connected)
        .keys("current_unl", &shared.unl)
        .strings("peers", &shared.peers)
}

/// `lcl_response`: the last closed ledger.
pub fn lcl(state: &NodeState) -> Outgoing {
    Outgoing::new("lcl_response").u64("ledger_seq_no", state.lcl_seq).bytes("ledger_hash", &state.lcl_hash)
}

/// `contract_input_status`: the input is in ledger `seq` (hash `ledger_hash`).
pub fn input_accepted(input_hash: &[u8; 32], seq: u64, ledger_hash: &[u8; 32]) -> Outgoing {
    Outgoing::new("contract_input_status")
        .str("status", "accepted")
        .bytes("input_hash", input_hash)
        .u64("ledger_seq_no", seq)
        .bytes("ledger_hash", ledger_hash)
}

/// `contract_input_status`: the input was refused, with hpcore's reason where there is one.
pub fn input_rejected(input_hash: &[u8; 32], reason: &str) -> Outgoing {
    Outgoing::new("contract_input_status")
        .str("status", "rejected")
        .bytes("input_hash", input_hash)
        .str("reason", reason)
}
