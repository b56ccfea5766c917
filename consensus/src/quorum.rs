//! Quorum arithmetic and the machine's parameters (docs/consensus.md, "Quorum arithmetic").
//!
//! With `n` validators and quorum `q`, two quorums overlap in at least `2q - n` validators, so
//! no fork is possible while fewer than `2q - n` of them are faulty; progress needs `q` of them
//! up. The paper's `2f + 1` becomes `q` and its `f + 1` ("at least one correct node") becomes
//! `n - q + 1` (more than the `n - q` nodes that may be down while the network still progresses).

use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use thiserror::Error;

use crate::sign::NetworkId;
use crate::types::{Round, TimeoutStep, ValidatorIndex};

/// Why a parameter set (UNL, threshold, quorum, own index) was rejected.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ParamsError {
    /// Consensus among zero validators is meaningless.
    #[error("the UNL is empty: at least one validator key is needed")]
    EmptyUnl,
    /// The threshold must be a fraction of the UNL.
    #[error("threshold {threshold} is not a number in (0, 1]")]
    InvalidThreshold {
        /// The rejected threshold.
        threshold: f64,
    },
    /// More signatures than validators can never be gathered.
    #[error("quorum {quorum} exceeds the UNL size {n}")]
    QuorumAboveUnl {
        /// The rejected quorum.
        quorum: usize,
        /// UNL size.
        n: usize,
    },
    /// Two quorums that need not overlap allow two decisions at one height.
    #[error(
        "quorum {quorum} of {n} validators is not a strict majority (2q - n must be at least 1): two disjoint quorums could decide differently"
    )]
    QuorumTooSmall {
        /// The rejected quorum.
        quorum: usize,
        /// UNL size.
        n: usize,
    },
    /// One key twice in the UNL would let one node count as two.
    #[error("UNL entries {first} and {second} hold the same key")]
    DuplicateKey {
        /// First index holding the key.
        first: ValidatorIndex,
        /// Second index holding the key.
        second: ValidatorIndex,
    },
    /// This node's index points past the end of the UNL.
    #[error("own validator index {me} is outside the UNL of {n} keys")]
    ValidatorOutOfRange {
        /// The rejected index.
        me: ValidatorIndex,
        /// UNL size.
        n: usize,
    },
    /// The signing key does not belong to the UNL entry this node claims: its votes would be
    /// rejected by everyone.
    #[error("the signing key's public key is not UNL entry {me}")]
    KeyMismatch {
        /// The claimed index.
        me: ValidatorIndex,
    },
}

/// The quorum for `n` validators at `threshold` (a fraction, 0.8 by default):
/// `q = ceil(threshold * n)`, never below a strict majority (`n / 2 + 1`).
///
/// The product is taken with a 1e-9 tolerance so that float rounding (0.7 * 10 =
/// 7.000000000000001) does not cost an extra signature.
pub fn quorum_for(n: usize, threshold: f64) -> Result<usize, ParamsError> {
    if n == 0 {
        return Err(ParamsError::EmptyUnl);
    }
    if !threshold.is_finite() || threshold <= 0.0 || threshold > 1.0 {
        return Err(ParamsError::InvalidThreshold { threshold });
    }
    // `n` is a UNL size (small), so the f64 round trip is exact.
    let raw = (threshold * n as f64 - 1e-9).ceil().max(0.0) as usize;
    let quorum = raw.max(n / 2 + 1);
    check_quorum(n, quorum)?;
    Ok(quorum)
}

/// How many distinct validators of `n` must say a thing for at least one correct one to have
/// said it, with quorum `quorum`: `n - q + 1` (the paper's `f + 1`). More than the `n - q` that
/// may be faulty or down while the network still progresses.
pub fn one_correct_among(n: usize, quorum: usize) -> usize {
    n.saturating_sub(quorum) + 1
}

/// Checks that `quorum` is usable with `n` validators: at most `n`, and `2q - n >= 1`.
pub fn check_quorum(n: usize, quorum: usize) -> Result<(), ParamsError> {
    if n == 0 {
        return Err(ParamsError::EmptyUnl);
    }
    if quorum > n {
        return Err(ParamsError::QuorumAboveUnl { quorum, n });
    }
    if 2 * quorum <= n {
        return Err(ParamsError::QuorumTooSmall { quorum, n });
    }
    Ok(())
}

/// Timeout lengths. `timeout(r) = base + r * delta`, so that rounds eventually last long enough
/// for any (unknown) network delay: the paper's partial-synchrony assumption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Base of `timeoutPropose` (line 21). Must exceed the host's longest wait before answering
    /// `GetValue` (the heartbeat `roundtime`) plus a network hop, or idle rounds fail.
    pub propose: Duration,
    /// Base of `timeoutPrevote` (line 35).
    pub prevote: Duration,
    /// Base of `timeoutPrecommit` (line 48).
    pub precommit: Duration,
    /// Added per round to every base.
    pub delta: Duration,
}

impl Timeouts {
    /// The length of `step`'s timeout in `round`: `base + round * delta`, saturating.
    pub fn duration(&self, step: TimeoutStep, round: Round) -> Duration {
        let base = match step {
            TimeoutStep::Propose => self.propose,
            TimeoutStep::Prevote => self.prevote,
            TimeoutStep::Precommit => self.precommit,
        };
        base.saturating_add(self.delta.saturating_mul(round))
    }
}

/// Everything the machine needs to know about the network it runs in; identical on all nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// The validators' public keys, in the same order on every node; a validator's position is
    /// its [`ValidatorIndex`].
    pub unl: Vec<VerifyingKey>,
    /// Signatures needed for any decision (the paper's `2f + 1`); see [`quorum_for`].
    pub quorum: usize,
    /// Timeout lengths.
    pub timeouts: Timeouts,
    /// The network every signature is made and checked in ([`crate::sign`]).
    pub network: NetworkId,
}

impl Params {
    /// Checks the UNL and quorum: non-empty, no key twice, `q <= n`, `2q - n >= 1`.
    pub fn validate(&self) -> Result<(), ParamsError> {
        check_quorum(self.unl.len(), self.quorum)?;
        for (second, key) in self.unl.iter().enumerate() {
            if let Some(first) = self.unl[..second].iter().position(|k| k == key) {
                return Err(ParamsError::DuplicateKey { first, second });
            }
        }
        Ok(())
    }

    /// UNL size, the paper's `n`.
    pub fn n(&self) -> usize {
        self.unl.len()
    }

    /// Distinct senders of a higher round that prove at least one correct node is there
    /// (the paper's `f + 1`, line 55).
    pub fn skip_threshold(&self) -> usize {
        one_correct_among(self.n(), self.quorum)
    }
}
