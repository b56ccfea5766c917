//! The post-execution result agreement (docs/consensus.md, "Result agreement"):
//! after executing ledger `h`, every validator signs `(h, state_hash, outputs_hash)`; `q`
//! matching votes make a [`ResultCertificate`], which releases the outputs to users and rides
//! in a later ledger.
//!
//! There are no rounds: each validator executes each ledger once and votes once. A validator
//! that signs two different results for one height is equivocating (or non-deterministic).

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::certificate::{CertError, check_signers};
use crate::sign::{self, NetworkId};
use crate::types::{Hash, Height, HexHash, ValidatorIndex};
use crate::vote::{SignatureError, check};

/// Heights above the lowest one still tracked for which votes are accepted: results trail
/// decisions by a height or two (pipelining), so anything further is noise or an attack on
/// memory.
pub const RESULT_HEIGHT_WINDOW: Height = 64;

/// "After executing ledger `height`, my state hash and outputs hash are these."
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultVote {
    /// Ledger executed.
    pub height: Height,
    /// Hash of the contract state after executing it.
    pub state_hash: Hash,
    /// Hash of the outputs it produced.
    pub outputs_hash: Hash,
    /// Signer's UNL index.
    pub validator: ValidatorIndex,
    /// Ed25519 signature over [`ResultVote::sign_bytes`].
    pub signature: Signature,
}

impl ResultVote {
    /// The canonical bytes signed in `network` (layout in [`crate::sign`]).
    pub fn sign_bytes(network: &NetworkId, height: Height, state_hash: &Hash, outputs_hash: &Hash) -> Vec<u8> {
        sign::result_bytes(network, height, state_hash, outputs_hash)
    }

    /// Signs a result vote in `network` with `key`, which must be UNL entry `validator`.
    pub fn sign(
        network: &NetworkId,
        height: Height,
        state_hash: Hash,
        outputs_hash: Hash,
        validator: ValidatorIndex,
        key: &SigningKey,
    ) -> ResultVote {
        let signature = key.sign(&Self::sign_bytes(network, height, &state_hash, &outputs_hash));
        ResultVote { height, state_hash, outputs_hash, validator, signature }
    }

    /// Checks the signature against the validator's UNL key, as signed in `network`.
    pub fn verify(&self, network: &NetworkId, unl: &[VerifyingKey]) -> Result<(), SignatureError> {
        check(
            unl,
            self.validator,
            &Self::sign_bytes(network, self.height, &self.state_hash, &self.outputs_hash),
            &self.signature,
            "result",
            self.height,
            0,
        )
    }

    fn pair(&self) -> (Hash, Hash) {
        (self.state_hash, self.outputs_hash)
    }
}

/// Proof that `q` validators agree on the result of executing ledger `height`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultCertificate {
    /// Ledger executed.
    pub height: Height,
    /// Agreed state hash.
    pub state_hash: Hash,
    /// Agreed outputs hash.
    pub outputs_hash: Hash,
    /// Result signatures by validator, sorted by validator index.
    pub signatures: Vec<(ValidatorIndex, Signature)>,
}

impl ResultCertificate {
    /// Checks that at least `quorum` distinct UNL validators validly signed this result in
    /// `network`.
    pub fn verify(&self, network: &NetworkId, unl: &[VerifyingKey], quorum: usize) -> Result<(), CertError> {
        check_signers(unl.len(), quorum, self.height, self.signatures.iter().map(|(validator, _)| *validator))?;
        let bytes = sign::result_bytes(network, self.height, &self.state_hash, &self.outputs_hash);
        for (validator, signature) in &self.signatures {
            let Some(key) = unl.get(*validator) else {
                continue; // in range: checked above
            };
            if key.verify_strict(&bytes, signature).is_err() {
                return Err(CertError::BadSignature {
                    validator: *validator,
                    claim: format!(
                        "result at height {} with state {} and outputs {} in network {network}",
                        self.height,
                        HexHash(&self.state_hash),
                        HexHash(&self.outputs_hash)
                    ),
                });
            }
        }
        Ok(())
    }
}

/// What adding a result vote revealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResultEvent {
    /// `q` validators agree: outputs of `height` may be released; store the certificate.
    Certified(ResultCertificate),
    /// This node's own result differs from the certified one: stop voting on results, restore
    /// the certified state from peers and log loudly (non-deterministic contract?).
    Diverged {
        /// This node's vote.
        own: ResultVote,
        /// The quorum's result.
        certificate: ResultCertificate,
    },
    /// The votes are split so that no result can gather `q` any more, even if every
    /// validator not yet heard from agreed: outputs of `height` can never be certified.
    Unreachable {
        /// Ledger executed.
        height: Height,
        /// Distinct validators heard from.
        voters: usize,
        /// Votes for the most popular result.
        best: usize,
    },
    /// A validator signed two different results for one height: evidence; only its first vote
    /// counts.
    Equivocation {
        /// First vote received (counted).
        first: ResultVote,
        /// The conflicting vote.
        second: ResultVote,
    },
}

