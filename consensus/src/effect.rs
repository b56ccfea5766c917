//! What the machine asks the host to do.

use std::time::Duration;

use crate::certificate::CommitCertificate;
use crate::evidence::Evidence;
use crate::proposal::Proposal;
use crate::types::{Height, Round, Timeout};
use crate::vote::Vote;

/// A value together with the round it is attached to (a lock or a valid value).
#[derive(Clone, Debug, PartialEq)]
pub struct RoundValue<V> {
    /// `lockedRound_p` or `validRound_p`.
    pub round: Round,
    /// `lockedValue_p` or `validValue_p`.
    pub value: V,
}

/// What a node must keep across a crash for the height in progress: the highest round it may
/// have signed in, and its lock and valid value (paper lines 6-9). A restart that loses the
/// round may equivocate; one that loses the lock may help decide a second value.
#[derive(Clone, Debug, PartialEq)]
pub struct RecoveryState<V> {
    /// Height in progress.
    pub height: Height,
    /// Highest round in which this node may have signed a proposal or vote.
    pub round: Round,
    /// The lock, if any (`lockedRound_p`, `lockedValue_p`).
    pub locked: Option<RoundValue<V>>,
    /// The valid value, if any (`validRound_p`, `validValue_p`).
    pub valid: Option<RoundValue<V>>,
}

/// One thing for the host to do. The host performs a `handle` call's effects in order: in
/// particular a [`Effect::Persist`] is durable before any later broadcast in the same list
/// leaves the node.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect<V> {
    /// Write this state durably (fsync) before sending any message that follows it; replaces
    /// the previously persisted one. Emitted before the first signature in a round and whenever
    /// the lock or valid value changed since the last one.
    Persist(RecoveryState<V>),
    /// Send this node's proposal to every peer.
    BroadcastProposal(Proposal<V>),
    /// Send this node's vote to every peer.
    BroadcastVote(Vote),
    /// Call back with `Input::Timeout(timeout)` after `after` has elapsed. Timers are never
    /// cancelled: stale ones are recognised and ignored.
    ScheduleTimeout {
        /// What to hand back.
        timeout: Timeout,
        /// How long to wait.
        after: Duration,
    },
    /// This node is the proposer of (height, round) and has no valid value to re-propose: ask
    /// the host for a fresh one. The host answers with `Input::ProposeValue`, possibly later (it
    /// waits for pending inputs or for the heartbeat time), but before the propose timeout.
    GetValue {
        /// Height to build for.
        height: Height,
        /// Round to build for.
        round: Round,
    },
    /// A proposal for this height that arrived while the previous height was in progress:
    /// judge `valid(v)` now and pass it back as `Input::Proposal`. Its signature was checked
    /// on arrival.
    ValidateProposal(Proposal<V>),
    /// Height decided (paper line 49). The host stores value + certificate durably, then later
    /// sends `StartHeight` for the next height.
    Decide {
        /// The decided value.
        value: V,
        /// The `q` precommits that decided it.
        certificate: CommitCertificate,
    },
    /// `q` precommits for a value id whose proposal this node never received: the host must
    /// fetch the value by id from peers (then verify `value.id() == certificate.value_id`),
    /// store it with the certificate and start the next height.
    DecideWithoutValue {
        /// The `q` precommits that decided it.
        certificate: CommitCertificate,
    },
    /// Two different signed votes of one kind for one (height, round) from one validator (or
    /// two different proposals): evidence to log. The machine already ignores that validator
    /// for the rest of the height (its first vote stays counted, once).
    Equivocation(Evidence<V>),
}
