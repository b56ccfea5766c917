//! Signed prevotes and precommits, and the error every signature check in this crate returns.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use thiserror::Error;

use crate::sign::{self, NetworkId};
use crate::types::{Hash, Height, HexHash, Round, ValidatorIndex, VoteKind};

/// Why a signed message (vote, proposal, result vote) did not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// The claimed signer is not in the UNL, so there is no key to check against.
    #[error("{what} claims validator {validator}, but the UNL has only {unl_len} keys")]
    UnknownValidator {
        /// Message kind ("prevote", "proposal", ...).
        what: &'static str,
        /// Claimed signer.
        validator: ValidatorIndex,
        /// UNL size.
        unl_len: usize,
    },
    /// The signature does not verify under the claimed validator's key for these contents.
    #[error("{what} at height {height} round {round} is not validly signed by validator {validator}")]
    BadSignature {
        /// Message kind ("prevote", "proposal", ...).
        what: &'static str,
        /// Claimed signer.
        validator: ValidatorIndex,
        /// Height the message claims.
        height: Height,
        /// Round the message claims (0 for result votes, which have none).
        round: Round,
    },
}

/// Checks `signature` over `bytes` by UNL entry `validator`; `what`, `height` and `round` only
/// feed the error.
pub(crate) fn check(
    unl: &[VerifyingKey],
    validator: ValidatorIndex,
    bytes: &[u8],
    signature: &Signature,
    what: &'static str,
    height: Height,
    round: Round,
) -> Result<(), SignatureError> {
    let key = unl.get(validator).ok_or(SignatureError::UnknownValidator { what, validator, unl_len: unl.len() })?;
    key.verify_strict(bytes, signature).map_err(|_| SignatureError::BadSignature { what, validator, height, round })
}

/// A prevote or precommit: "validator says `value` (or nil) in round `round` of `height`".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    /// Prevote or precommit.
    pub kind: VoteKind,
    /// Height voted in.
    pub height: Height,
    /// Round voted in.
    pub round: Round,
    /// Id of the value voted for; `None` is the paper's nil.
    pub value: Option<Hash>,
    /// The signer's position in the UNL.
    pub validator: ValidatorIndex,
    /// Ed25519 signature over [`Vote::sign_bytes`].
    pub signature: Signature,
}

impl Vote {
    /// The canonical bytes signed for a vote in `network` (layout in [`crate::sign`]).
    pub fn sign_bytes(
        network: &NetworkId,
        kind: VoteKind,
        height: Height,
        round: Round,
        value: Option<&Hash>,
    ) -> Vec<u8> {
        sign::vote_bytes(network, kind, height, round, value)
    }

    /// Signs a vote in `network` with `key`, which must be UNL entry `validator`.
    pub fn sign(
        network: &NetworkId,
        kind: VoteKind,
        height: Height,
        round: Round,
        value: Option<Hash>,
        validator: ValidatorIndex,
        key: &SigningKey,
    ) -> Vote {
        let signature = key.sign(&Self::sign_bytes(network, kind, height, round, value.as_ref()));
        Vote { kind, height, round, value, validator, signature }
    }

    /// Checks the signature against the validator's UNL key, as signed in `network`.
    pub fn verify(&self, network: &NetworkId, unl: &[VerifyingKey]) -> Result<(), SignatureError> {
        let bytes = Self::sign_bytes(network, self.kind, self.height, self.round, self.value.as_ref());
        check(unl, self.validator, &bytes, &self.signature, self.kind.name(), self.height, self.round)
    }
}

impl std::fmt::Display for Vote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} h{} r{} by {} for ", self.kind, self.height, self.round, self.validator)?;
        match &self.value {
            Some(id) => write!(f, "{}", HexHash(id)),
            None => f.write_str("nil"),
        }
    }
}
