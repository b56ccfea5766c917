//! Shared fixtures: a test value type, deterministic keys, and a harness that drives one
//! machine by hand with messages signed by the other validators.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use hp_consensus::{
    Consensus, Effect, Hash, Height, Input, NetworkId, Params, Proposal, RecoveryState, Round, RoundValue, Timeout,
    TimeoutStep, Timeouts, ValidatorIndex, Value, Vote, VoteKind,
};
use sha2::{Digest, Sha256};

/// A value that is just a label; its id is the label's SHA-256.
#[derive(Clone, Debug, PartialEq)]
pub struct TestValue(pub &'static str);

impl Value for TestValue {
    fn id(&self) -> Hash {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

pub const A: TestValue = TestValue("A");
pub const B: TestValue = TestValue("B");

/// Deterministic, distinct keys.
pub fn keys(n: usize) -> Vec<SigningKey> {
    (0..n)
        .map(|i| {
            let mut seed = [0x5a; 32];
            seed[0] = i as u8;
            seed[1] = (i >> 8) as u8;
            SigningKey::from_bytes(&seed)
        })
        .collect()
}

/// The network every test signs in.
pub const NET: NetworkId = NetworkId([0x4e; 32]);
/// Another network, whose signatures `NET` must refuse.
pub const OTHER_NET: NetworkId = NetworkId([0x0f; 32]);

pub const TIMEOUTS: Timeouts = Timeouts {
    propose: Duration::from_millis(1000),
    prevote: Duration::from_millis(500),
    precommit: Duration::from_millis(500),
    delta: Duration::from_millis(100),
};

pub fn params(keys: &[SigningKey], quorum: usize) -> Params {
    Params { unl: keys.iter().map(SigningKey::verifying_key).collect(), quorum, timeouts: TIMEOUTS, network: NET }
}

/// One machine under test plus everyone's keys, at height `H`.
pub struct Harness {
    pub node: Consensus<TestValue>,
    pub keys: Vec<SigningKey>,
    pub me: ValidatorIndex,
}

/// The height every harness test runs at (non-zero, so height arithmetic is exercised).
pub const H: Height = 1;

impl Harness {
    /// n = 4 with q = 3: then n - q + 1 = 2 differs from 1 and from q, so each threshold is
    /// tested for what it is. Node 0 is not the proposer of (H, 0).
    pub fn new() -> Self {
        Self::with(4, 3, 0)
    }

    pub fn with(n: usize, quorum: usize, me: ValidatorIndex) -> Self {
        let keys = keys(n);
        let node = Consensus::new(params(&keys, quorum), Some(me), keys[me].clone()).expect("valid params");
        Harness { node, keys, me }
    }

    pub fn input(&mut self, input: Input<TestValue>) -> Vec<Effect<TestValue>> {
        self.node.handle(input)
    }

    pub fn start(&mut self, round: Round) -> Vec<Effect<TestValue>> {
        self.input(Input::StartHeight { height: H, round })
    }

    /// Resumes at `round`, having signed nothing there, holding `lock` (also the valid value).
    pub fn resume_locked(&mut self, round: Round, lock: Option<(Round, TestValue)>) -> Vec<Effect<TestValue>> {
        let held = lock.map(|(round, value)| RoundValue { round, value });
        self.input(Input::Resume(RecoveryState {
            height: H,
            round,
            locked: held.clone(),
            valid: held,
            signed: Vec::new(),
            proof_of_lock: Vec::new(),
        }))
    }

    pub fn vote_msg(&self, kind: VoteKind, from: ValidatorIndex, round: Round, value: Option<&TestValue>) -> Vote {
        Vote::sign(&NET, kind, H, round, value.map(Value::id), from, &self.keys[from])
    }

    pub fn vote(
        &mut self,
        kind: VoteKind,
        from: &[ValidatorIndex],
        round: Round,
        value: Option<&TestValue>,
    ) -> Vec<Effect<TestValue>> {
        let mut out = Vec::new();
        for &v in from {
            let vote = self.vote_msg(kind, v, round, value);
            out.extend(self.input(Input::Vote(vote)));
        }
        out
    }

    pub fn prevotes(
        &mut self,
        from: &[ValidatorIndex],
        round: Round,
        value: Option<&TestValue>,
    ) -> Vec<Effect<TestValue>> {
        self.vote(VoteKind::Prevote, from, round, value)
    }

    pub fn precommits(
        &mut self,
        from: &[ValidatorIndex],
        round: Round,
        value: Option<&TestValue>,
    ) -> Vec<Effect<TestValue>> {
        self.vote(VoteKind::Precommit, from, round, value)
    }

    /// A proposal signed by the rightful proposer of (H, round).
    pub fn proposal_msg(&self, round: Round, value: TestValue, valid_round: Option<Round>) -> Proposal<TestValue> {
        let proposer = self.node.proposer(H, round);
        Proposal::sign(&NET, H, round, value, valid_round, proposer, &self.keys[proposer])
    }

    pub fn propose(
        &mut self,
        round: Round,
        value: TestValue,
        valid_round: Option<Round>,
        valid: bool,
    ) -> Vec<Effect<TestValue>> {
        let proposal = self.proposal_msg(round, value, valid_round);
        self.input(Input::Proposal { proposal, valid })
    }

    pub fn timeout(&mut self, round: Round, step: TimeoutStep) -> Vec<Effect<TestValue>> {
        self.input(Input::Timeout(Timeout { height: H, round, step }))
    }
}

/// The votes of `kind` among the effects, as (round, value id).
pub fn signed(effects: &[Effect<TestValue>], kind: VoteKind) -> Vec<(Round, Option<Hash>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::BroadcastVote(v) if v.kind == kind => Some((v.round, v.value)),
            _ => None,
        })
        .collect()
}

/// The timeouts scheduled among the effects.
pub fn timeouts(effects: &[Effect<TestValue>]) -> Vec<(Timeout, Duration)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::ScheduleTimeout { timeout, after } => Some((*timeout, *after)),
            _ => None,
        })
        .collect()
}

pub fn id(value: &TestValue) -> Option<Hash> {
    Some(value.id())
}
