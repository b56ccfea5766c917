//! The UNL's signatures over each ledger's output root (HotPocket 0.6 proofs,
//! `hp_ledger::output_proof`): this node signs the root of its own outcome and sends the
//! signature in its result vote's frame (so whoever counts the vote holds it: a separate frame
//! could arrive after the vote on another link); peers' signatures are kept per ledger, and when a
//! ledger's outputs go to userd, the ones that verify against the root of the agreed outcome go
//! with them, so a HotPocket client can check its outputs against the UNL.

use super::Node;
use crate::api::OutputsProof;
use ed25519_dalek::{Signature, Signer, Verifier};
use hp_ledger::Outcome;
use hp_ledger::output_proof::{leaves, outcome_root};
use std::collections::{BTreeMap, HashSet};

/// Ledgers behind the last closed one whose signatures are kept: those whose outputs may still
/// go to userd.
const KEPT: u64 = 64;

/// Root signatures by ledger, then by validator; at most one per validator and ledger.
#[derive(Default)]
pub(super) struct OutputProofs {
    sigs: BTreeMap<u64, BTreeMap<usize, [u8; 64]>>,
}

impl OutputProofs {
    /// Keeps `validator`'s signature for ledger `height` if that ledger is near `lcl` (one from
    /// far away, behind or ahead, costs nothing).
    pub fn insert(&mut self, height: u64, validator: usize, signature: [u8; 64], lcl: u64) {
        if height > lcl + 2 || height + KEPT < lcl {
            return;
        }
        self.sigs.entry(height).or_default().entry(validator).or_insert(signature);
        while let Some((&oldest, _)) = self.sigs.first_key_value() {
            if oldest + KEPT >= lcl {
                break;
            }
            self.sigs.remove(&oldest);
        }
    }

    fn get(&self, height: u64) -> impl Iterator<Item = (&usize, &[u8; 64])> {
        self.sigs.get(&height).into_iter().flatten()
    }
}

impl Node {
    /// Signs the root of this node's own outcome of ledger `seq` and keeps the signature, which
    /// goes out with the result vote. `None` when no user has outputs.
    pub(super) fn sign_output_root(&mut self, seq: u64, outcome: &Outcome) -> Option<[u8; 64]> {
        let me = self.me_at(seq)?;
        let root = outcome_root(outcome, self.cfg.output_framing)?;
        let signature = self.cfg.key.sign(&root).to_bytes();
        self.proofs.insert(seq, me, signature, self.last.seq);
        Some(signature)
    }

    /// A validator's signature over ledger `height`'s root, from its (verified) result vote;
    /// checked against the root when the outputs go out.
    pub(super) fn on_output_root_sig(&mut self, validator: usize, height: u64, signature: [u8; 64]) {
        self.proofs.insert(height, validator, signature, self.last.seq);
    }

    /// This node's own root signature for the last ledger while its result is not certified
    /// (sent again with the result vote to a peer that reconnects).
    pub(super) fn own_root_sig(&self) -> Option<(u64, [u8; 64])> {
        let (seq, me) = (self.last.seq, self.me_at(self.last.seq)?);
        self.proofs.get(seq).find(|(v, _)| **v == me).map(|(_, s)| (seq, *s))
    }

    /// The root signatures held for ledger `seq`, by key: stored with its outputs, so that
    /// outputs handed over again after a restart still carry their proof.
    pub(super) fn root_sigs(&self, seq: u64) -> Vec<hp_ledger::store::RootSignature> {
        let unl = self.members_at(seq).unl();
        self.proofs.get(seq).filter_map(|(v, s)| Some((*unl.get(*v)?, *s))).collect()
    }

    /// The proof for ledger `seq`'s outputs: every user's output hash of the agreed outcome and
    /// the UNL signatures that verify over its root, those held here and those stored with the
    /// outputs (after a restart, only those). `None` when the outcome or the ledger is not at
    /// hand.
    pub(super) fn outputs_proof(&self, seq: u64) -> Option<OutputsProof> {
        let outcome = match self.store.agreed_outcome(seq) {
            Ok(Some(bytes)) => Outcome::decode(&bytes).ok()?,
            _ => return None,
        };
        let ledger_hash = self.store.hash_at(seq).ok().flatten()?;
        let leaves = leaves(&outcome, self.cfg.output_framing);
        let root = hp_ledger::output_proof::root(&leaves.iter().map(|(_, h)| *h).collect::<Vec<_>>())?;
        let stored = self.store.output_root_sigs(seq).unwrap_or_else(|e| {
            tracing::warn!(seq, error = %e, "cannot read the stored root signatures");
            Vec::new()
        });
        // Those held are mostly those stored too: each is checked once, and a member's first
        // that verifies is the one kept.
        let members = self.members_at(seq);
        let mut signatures: Vec<([u8; 32], [u8; 64])> = Vec::new();
        let mut signed = HashSet::new();
        let mut checked = HashSet::new();
        for (key, signature) in self.root_sigs(seq).into_iter().chain(stored) {
            if signed.contains(&key) || !checked.insert((key, signature)) {
                continue;
            }
            let Some(index) = members.position(&key) else { continue };
            if members.keys().get(index).is_some_and(|k| k.verify(&root, &Signature::from_bytes(&signature)).is_ok()) {
                signed.insert(key);
                signatures.push((key, signature));
            }
        }
        Some(OutputsProof { ledger_hash, leaves, signatures })
    }
}
