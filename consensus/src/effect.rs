//! What the machine asks the host to do.

use std::time::Duration;

use crate::certificate::CommitCertificate;
use crate::evidence::Evidence;
use crate::proposal::Proposal;
use crate::types::{Height, Round, Timeout};
use crate::vote::Vote;

/// A signed consensus message as it travels between nodes; what [`crate::Consensus::rebroadcast`]
/// and [`crate::Consensus::catch_up`] hand the host to (re-)send. The receiver feeds it back
/// as `Input::Proposal` or `Input::Vote` after checking the signature.
#[derive(Clone, Debug, PartialEq)]
pub enum Message<V> {
    /// A proposal (possibly another validator's, relayed).
    Proposal(Proposal<V>),
    /// A vote (possibly another validator's, relayed).
    Vote(Vote),
}

/// A value together with the round it is attached to (a lock or a valid value).
#[derive(Clone, Debug, PartialEq)]
pub struct RoundValue<V> {
    /// `lockedRound_p` or `validRound_p`.
    pub round: Round,
    /// `lockedValue_p` or `validValue_p`.
    pub value: V,
}

/// What a node must keep across a crash for the height in progress: its round, lock and
/// valid value (paper lines 3, 6-9) and the messages it signed in that round and the one
/// before. A restart that forgets a signed message may sign a conflicting one (equivocation);
/// one that forgets the lock may help decide a second value (amnesia, as bad as a byzantine
/// fault for Tendermint); one that skips the round it was in may leave the others one vote
/// short of finishing it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecoveryState<V> {
    /// Height in progress.
    pub height: Height,
    /// Round the node was in at its latest signature; it resumes there.
    pub round: Round,
    /// The lock, if any (`lockedRound_p`, `lockedValue_p`).
    pub locked: Option<RoundValue<V>>,
    /// The valid value, if any (`validRound_p`, `validValue_p`).
    pub valid: Option<RoundValue<V>>,
    /// Every proposal and vote this node signed in `round` and `round - 1`: restored into
    /// the log on resume (so none is signed again differently) and sent again from there.
    pub signed: Vec<Message<V>>,
    /// The prevotes (any validator's) for the valid value in its valid round: the proof a
    /// re-proposal of it needs (line 28). Without it, nodes locked on that value and nodes that
    /// never saw its polka could wait for each other forever.
    pub proof_of_lock: Vec<Vote>,
}

/// One thing for the host to do. The host performs a `handle` call's effects in order: in
/// particular a [`Effect::Persist`] is durable before any later broadcast in the same list
/// leaves the node.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect<V> {
    /// Write this state durably (fsync) before sending any message that follows it; replaces
    /// the previously persisted one. Emitted after every signature, before its broadcast, so
    /// what was persisted covers everything this node ever sent in the height.
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
    /// two different proposals): evidence to log (reported once per round and kind). The
    /// machine counts that validator at most once in every tally (see `vote_keeper`).
    Equivocation(Evidence<V>),
}
