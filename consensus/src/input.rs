//! What the host feeds the machine.

use crate::effect::RecoveryState;
use crate::proposal::Proposal;
use crate::types::{Height, Round, Timeout};
use crate::vote::Vote;

/// One event for [`crate::Consensus::handle`]. Signatures are the host's job: the machine
/// trusts that every proposal and vote it is given has been verified against the UNL.
#[derive(Clone, Debug, PartialEq)]
pub enum Input<V> {
    /// Begin height `height` at round `round` (0 normally; a restarted node that has no
    /// [`RecoveryState`] for this height passes 0, one that has one uses [`Input::Resume`]; a
    /// round above any it may have signed in also avoids equivocation, but forgets the lock).
    /// Ignored unless `height` is above the current height (or
    /// nothing was started yet): a height is never restarted within one machine, since that
    /// would sign round 0 again.
    StartHeight {
        /// Height to begin.
        height: Height,
        /// First round.
        round: Round,
    },
    /// Restart after a crash from the last [`RecoveryState`] the host persisted: begin
    /// `state.height` again at `state.round`, with the lock, valid value and own signed messages
    /// restored, so that the restarted node neither signs anything twice nor forgets a lock, and
    /// can still finish the round the others are in. Same acceptance rule as `StartHeight`.
    Resume(RecoveryState<V>),
    /// A proposal whose signature the host has already verified; `valid` is the host's verdict
    /// on the value itself (prev hash, time, inputs not already in the chain...): the paper's
    /// `valid(v)`. For a proposal of the next height the verdict is ignored: the host cannot
    /// judge it before storing the current height, so the machine buffers it and hands it back
    /// in [`crate::Effect::ValidateProposal`] once that height starts.
    Proposal {
        /// The verified proposal.
        proposal: Proposal<V>,
        /// `valid(v)` as judged on the host's chain at the proposal's height.
        valid: bool,
    },
    /// A vote whose signature the host has already verified.
    Vote(Vote),
    /// The host's answer to [`crate::Effect::GetValue`]: the value this node proposes at
    /// (height, round). Ignored if the machine has left that round's propose step meanwhile.
    ProposeValue {
        /// Height asked for.
        height: Height,
        /// Round asked for.
        round: Round,
        /// The fresh value (the host judges it valid by construction).
        value: V,
    },
    /// A timer asked for by [`crate::Effect::ScheduleTimeout`] has fired.
    Timeout(Timeout),
}