/// Result votes of one height.
#[derive(Clone, Debug, Default)]
struct HeightResults {
    /// First vote of each validator.
    votes: BTreeMap<ValidatorIndex, ResultVote>,
    equivocators: BTreeSet<ValidatorIndex>,
    certificate: Option<ResultCertificate>,
    unreachable_reported: bool,
    divergence_reported: bool,
}

/// Collects verified result votes per height and says when a quorum agrees, when none can,
/// and when this node's own result is not the agreed one.
#[derive(Clone, Debug)]
pub struct ResultCollector {
    unl_len: usize,
    quorum: usize,
    /// Own UNL index, to recognise own votes; `None` for an observer.
    me: Option<ValidatorIndex>,
    /// Lowest height still accepted; votes below are ignored.
    floor: Height,
    heights: BTreeMap<Height, HeightResults>,
}

impl ResultCollector {
    /// A collector for a UNL of `unl_len` keys and quorum `quorum`, accepting heights from
    /// `first_height` on (within [`RESULT_HEIGHT_WINDOW`]).
    pub fn new(
        unl_len: usize,
        quorum: usize,
        me: Option<ValidatorIndex>,
        first_height: Height,
    ) -> Result<Self, crate::ParamsError> {
        crate::quorum::check_quorum(unl_len, quorum)?;
        Ok(ResultCollector { unl_len, quorum, me, floor: first_height, heights: BTreeMap::new() })
    }

    /// Adds a vote whose signature the host has verified. Own votes (`validator == me`) are
    /// added the same way. Returns what changed; each event is reported once per height.
    pub fn add(&mut self, vote: ResultVote) -> Vec<ResultEvent> {
        let mut events = Vec::new();
        if vote.validator >= self.unl_len
            || vote.height < self.floor
            || vote.height - self.floor >= RESULT_HEIGHT_WINDOW
        {
            return events;
        }
        let (unl_len, quorum, me) = (self.unl_len, self.quorum, self.me);
        let height = vote.height;
        let results = self.heights.entry(height).or_default();
        if results.equivocators.contains(&vote.validator) {
            return events;
        }
        match results.votes.get(&vote.validator) {
            Some(first) if first.pair() == vote.pair() => return events,
            Some(first) => {
                results.equivocators.insert(vote.validator);
                events.push(ResultEvent::Equivocation { first: first.clone(), second: vote });
                return events;
            }
            None => {
                results.votes.insert(vote.validator, vote);
            }
        }

        let mut tally: BTreeMap<(Hash, Hash), usize> = BTreeMap::new();
        for vote in results.votes.values() {
            *tally.entry(vote.pair()).or_insert(0) += 1;
        }
        if results.certificate.is_none() {
            if let Some((&(state_hash, outputs_hash), _)) = tally.iter().find(|(_, count)| **count >= quorum) {
                let certificate = ResultCertificate {
                    height,
                    state_hash,
                    outputs_hash,
                    signatures: results
                        .votes
                        .values()
                        .filter(|v| v.pair() == (state_hash, outputs_hash))
                        .map(|v| (v.validator, v.signature))
                        .collect(),
                };
                results.certificate = Some(certificate.clone());
                events.push(ResultEvent::Certified(certificate));
            } else if !results.unreachable_reported {
                let best = tally.values().copied().max().unwrap_or(0);
                let voters = results.votes.len();
                if best + (unl_len - voters) < quorum {
                    results.unreachable_reported = true;
                    events.push(ResultEvent::Unreachable { height, voters, best });
                }
            }
        }
        if let (Some(certificate), Some(me)) = (&results.certificate, me)
            && !results.divergence_reported
            && let Some(own) = results.votes.get(&me)
            && own.pair() != (certificate.state_hash, certificate.outputs_hash)
        {
            results.divergence_reported = true;
            events.push(ResultEvent::Diverged { own: own.clone(), certificate: certificate.clone() });
        }
        events
    }

    /// The certificate of `height`, once certified (and not pruned).
    pub fn certificate(&self, height: Height) -> Option<&ResultCertificate> {
        self.heights.get(&height)?.certificate.as_ref()
    }

    /// Forgets heights below `height` and stops accepting votes for them; call it once their
    /// certificates are stored, to keep memory bounded and move the acceptance window.
    pub fn prune_below(&mut self, height: Height) {
        if height > self.floor {
            self.floor = height;
            self.heights = self.heights.split_off(&height);
        }
    }
}
