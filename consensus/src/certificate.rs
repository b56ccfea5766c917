//! Commit certificates: the `q` precommit signatures that prove a value was decided.

use std::collections::BTreeSet;

use ed25519_dalek::{Signature, VerifyingKey};
use thiserror::Error;

use crate::sign::{self, NetworkId};
use crate::types::{Hash, Height, HexHash, Round, ValidatorIndex, VoteKind};
use crate::vote::Vote;

/// Why a commit or result certificate was rejected. Used offline by `hotpocket verify`, so
/// each variant names the exact fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CertError {
    /// The caller's quorum is unusable with this UNL (a configuration error, not the
    /// certificate's).
    #[error("quorum {quorum} is impossible with a UNL of {unl_len} keys")]
    InvalidQuorum {
        /// Quorum asked for.
        quorum: usize,
        /// UNL size.
        unl_len: usize,
    },
    /// Fewer distinct signers than the quorum.
    #[error("certificate for height {height} has {have} distinct signers, {need} needed")]
    TooFewSignatures {
        /// Height certified.
        height: Height,
        /// Distinct signers present.
        have: usize,
        /// Quorum.
        need: usize,
    },
    /// One validator appears twice: it would otherwise count twice.
    #[error("certificate for height {height} lists validator {validator} more than once")]
    DuplicateSigner {
        /// Height certified.
        height: Height,
        /// The repeated validator.
        validator: ValidatorIndex,
    },
    /// A signer index past the end of the UNL.
    #[error("certificate for height {height} names validator {validator}, but the UNL has only {unl_len} keys")]
    UnknownSigner {
        /// Height certified.
        height: Height,
        /// The out-of-range index.
        validator: ValidatorIndex,
        /// UNL size.
        unl_len: usize,
    },
    /// A signature that does not verify for exactly what the certificate claims (wrong key,
    /// or a signature over another network, height, round, value or message kind).
    #[error("signature of validator {validator} does not verify for {claim}")]
    BadSignature {
        /// The validator whose signature failed.
        validator: ValidatorIndex,
        /// What the signature should have covered, spelled out.
        claim: String,
    },
}

/// Checks the common shape of a quorum certificate: usable quorum, in-range and distinct
/// signers, at least `quorum` of them. Signatures are checked by the caller afterwards (they
/// are the expensive part).
pub(crate) fn check_signers(
    unl_len: usize,
    quorum: usize,
    height: Height,
    signers: impl Iterator<Item = ValidatorIndex>,
) -> Result<(), CertError> {
    if quorum == 0 || quorum > unl_len {
        return Err(CertError::InvalidQuorum { quorum, unl_len });
    }
    let mut seen = BTreeSet::new();
    for validator in signers {
        if validator >= unl_len {
            return Err(CertError::UnknownSigner { height, validator, unl_len });
        }
        if !seen.insert(validator) {
            return Err(CertError::DuplicateSigner { height, validator });
        }
    }
    if seen.len() < quorum {
        return Err(CertError::TooFewSignatures { height, have: seen.len(), need: quorum });
    }
    Ok(())
}

/// Proof that `value_id` was decided at `height`: precommits for it in `round` from at least
/// `q` distinct validators (paper line 49). Stored with the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitCertificate {
    /// Height decided.
    pub height: Height,
    /// Round whose precommits decided it.
    pub round: Round,
    /// Id of the decided value (the ledger hash).
    pub value_id: Hash,
    /// Precommit signatures over `(height, round, Some(value_id))`, by validator, sorted by
    /// validator index.
    pub signatures: Vec<(ValidatorIndex, Signature)>,
}

impl CommitCertificate {
    /// Checks that at least `quorum` distinct UNL validators validly precommitted
    /// `(height, round, value_id)` in `network`. The first fault found is reported.
    pub fn verify(&self, network: &NetworkId, unl: &[VerifyingKey], quorum: usize) -> Result<(), CertError> {
        check_signers(unl.len(), quorum, self.height, self.signatures.iter().map(|(validator, _)| *validator))?;
        let bytes = sign::vote_bytes(network, VoteKind::Precommit, self.height, self.round, Some(&self.value_id));
        for (validator, signature) in &self.signatures {
            // In range: checked above.
            let Some(key) = unl.get(*validator) else {
                continue;
            };
            if key.verify_strict(&bytes, signature).is_err() {
                return Err(CertError::BadSignature {
                    validator: *validator,
                    claim: format!(
                        "precommit at height {} round {} for value {} in network {network}",
                        self.height,
                        self.round,
                        HexHash(&self.value_id)
                    ),
                });
            }
        }
        Ok(())
    }

    /// The precommits the certificate is made of, e.g. to feed a node that missed them
    /// (`Input::Vote` each) so that it decides through the normal path.
    pub fn votes(&self) -> Vec<Vote> {
        self.signatures
            .iter()
            .map(|(validator, signature)| Vote {
                kind: VoteKind::Precommit,
                height: self.height,
                round: self.round,
                value: Some(self.value_id),
                validator: *validator,
                signature: *signature,
            })
            .collect()
    }
}
