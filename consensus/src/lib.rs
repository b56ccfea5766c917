//! Decides, height by height, one value all correct validators agree on, as a pure state
//! machine: an [`Input`] in, a list of [`Effect`]s out, with no I/O, clock or randomness.
//!
//! The protocol is Tendermint (Buchman, Kwon, Milosevic, "The latest gossip on BFT consensus",
//! 2018, Algorithm 1) with Hot Pocket's quorum `q` in place of `2f + 1` (see
//! docs/consensus.md), plus the post-execution result agreement. The host
//! (`consensusd`) turns effects into messages, timers and disk writes, and feeds back what
//! arrives; its side of the contract is at the end.
//!
//! # Layout
//! - [`types`]: heights, rounds, steps, timeouts, the [`Value`] trait.
//! - [`quorum`]: quorum arithmetic, [`Params`], [`Timeouts`].
//! - [`sign`]: the canonical signed bytes (a fixed format outside verifiers rely on).
//! - [`vote`], [`proposal`]: signed consensus messages.
//! - [`certificate`]: [`CommitCertificate`] and its offline check.
//! - [`evidence`]: equivocation proofs.
//! - [`input`], [`effect`]: the machine's interface to its host.
//! - `vote_keeper`: the per-height message log (internal).
//! - [`state_machine`]: [`Consensus`], Algorithm 1 rule by rule.
//! - [`result`]: the post-execution result agreement.
//!
//! # What the host must do
//! - verify every proposal's and vote's signature in [`Params::network`] (and the signer's UNL
//!   index) before feeding it; judge `valid(v)` for proposals, including those handed back by
//!   [`Effect::ValidateProposal`]; answer [`Effect::GetValue`] within the propose timeout;
//! - perform each call's effects in order, making each [`Effect::Persist`] durable (fsync)
//!   before sending anything that follows it; after a crash, start with [`Input::Resume`] of
//!   the last one if it is for the height to run, else `StartHeight { round: 0 }`;
//! - store a decision (value and certificate) durably before starting the next height;
//! - deliver eventually (the paper's gossip assumption): send [`Consensus::rebroadcast`] to
//!   every peer periodically, [`Consensus::catch_up`] to a peer seen in a lower round of the
//!   current height, and stored values with their [`CommitCertificate`]s to a peer at a lower
//!   height.

pub mod certificate;
pub mod effect;
pub mod evidence;
pub mod input;
pub mod proposal;
pub mod quorum;
pub mod result;
pub mod sign;
pub mod state_machine;
pub mod types;
pub mod vote;
mod vote_keeper;

pub use certificate::{CertError, CommitCertificate};
pub use effect::{Effect, Message, RecoveryState, RoundValue};
pub use evidence::Evidence;
pub use input::Input;
pub use proposal::Proposal;
pub use quorum::{Params, ParamsError, Timeouts, quorum_for};
pub use result::{ResultCertificate, ResultCollector, ResultEvent, ResultVote};
pub use sign::NetworkId;
pub use state_machine::Consensus;
pub use types::{Hash, Height, Round, Step, Timeout, TimeoutStep, ValidatorIndex, Value, VoteKind};
pub use vote::{SignatureError, Vote};
