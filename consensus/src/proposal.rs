//! Signed proposals: the round's candidate value from the round's proposer.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::sign::{self, NetworkId};
use crate::types::{Height, Round, ValidatorIndex, Value};
use crate::vote::{SignatureError, check};

/// The paper's `⟨PROPOSAL, h, r, v, vr⟩`, signed by the proposer over
/// `(height, round, valid_round, value.id())` (layout in [`crate::sign`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal<V> {
    /// Height proposed for.
    pub height: Height,
    /// Round proposed in.
    pub round: Round,
    /// The candidate value (the full ledger, not only its id).
    pub value: V,
    /// The round in which the proposer saw `q` prevotes for `value` (its *valid round*) when it
    /// re-proposes it; `None` is the paper's `-1` (a fresh value).
    pub valid_round: Option<Round>,
    /// The signer's position in the UNL; must be the proposer of `(height, round)`.
    pub proposer: ValidatorIndex,
    /// Ed25519 signature over [`Proposal::sign_bytes`].
    pub signature: Signature,
}

impl<V: Value> Proposal<V> {
    /// The canonical bytes signed for this proposal in `network`.
    pub fn sign_bytes(&self, network: &NetworkId) -> Vec<u8> {
        sign::proposal_bytes(network, self.height, self.round, self.valid_round, &self.value.id())
    }

    /// Signs a proposal in `network` with `key`, which must be UNL entry `proposer`.
    pub fn sign(
        network: &NetworkId,
        height: Height,
        round: Round,
        value: V,
        valid_round: Option<Round>,
        proposer: ValidatorIndex,
        key: &SigningKey,
    ) -> Proposal<V> {
        let signature = key.sign(&sign::proposal_bytes(network, height, round, valid_round, &value.id()));
        Proposal { height, round, value, valid_round, proposer, signature }
    }

    /// Checks the signature against the proposer's UNL key, as signed in `network`. Whether the signer is the
    /// rightful proposer of the round is the state machine's business, not the signature's.
    pub fn verify(&self, network: &NetworkId, unl: &[VerifyingKey]) -> Result<(), SignatureError> {
        check(unl, self.proposer, &self.sign_bytes(network), &self.signature, "proposal", self.height, self.round)
    }
}
