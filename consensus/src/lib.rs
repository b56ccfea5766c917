//! Decides, height by height, one value all correct validators agree on, as a pure state
//! machine: an [`Input`] in, a list of [`Effect`]s out, with no I/O, clock or randomness.
//!
//! The protocol is Tendermint (Buchman, Kwon, Milosevic, "The latest gossip on BFT consensus",
//! 2018, Algorithm 1) with Hot Pocket's quorum `q` in place of `2f + 1` (see
//! CONSENSUS.md and DESIGN.md §5), plus the post-execution result agreement. The host
//! (`consensusd`) verifies signatures, turns effects into messages, timers and disk writes, and
//! feeds back what arrives. What the host must guarantee:
//!
//! - perform each call's effects in order; make [`Effect::Persist`] durable before sending any
//!   later message, and restart a crashed node with [`Input::Resume`] of the last one (or, with
//!   no state for the height, `StartHeight { round: 0 }`);
//! - store a decision durably before starting the next height;
//! - deliver eventually (the paper's gossip assumption): send [`Consensus::rebroadcast`] to
//!   every peer periodically, [`Consensus::catch_up`] to a peer seen in a lower round of the
//!   current height, and the stored value and [`CommitCertificate`] to a peer at a lower height;
//! - answer [`Effect::GetValue`] within the propose timeout, and [`Effect::ValidateProposal`].
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
pub use state_machine::Consensus;
pub use types::{Hash, Height, Round, Step, Timeout, TimeoutStep, ValidatorIndex, Value, VoteKind};
pub use vote::{SignatureError, Vote};
