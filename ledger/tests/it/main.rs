//! Integration tests of the ledger crate: a signed chain in a real store, verified offline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chain;
mod fuzz;
mod store;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use hp_consensus::{CommitCertificate, NetworkId, ResultCertificate, ResultVote, Vote, VoteKind};
use hp_ledger::{Input, Ledger, LedgerBody, LedgerRecord, ResultSummary};

/// The network id of [`Network::new`]'s networks.
pub const NET: NetworkId = NetworkId([0x4e; 32]);
/// Another network id.
pub const OTHER_NET: NetworkId = NetworkId([0x0f; 32]);

/// A network of `n` keys that can sign ledgers the way consensus would, in network `id`.
pub struct Network {
    pub keys: Vec<SigningKey>,
    pub id: NetworkId,
}

impl Network {
    /// `n` fresh keys in network [`NET`].
    pub fn new(n: usize) -> Self {
        Self { keys: (0..n).map(|_| SigningKey::generate(&mut rand::rngs::OsRng)).collect(), id: NET }
    }

    /// The same keys in network `id`.
    pub fn in_network(&self, id: NetworkId) -> Self {
        Self { keys: self.keys.clone(), id }
    }

    /// The genesis members: every key, at the default threshold (0.8) for its quorum.
    pub fn members(&self) -> hp_ledger::Membership {
        let n = self.keys.len();
        hp_ledger::Membership::new(self.unl(), hp_consensus::quorum_for(n, 0.8).unwrap()).unwrap()
    }

    pub fn unl(&self) -> Vec<[u8; 32]> {
        self.keys.iter().map(|k| k.verifying_key().to_bytes()).collect()
    }

    pub fn commit(&self, ledger: &Ledger, signers: usize) -> CommitCertificate {
        let signatures = self.keys[..signers]
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let v = Vote::sign(&self.id, VoteKind::Precommit, ledger.seq, 0, Some(ledger.hash()), i, k);
                (i, v.signature)
            })
            .collect();
        CommitCertificate { height: ledger.seq, round: 0, value_id: ledger.hash(), signatures }
    }

    pub fn result(&self, seq: u64, state: [u8; 32], outputs: [u8; 32], signers: usize) -> ResultCertificate {
        let signatures = self.keys[..signers]
            .iter()
            .enumerate()
            .map(|(i, k)| (i, ResultVote::sign(&self.id, seq, state, outputs, i, k).signature))
            .collect();
        ResultCertificate { height: seq, state_hash: state, outputs_hash: outputs, signatures }
    }

    /// Genesis plus `len` signed ledgers, each with one input and a certified result.
    pub fn chain(&self, len: u64) -> Vec<LedgerRecord> {
        let genesis = Ledger::genesis(&self.unl(), &self.id);
        let mut records = vec![LedgerRecord { ledger: genesis, commit: None, result: None }];
        for seq in 1..=len {
            let prev = records.last().unwrap();
            let ledger = Ledger::new(LedgerBody {
                seq,
                prev_hash: prev.ledger.hash(),
                time_ms: 1_000 + seq,
                inputs: vec![Input::sign(&self.id, seq, [9; 32], Bytes::from(format!("input {seq}")), &self.keys[0])],
                users: vec![[9; 32]],
                prev_result: prev.result_summary(),
                config_hash: self.members().hash(),
                next_membership: None,
            });
            let q = self.keys.len();
            let commit = self.commit(&ledger, q);
            let result = self.result(seq, [seq as u8; 32], [0xaa; 32], q);
            records.push(LedgerRecord { ledger, commit: Some(commit), result: Some(result) });
        }
        records
    }
}

pub fn summary(state: u8) -> ResultSummary {
    ResultSummary { state_hash: [state; 32], outputs_hash: [0xaa; 32] }
}
