//! The node's answers: `stat` and `lcl` (from consensusd's status and the config) and the
//! status of a signed input.

use super::HotPocketShared;
use super::message::{self, Outgoing};
use super::node_view::NodeState;
use bson::Bson;
use hp_ledger::Framing;
use hp_ledger::output_proof::{TreeNode, output_hash, tree_for};
use hp_proto::v1::OutputsProof;

/// `stat_response`: the node's version, last closed ledger, UNL and peers.
pub fn stat(shared: &HotPocketShared, state: &NodeState) -> Outgoing {
    let weakly_connected = weakly_connected(state.peers, state.unl.len());
    Outgoing::new("stat_response")
        .str("hp_version", super::HP_VERSION)
        .u64("ledger_seq_no", state.lcl_seq)
        .bytes("ledger_hash", &state.lcl_hash)
        .str("vote_status", if state.in_sync { "synced" } else { "desync" })
        .u64("round_time", state.roundtime_ms)
        .bool("contract_execution_enabled", true)
        .bool("read_requests_enabled", true)
        .bool("is_full_history_node", true)
        .bool("weakly_connected", weakly_connected)
        .keys("current_unl", &state.unl)
        .strings("peers", &shared.peers)
}

/// hpcore's rule: fewer than 70 % of the other UNL members are connected.
pub fn weakly_connected(peers: u32, unl_size: usize) -> bool {
    let others = unl_size.saturating_sub(1);
    others > 0 && (peers as usize) * 10 < others * 7
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

/// `contract_output`: ledger `seq`'s output for `user`, with what proves it: the user's output
/// hash, the tree from it to the root, and the UNL's signatures over the root. Without a proof
/// (consensusd had none) the tree is the user's leaf alone and no signature: a client that
/// checks proofs refuses it, as it should.
pub fn contract_output(seq: u64, user: &[u8; 32], outputs: &[&[u8]], proof: Option<&OutputsProof>) -> Outgoing {
    let own = output_hash(user, outputs);
    let mut ledger_hash: &[u8] = &[];
    let mut tree = vec![TreeNode::Own];
    let mut signatures = Vec::new();
    if let Some(proof) = proof {
        ledger_hash = &proof.ledger_hash;
        let leaves: Option<Vec<[u8; 32]>> =
            proof.leaf_hashes.iter().map(|h| <[u8; 32]>::try_from(h.as_ref()).ok()).collect();
        let index = proof.leaf_users.iter().position(|u| u.as_ref() == user);
        if let (Some(leaves), Some(index)) = (leaves, index)
            && leaves.get(index) == Some(&own)
            && let Some(found) = tree_for(&leaves, index)
        {
            tree = found;
            for (signer, signature) in proof.signers.iter().zip(&proof.signatures) {
                let Ok(signer) = <[u8; 32]>::try_from(signer.as_ref()) else { continue };
                signatures.push(Bson::Array(vec![message::key(&signer), message::bytes(signature)]));
            }
        }
    }
    Outgoing::new("contract_output")
        .u64("ledger_seq_no", seq)
        .bytes("ledger_hash", ledger_hash)
        .value("outputs", Bson::Array(outputs.iter().map(|o| message::payload(o)).collect()))
        .bytes("output_hash", &own)
        .value("hash_tree", tree_bson(&tree))
        .value("unl_sig", Bson::Array(signatures))
}

fn tree_bson(nodes: &[TreeNode]) -> Bson {
    Bson::Array(
        nodes
            .iter()
            .map(|node| match node {
                TreeNode::Hash(h) => message::bytes(h),
                TreeNode::Own => Bson::Null,
                TreeNode::Branch(children) => tree_bson(children),
            })
            .collect(),
    )
}

/// `ledger_query_result` for request `id`: the ledger, or no result when the node does not
/// hold it (`error` says why when the node could not look).
pub fn ledger_query_result(id: &str, reply: Option<&hp_proto::v1::LedgerQueryReply>) -> Outgoing {
    let out = Outgoing::new("ledger_query_result").str("reply_for", id);
    let Some(reply) = reply else {
        return out.value("results", Bson::Array(Vec::new())).str("error", "node_unavailable");
    };
    if !reply.found {
        return out.value("results", Bson::Array(Vec::new()));
    }
    out.value("results", Bson::Array(vec![Bson::Document(ledger_document(reply))]))
}

/// A ledger as `ledger_query_result` and `ledger_event` show it (hotpocket-js-client's
/// `deserializeLedger`), with its inputs and outputs when the reply has them.
pub fn ledger_document(reply: &hp_proto::v1::LedgerQueryReply) -> bson::Document {
    let mut ledger = bson::Document::new();
    ledger.insert("seq_no", i64::try_from(reply.seq).unwrap_or(i64::MAX));
    ledger.insert("timestamp", i64::try_from(reply.time_ms).unwrap_or(i64::MAX));
    for (field, value) in [
        ("hash", &reply.hash),
        ("prev_hash", &reply.prev_hash),
        ("state_hash", &reply.state_hash),
        ("output_hash", &reply.outputs_hash),
        ("user_hash", &reply.user_hash),
        ("input_hash", &reply.input_hash),
        ("config_hash", &reply.config_hash),
    ] {
        ledger.insert(field, message::bytes(value));
    }
    if !reply.inputs.is_empty() {
        let inputs = reply.inputs.iter().filter_map(|i| {
            let user = <[u8; 32]>::try_from(i.pubkey.as_ref()).ok()?;
            let mut d = bson::Document::new();
            d.insert("pubkey", message::key(&user));
            d.insert("hash", message::bytes(&i.hash));
            d.insert("nonce", i64::try_from(i.nonce).unwrap_or(i64::MAX));
            d.insert("blob", message::payload(&i.data));
            Some(Bson::Document(d))
        });
        ledger.insert("inputs", Bson::Array(inputs.collect()));
    }
    if !reply.outputs.is_empty() {
        let framing = Framing::from_flag(reply.length_prefixed);
        let outputs = reply.outputs.iter().filter_map(|o| {
            let user = <[u8; 32]>::try_from(o.pubkey.as_ref()).ok()?;
            let messages = hp_ledger::outputs::messages(framing, &o.data);
            let mut d = bson::Document::new();
            d.insert("pubkey", message::key(&user));
            d.insert("hash", message::bytes(&output_hash(&user, &messages)));
            d.insert("blobs", Bson::Array(messages.iter().map(|m| message::payload(m)).collect()));
            Some(Bson::Document(d))
        });
        ledger.insert("outputs", Bson::Array(outputs.collect()));
    }
    ledger
}

/// `contract_read_response`: what a read-only run wrote to the user.
pub fn read_response(id: &str, output: &[u8]) -> Outgoing {
    Outgoing::new("contract_read_response").str("reply_for", id).value("content", message::payload(output))
}
