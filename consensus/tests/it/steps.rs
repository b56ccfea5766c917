//! Single rules of Algorithm 1, one machine driven by hand (n = 4, q = 3, node 0, height 1).

use std::time::Duration;

use hp_consensus::{
    Consensus, Effect, Evidence, Input, Message, ParamsError, RecoveryState, RoundValue, Step, Timeout, TimeoutStep,
    Value, VoteKind, quorum_for,
};

use crate::common::{A, B, H, Harness, NET, OTHER_NET, TestValue, id, keys, params, signed, timeouts};

const PREVOTE: VoteKind = VoteKind::Prevote;
const PRECOMMIT: VoteKind = VoteKind::Precommit;

// ---- parameters -------------------------------------------------------------------------

#[test]
fn quorum_is_the_threshold_share_rounded_up_but_never_below_a_strict_majority() {
    let table: &[(usize, f64, usize)] = &[
        (1, 0.8, 1),
        (3, 0.8, 3),
        (4, 0.8, 4),
        (5, 0.8, 4),
        (7, 0.8, 6),
        (10, 0.7, 7), // 0.7 * 10 is 7.000000000000001 in f64
        (4, 0.67, 3),
        (4, 0.5, 3), // 2 of 4 is no majority
        (6, 0.1, 4),
        (100, 1.0, 100),
    ];
    for &(n, threshold, want) in table {
        assert_eq!(quorum_for(n, threshold), Ok(want), "n={n} threshold={threshold}");
    }
}

#[test]
fn quorum_rejects_impossible_thresholds_and_an_empty_unl() {
    assert_eq!(quorum_for(0, 0.8), Err(ParamsError::EmptyUnl));
    for bad in [0.0, -0.5, 1.01, f64::NAN, f64::INFINITY] {
        assert!(matches!(quorum_for(4, bad), Err(ParamsError::InvalidThreshold { .. })), "threshold {bad}");
    }
}

#[test]
fn new_rejects_parameters_that_could_fork_or_never_sign() {
    let k = keys(4);
    let cases: Vec<(&str, hp_consensus::Params, Option<usize>, ParamsError)> = vec![
        ("quorum of half", params(&k, 2), Some(0), ParamsError::QuorumTooSmall { quorum: 2, n: 4 }),
        ("quorum above n", params(&k, 5), Some(0), ParamsError::QuorumAboveUnl { quorum: 5, n: 4 }),
        ("empty UNL", params(&[], 1), None, ParamsError::EmptyUnl),
        (
            "duplicate key",
            params(&[k[0].clone(), k[1].clone(), k[0].clone()], 2),
            None,
            ParamsError::DuplicateKey { first: 0, second: 2 },
        ),
        ("index out of range", params(&k, 3), Some(4), ParamsError::ValidatorOutOfRange { me: 4, n: 4 }),
        ("key of another validator", params(&k, 3), Some(1), ParamsError::KeyMismatch { me: 1 }),
    ];
    for (name, p, me, want) in cases {
        let got = Consensus::<TestValue>::new(p, me, k[0].clone()).err();
        assert_eq!(got, Some(want), "{name}");
    }
}

// ---- StartRound (lines 11-21) -------------------------------------------------------------

#[test]
fn proposer_is_height_plus_round_modulo_n() {
    let h = Harness::new();
    for (height, round, want) in [(0, 0, 0), (1, 0, 1), (1, 3, 0), (6, 1, 3), (u64::MAX, 1, 0)] {
        assert_eq!(h.node.proposer(height, round), want, "h={height} r={round}");
    }
}

#[test]
fn nothing_happens_before_the_first_start_height() {
    let mut h = Harness::new();
    assert_eq!(h.node.step(), Step::Unstarted);
    assert!(h.prevotes(&[1, 2, 3], 0, Some(&A)).is_empty());
    assert!(h.propose(0, A, None, true).is_empty());
    assert!(h.timeout(0, TimeoutStep::Propose).is_empty());
}

#[test]
fn non_proposer_arms_the_propose_timeout() {
    let mut h = Harness::new();
    let out = h.start(0);
    assert_eq!(h.node.step(), Step::Propose);
    let t = timeouts(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].0.step, TimeoutStep::Propose);
    assert!(!out.iter().any(|e| matches!(e, Effect::GetValue { .. })));
}

#[test]
fn proposer_without_a_valid_value_asks_the_host_and_proposes_its_answer() {
    let mut h = Harness::new();
    // Node 0 proposes (H, 3).
    let out = h.start(3);
    assert!(out.contains(&Effect::GetValue { height: H, round: 3 }));
    let out = h.input(Input::ProposeValue { height: H, round: 3, value: A.clone() });
    let proposal = out.iter().find_map(|e| match e {
        Effect::BroadcastProposal(p) => Some(p.clone()),
        _ => None,
    });
    let proposal = proposal.expect("a proposal");
    assert_eq!((proposal.round, proposal.valid_round, &proposal.value), (3, None, &A));
    assert!(proposal.verify(&NET, &h.node.params().unl).is_ok());
    assert!(proposal.verify(&OTHER_NET, &h.node.params().unl).is_err(), "signed in the params' network");
    // It handles its own proposal at once (line 22): prevote for it.
    assert_eq!(signed(&out, PREVOTE), vec![(3, id(&A))]);
}

#[test]
fn a_late_answer_from_the_host_is_ignored() {
    let mut h = Harness::new();
    h.start(3);
    h.timeout(3, TimeoutStep::Propose);
    let out = h.input(Input::ProposeValue { height: H, round: 3, value: A });
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn proposer_re_proposes_its_valid_value_with_its_valid_round() {
    let mut h = Harness::new();
    // Resume into round 3 (node 0 proposes) holding valid value A from round 1.
    let out = h.resume_locked(3, Some((1, A)));
    assert!(!out.iter().any(|e| matches!(e, Effect::GetValue { .. })));
    let proposal = out
        .iter()
        .find_map(|e| match e {
            Effect::BroadcastProposal(p) => Some(p.clone()),
            _ => None,
        })
        .expect("a proposal");
    assert_eq!((proposal.round, proposal.valid_round, &proposal.value), (3, Some(1), &A));
}

// ---- prevote (lines 22-33 and 57-60) ------------------------------------------------------

/// One row: a lock held at round 2 (the node resumes there), an optional polka in an earlier
/// round, the proposal, and the prevote expected (`None` = no prevote yet).
struct PrevoteCase {
    name: &'static str,
    lock: Option<(u32, TestValue)>,
    polka: Option<(u32, TestValue)>,
    proposal: (TestValue, Option<u32>),
    valid: bool,
    expect: Option<Option<TestValue>>,
}

#[test]
fn prevote_on_a_proposal_follows_lines_22_to_33() {
    let nil = Some(None);
    let table = vec![
        PrevoteCase {
            name: "an unlocked node prevotes a valid fresh proposal",
            lock: None,
            polka: None,
            proposal: (A, None),
            valid: true,
            expect: Some(Some(A)),
        },
        PrevoteCase {
            name: "an unlocked node prevotes nil for an invalid proposal",
            lock: None,
            polka: None,
            proposal: (A, None),
            valid: false,
            expect: nil.clone(),
        },
        PrevoteCase {
            name: "a locked node prevotes its locked value proposed afresh",
            lock: Some((1, A)),
            polka: None,
            proposal: (A, None),
            valid: true,
            expect: Some(Some(A)),
        },
        PrevoteCase {
            name: "a locked node prevotes nil for a different value",
            lock: Some((1, A)),
            polka: None,
            proposal: (B, None),
            valid: true,
            expect: nil.clone(),
        },
        PrevoteCase {
            name: "a locked node prevotes a different value with a polka at or after its lock round",
            lock: Some((0, A)),
            polka: Some((1, B)),
            proposal: (B, Some(1)),
            valid: true,
            expect: Some(Some(B)),
        },
        PrevoteCase {
            name: "a locked node prevotes nil for a different value whose polka predates its lock",
            lock: Some((1, A)),
            polka: Some((0, B)),
            proposal: (B, Some(0)),
            valid: true,
            expect: nil.clone(),
        },
        PrevoteCase {
            name: "a locked node prevotes its locked value re-proposed from an earlier polka",
            lock: Some((1, A)),
            polka: Some((0, A)),
            proposal: (A, Some(0)),
            valid: true,
            expect: Some(Some(A)),
        },
        PrevoteCase {
            name: "an invalid re-proposal with its polka gets a nil prevote",
            lock: None,
            polka: Some((1, B)),
            proposal: (B, Some(1)),
            valid: false,
            expect: nil.clone(),
        },
        PrevoteCase {
            name: "a re-proposal waits for the polka of its valid round",
            lock: None,
            polka: None,
            proposal: (B, Some(1)),
            valid: true,
            expect: None,
        },
        PrevoteCase {
            name: "a re-proposal whose valid round is not below the current round is ignored",
            lock: None,
            polka: Some((2, B)),
            proposal: (B, Some(2)),
            valid: true,
            expect: None,
        },
    ];
    for case in table {
        let mut h = Harness::new();
        h.resume_locked(2, case.lock.clone());
        let mut out = Vec::new();
        if let Some((round, value)) = &case.polka {
            out.extend(h.prevotes(&[1, 2, 3], *round, Some(value)));
        }
        let (value, vr) = case.proposal.clone();
        out.extend(h.propose(2, value, vr, case.valid));
        let prevotes = signed(&out, PREVOTE);
        match &case.expect {
            None => assert!(prevotes.is_empty(), "{}: {prevotes:?}", case.name),
            Some(want) => {
                assert_eq!(prevotes, vec![(2, want.as_ref().map(Value::id))], "{}", case.name);
                assert_eq!(h.node.step(), Step::Prevote, "{}", case.name);
            }
        }
    }
}

#[test]
fn a_polka_arriving_after_the_re_proposal_triggers_the_prevote() {
    let mut h = Harness::new();
    h.resume_locked(2, None);
    assert!(signed(&h.propose(2, B, Some(1), true), PREVOTE).is_empty());
    let out = h.prevotes(&[1, 2, 3], 1, Some(&B));
    assert_eq!(signed(&out, PREVOTE), vec![(2, id(&B))]);
}

#[test]
fn proposal_from_a_validator_that_is_not_the_proposer_is_ignored() {
    let mut h = Harness::new();
    h.start(0);
    let wrong = 2; // proposer of (1, 0) is 1
    let proposal = hp_consensus::Proposal::sign(&NET, H, 0, A, None, wrong, &h.keys[wrong]);
    let out = h.input(Input::Proposal { proposal, valid: true });
    assert!(out.is_empty());
    assert_eq!(h.node.step(), Step::Propose);
}

#[test]
fn propose_timeout_prevotes_nil() {
    let mut h = Harness::new();
    h.start(0);
    let out = h.timeout(0, TimeoutStep::Propose);
    assert_eq!(signed(&out, PREVOTE), vec![(0, None)]);
    assert_eq!(h.node.step(), Step::Prevote);
    // A proposal arriving afterwards changes nothing: one prevote per round.
    let out = h.propose(0, A, None, true);
    assert!(signed(&out, PREVOTE).is_empty());
}

// ---- precommit (lines 34-46 and 61-64) ----------------------------------------------------

#[test]
fn q_prevotes_of_any_kind_arm_the_prevote_timeout_once() {
    let mut h = Harness::new();
    h.start(0);
    h.timeout(0, TimeoutStep::Propose); // own nil prevote: 1
    let out = h.prevotes(&[1], 0, Some(&A)); // 2: below q
    assert!(timeouts(&out).is_empty());
    let out = h.prevotes(&[2], 0, Some(&B)); // 3 = q, split: no polka
    let t = timeouts(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].0, Timeout { height: H, round: 0, step: TimeoutStep::Prevote });
    let out = h.prevotes(&[3], 0, None);
    assert!(timeouts(&out).is_empty(), "armed only the first time");
}

#[test]
fn prevote_timeout_precommits_nil() {
    let mut h = Harness::new();
    h.start(0);
    h.timeout(0, TimeoutStep::Propose);
    h.prevotes(&[1], 0, Some(&A));
    h.prevotes(&[2], 0, Some(&B));
    let out = h.timeout(0, TimeoutStep::Prevote);
    assert_eq!(signed(&out, PRECOMMIT), vec![(0, None)]);
    assert_eq!(h.node.step(), Step::Precommit);
}

#[test]
fn a_polka_for_a_valid_proposal_locks_and_precommits_it() {
    let mut h = Harness::new();
    h.start(0);
    h.propose(0, A, None, true);
    let out = h.prevotes(&[1, 2], 0, Some(&A));
    assert_eq!(signed(&out, PRECOMMIT), vec![(0, id(&A))]);
    assert_eq!(h.node.locked_round(), Some(0));
    assert_eq!(h.node.valid_round(), Some(0));
    assert_eq!(h.node.step(), Step::Precommit);
    // The Persist effect carrying the lock comes before the precommit leaves.
    let persist = out.iter().position(|e| {
        matches!(e, Effect::Persist(RecoveryState { locked: Some(RoundValue { round: 0, value }), .. }) if *value == A)
    });
    let precommit = out.iter().position(|e| matches!(e, Effect::BroadcastVote(v) if v.kind == PRECOMMIT));
    assert!(persist.is_some() && persist < precommit, "{out:?}");
}

#[test]
fn a_polka_for_an_invalid_proposal_neither_locks_nor_precommits() {
    let mut h = Harness::new();
    h.start(0);
    h.propose(0, A, None, false);
    let out = h.prevotes(&[1, 2, 3], 0, Some(&A));
    assert!(signed(&out, PRECOMMIT).is_empty());
    assert_eq!(h.node.locked_round(), None);
}

#[test]
fn a_polka_seen_after_precommitting_nil_sets_the_valid_value_but_not_the_lock() {
    let mut h = Harness::new();
    h.start(0);
    h.timeout(0, TimeoutStep::Propose); // own nil prevote
    h.propose(0, A, None, true); // arrives late
    h.prevotes(&[1, 2], 0, Some(&A)); // q prevotes of any kind
    let out = h.timeout(0, TimeoutStep::Prevote);
    assert_eq!(signed(&out, PRECOMMIT), vec![(0, None)]);
    let out = h.prevotes(&[3], 0, Some(&A)); // the polka completes (1, 2, 3)
    assert!(signed(&out, PRECOMMIT).is_empty(), "one precommit per round");
    assert_eq!((h.node.locked_round(), h.node.valid_round()), (None, Some(0)));
    // As proposer of round 3 it re-proposes A with valid round 0 (lines 15-16).
    let out = h.precommits(&[1, 2], 3, None);
    assert!(out.iter().any(|e| matches!(e, Effect::BroadcastProposal(p)
        if p.round == 3 && p.value == A && p.valid_round == Some(0))));
}

#[test]
fn q_nil_prevotes_precommit_nil() {
    let mut h = Harness::new();
    h.start(0);
    h.propose(0, A, None, false); // own nil prevote
    let out = h.prevotes(&[1, 2], 0, None);
    assert_eq!(signed(&out, PRECOMMIT), vec![(0, None)]);
    assert_eq!(h.node.locked_round(), None);
}

// ---- rounds (lines 47-48, 55, 65-67) ------------------------------------------------------

#[test]
fn q_precommits_of_any_kind_arm_the_precommit_timeout_and_it_starts_the_next_round() {
    let mut h = Harness::new();
    h.start(0);
    let out = h.precommits(&[1, 2], 0, Some(&A));
    assert!(timeouts(&out).is_empty());
    let out = h.precommits(&[3], 0, None);
    assert_eq!(
        timeouts(&out).iter().map(|t| t.0).collect::<Vec<_>>(),
        vec![Timeout { height: H, round: 0, step: TimeoutStep::Precommit }]
    );
    assert_eq!(h.node.step(), Step::Propose, "line 47 has no step condition");
    let out = h.timeout(0, TimeoutStep::Precommit);
    assert_eq!(h.node.round(), 1);
    assert_eq!(h.node.step(), Step::Propose);
    assert_eq!(timeouts(&out)[0].0.round, 1);
}

#[test]
fn q_nil_precommits_start_the_next_round_without_waiting_for_the_timeout() {
    let mut h = Harness::new(); // q = 3
    h.start(0);
    h.propose(0, A, None, false); // own nil prevote
    h.prevotes(&[1, 2], 0, None); // nil polka: own nil precommit
    assert_eq!(h.node.round(), 0);
    let out = h.precommits(&[1], 0, None);
    assert_eq!(h.node.round(), 0, "two nil precommits: a value could still get three");
    assert!(timeouts(&out).is_empty());
    let out = h.precommits(&[2], 0, None);
    assert_eq!(h.node.round(), 1, "three nil precommits: nothing can be decided in round 0");
    assert_eq!(h.node.step(), Step::Propose);
    assert_eq!(
        timeouts(&out).iter().map(|t| t.0).collect::<Vec<_>>(),
        vec![Timeout { height: H, round: 1, step: TimeoutStep::Propose }],
        "no precommit timeout is armed for round 0"
    );
    // The late timeout of round 0 changes nothing.
    h.timeout(0, TimeoutStep::Precommit);
    assert_eq!(h.node.round(), 1);
}

#[test]
fn n_minus_q_plus_one_senders_of_a_higher_round_make_the_node_skip_to_it() {
    let mut h = Harness::new(); // n - q + 1 = 2
    h.start(0);
    h.prevotes(&[1], 5, Some(&A));
    assert_eq!(h.node.round(), 0, "one sender could be faulty");
    h.precommits(&[1], 5, None);
    assert_eq!(h.node.round(), 0, "still one sender");
    h.precommits(&[2], 7, None);
    h.prevotes(&[3], 7, None);
    assert_eq!(h.node.round(), 7, "skips to the highest qualifying round");
    // A proposal counts as a message of its round too (proposer of (1, 9) is 2).
    h.prevotes(&[3], 9, None);
    h.propose(9, A, None, true);
    assert_eq!(h.node.round(), 9);
}

#[test]
fn timeouts_grow_with_the_round() {
    let mut h = Harness::new();
    let first = timeouts(&h.start(0))[0].1;
    let out = h.precommits(&[1, 2], 4, None);
    let later = timeouts(&out)
        .into_iter()
        .find(|(t, _)| t.round == 4 && t.step == TimeoutStep::Propose)
        .expect("propose timeout of round 4");
    assert_eq!(first, Duration::from_millis(1000));
    assert_eq!(later.1, Duration::from_millis(1400));
}

#[test]
fn stale_timeouts_are_ignored() {
    let mut h = Harness::new();
    h.start(0);
    h.precommits(&[1, 2], 2, None); // skip to round 2
    assert_eq!(h.node.round(), 2);
    for t in [
        Timeout { height: H, round: 0, step: TimeoutStep::Propose },
        Timeout { height: H, round: 1, step: TimeoutStep::Precommit },
        Timeout { height: H + 1, round: 2, step: TimeoutStep::Propose },
        Timeout { height: H - 1, round: 2, step: TimeoutStep::Precommit },
        Timeout { height: H, round: 2, step: TimeoutStep::Prevote }, // wrong step
    ] {
        assert!(h.input(Input::Timeout(t)).is_empty(), "{t:?}");
        assert_eq!((h.node.round(), h.node.step()), (2, Step::Propose));
    }
}

// ---- decision (line 49) -------------------------------------------------------------------

#[test]
fn q_precommits_for_a_received_proposal_decide_it_with_a_verifiable_certificate() {
    let mut h = Harness::new();
    h.start(0);
    h.propose(0, A, None, true);
    let out = h.precommits(&[1, 2, 3], 0, Some(&A));
    let (value, cert) = out
        .iter()
        .find_map(|e| match e {
            Effect::Decide { value, certificate } => Some((value.clone(), certificate.clone())),
            _ => None,
        })
        .expect("decided");
    assert_eq!(value, A);
    assert_eq!((cert.height, cert.round, cert.value_id), (H, 0, A.id()));
    assert!(cert.verify(&NET, &h.node.params().unl, 3).is_ok());
    assert_eq!(h.node.step(), Step::Decided);
    // Nothing more for this height.
    assert!(h.precommits(&[0], 0, Some(&A)).is_empty());
    assert!(h.timeout(0, TimeoutStep::Propose).is_empty());
}

#[test]
fn q_precommits_for_a_value_never_received_ask_the_host_to_fetch_it() {
    let mut h = Harness::new();
    h.start(0);
    let out = h.precommits(&[1, 2, 3], 0, Some(&B));
    let cert = out
        .iter()
        .find_map(|e| match e {
            Effect::DecideWithoutValue { certificate } => Some(certificate.clone()),
            _ => None,
        })
        .expect("decided without value");
    assert_eq!(cert.value_id, B.id());
    assert!(cert.verify(&NET, &h.node.params().unl, 3).is_ok());
}

#[test]
fn a_decision_in_another_round_than_the_current_one_counts() {
    let mut h = Harness::new();
    h.start(0);
    h.propose(0, A, None, true);
    h.timeout(0, TimeoutStep::Propose);
    h.precommits(&[1, 2], 3, None); // moves to round 3
    assert_eq!(h.node.round(), 3);
    let out = h.precommits(&[1, 2, 3], 0, Some(&A));
    assert!(out.iter().any(|e| matches!(e, Effect::Decide { value, .. } if *value == A)));
}

#[test]
fn a_decision_on_a_proposal_this_node_judged_invalid_still_decides() {
    // q precommits include a correct node that judged it valid; see the module doc.
    let mut h = Harness::new();
    h.start(0);
    h.propose(0, A, None, false);
    let out = h.precommits(&[1, 2, 3], 0, Some(&A));
    assert!(out.iter().any(|e| matches!(e, Effect::Decide { .. })));
}

#[test]
fn nil_precommits_never_decide() {
    let mut h = Harness::new();
    h.start(0);
    let out = h.precommits(&[1, 2, 3], 0, None);
    assert!(!out.iter().any(|e| matches!(e, Effect::Decide { .. } | Effect::DecideWithoutValue { .. })));
}

// ---- heights, buffering, bounds -----------------------------------------------------------

#[test]
fn messages_for_the_next_height_are_buffered_and_replayed_when_it_starts() {
    let mut h = Harness::new();
    h.start(0);
    let next = H + 1;
    // Votes and a proposal for H + 1 (proposer of (2, 0) is 2).
    let proposal = hp_consensus::Proposal::sign(&NET, next, 0, B, None, 2, &h.keys[2]);
    assert!(h.input(Input::Proposal { proposal: proposal.clone(), valid: false }).is_empty());
    for v in [1, 3] {
        let vote = hp_consensus::Vote::sign(&NET, PREVOTE, next, 0, id(&B), v, &h.keys[v]);
        assert!(h.input(Input::Vote(vote)).is_empty());
    }
    assert_eq!(h.node.buffered(), 3);
    assert_eq!(h.node.height(), H);
    // Decide H, then start H + 1: the proposal comes back for judging.
    h.propose(0, A, None, true);
    h.precommits(&[1, 2, 3], 0, Some(&A));
    let out = h.input(Input::StartHeight { height: next, round: 0 });
    assert!(out.contains(&Effect::ValidateProposal(proposal.clone())));
    // Judged valid now: the node prevotes B, and with the two buffered prevotes it has a polka.
    let out = h.input(Input::Proposal { proposal, valid: true });
    let prevotes: Vec<_> = signed(&out, PREVOTE);
    assert_eq!(prevotes, vec![(0, id(&B))]);
    assert_eq!(signed(&out, PRECOMMIT), vec![(0, id(&B))]);
}

#[test]
fn messages_for_past_or_further_heights_and_unknown_validators_are_ignored() {
    let mut h = Harness::new();
    h.start(0);
    for (height, validator) in [(H - 1, 1), (H + 2, 1), (H, 4), (H, usize::MAX)] {
        let key = &h.keys[validator.min(3)];
        let vote = hp_consensus::Vote::sign(&NET, PREVOTE, height, 0, id(&A), validator, key);
        assert!(h.input(Input::Vote(vote)).is_empty());
    }
    assert_eq!(h.node.buffered(), 0);
    h.prevotes(&[1, 2], 0, None);
    h.timeout(0, TimeoutStep::Propose);
    // Only own + 1 + 2 counted: q nil prevotes, so precommit nil happened; the ignored ones
    // did not add a fourth prevote for A.
    assert_eq!(h.node.step(), Step::Precommit);
}

#[test]
fn the_next_height_buffer_is_bounded_per_validator() {
    let mut h = Harness::new();
    h.start(0);
    for round in 0..200 {
        for kind in [PREVOTE, PRECOMMIT] {
            let vote = hp_consensus::Vote::sign(&NET, kind, H + 1, round, None, 1, &h.keys[1]);
            h.input(Input::Vote(vote));
        }
    }
    // Round 0 plus the 8 highest rounds, two kinds each.
    assert_eq!(h.node.buffered(), 2 * (1 + 8));
}

#[test]
fn a_far_ahead_flood_from_one_validator_cannot_crowd_out_others() {
    let mut h = Harness::new();
    h.start(0);
    for round in 1..1000 {
        h.prevotes(&[1], round, None);
    }
    // Validators 2 and 3 in round 10 are still seen (line 55 with n - q + 1 = 2).
    h.prevotes(&[2, 3], 10, None);
    assert_eq!(h.node.round(), 10);
}

#[test]
fn start_height_never_restarts_a_height_in_the_same_machine() {
    let mut h = Harness::new();
    h.start(0);
    h.timeout(0, TimeoutStep::Propose);
    assert!(h.start(0).is_empty());
    assert!(h.input(Input::StartHeight { height: H - 1, round: 0 }).is_empty());
    assert_eq!(h.node.step(), Step::Prevote);
    // A higher height is fine (catch-up may skip heights).
    let out = h.input(Input::StartHeight { height: H + 5, round: 0 });
    assert!(!out.is_empty());
    assert_eq!((h.node.height(), h.node.round()), (H + 5, 0));
}

// ---- equivocation, duplicates, own signatures ---------------------------------------------

#[test]
fn duplicate_messages_are_idempotent() {
    let mut h = Harness::new();
    h.start(0);
    h.propose(0, A, None, true);
    let vote = h.vote_msg(PREVOTE, 1, 0, Some(&A));
    h.input(Input::Vote(vote.clone()));
    let out = h.input(Input::Vote(vote.clone()));
    assert!(signed(&out, PRECOMMIT).is_empty(), "own + 1 = 2 < q");
    assert!(h.propose(0, A, None, true).is_empty());
    let out = h.input(Input::Vote(vote));
    assert!(out.is_empty());
}

#[test]
fn an_equivocating_validator_is_reported_once_and_counted_once_per_tally() {
    let mut h = Harness::new();
    h.start(0);
    h.timeout(0, TimeoutStep::Propose); // own nil
    h.prevotes(&[1], 0, None);
    let out = h.prevotes(&[1], 0, Some(&A));
    let evidence: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            Effect::Equivocation(ev) => Some(ev.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].validator(), 1);
    match &evidence[0] {
        Evidence::ConflictingVotes { first, second } => {
            assert_eq!((first.value, second.value), (None, id(&A)));
        }
        other => panic!("{other:?}"),
    }
    // Counted once among all prevotes: own + 1 = 2 < q, so no prevote timeout yet.
    assert!(timeouts(&out).is_empty());
    // A third value from it is neither new evidence nor a new count.
    let out = h.prevotes(&[1], 0, Some(&B));
    assert!(!out.iter().any(|e| matches!(e, Effect::Equivocation(_))));
    assert!(timeouts(&out).is_empty());
    // Its nil prevote still counts once towards nil: own + 1 + 2 = q nil prevotes.
    let out = h.prevotes(&[2], 0, None);
    assert_eq!(signed(&out, PRECOMMIT), vec![(0, None)]);
}

#[test]
fn a_prevote_past_the_per_validator_cap_is_kept_when_a_proposal_claims_its_polka() {
    let (small, large) = if A.id() < B.id() { (A, B) } else { (B, A) };
    let mut h = Harness::new();
    h.resume_locked(2, None);
    // Validator 1 signs three values in round 1; the largest is past the cap of two.
    h.prevotes(&[1], 1, None);
    h.prevotes(&[1], 1, Some(&small));
    h.prevotes(&[1], 1, Some(&large));
    h.prevotes(&[2, 3], 1, Some(&large));
    // A re-proposal claims the polka for `large` in round 1: 2 of 3 prevotes known.
    let out = h.propose(2, large.clone(), Some(1), true);
    assert!(signed(&out, PREVOTE).is_empty());
    // Relayed again (as proof of lock), validator 1's prevote is now kept.
    let out = h.prevotes(&[1], 1, Some(&large));
    assert_eq!(signed(&out, PREVOTE), vec![(2, id(&large))]);
}

#[test]
fn an_equivocating_proposer_is_reported() {
    let mut h = Harness::with(5, 3, 0); // proposer of (1, 0) is 1
    h.start(0);
    h.propose(0, A, None, true);
    let out = h.propose(0, B, None, true);
    assert!(out.iter().any(|e| matches!(
        e,
        Effect::Equivocation(Evidence::ConflictingProposals { first, second })
            if first.value == A && second.value == B
    )));
    // Its second value is still known if the others decide it.
    let out = h.precommits(&[1, 2, 3], 0, Some(&B));
    assert!(out.iter().any(|e| matches!(e, Effect::Decide { value, .. } if *value == B)));
}

#[test]
fn a_node_signs_at_most_one_prevote_and_one_precommit_per_round_whatever_it_is_fed() {
    let mut h = Harness::new();
    let mut out = h.start(0);
    out.extend(h.propose(0, A, None, true));
    out.extend(h.timeout(0, TimeoutStep::Propose));
    out.extend(h.prevotes(&[1, 2], 0, Some(&A)));
    out.extend(h.prevotes(&[3], 0, None));
    out.extend(h.timeout(0, TimeoutStep::Prevote));
    out.extend(h.propose(0, B, None, true));
    out.extend(h.timeout(0, TimeoutStep::Propose));
    assert_eq!(signed(&out, PREVOTE).len(), 1);
    assert_eq!(signed(&out, PRECOMMIT).len(), 1);
}

// ---- restarts and observers ---------------------------------------------------------------

#[test]
fn every_signature_is_persisted_before_it_is_broadcast() {
    let mut h = Harness::new();
    let mut out = h.start(0);
    out.extend(h.timeout(0, TimeoutStep::Propose));
    out.extend(h.prevotes(&[1, 2], 0, None));
    out.extend(h.precommits(&[1, 2], 0, None));
    out.extend(h.timeout(0, TimeoutStep::Precommit));
    out.extend(h.timeout(1, TimeoutStep::Propose));
    let mut persisted: Vec<hp_consensus::Vote> = Vec::new();
    let mut broadcasts = 0;
    for e in &out {
        match e {
            Effect::Persist(state) => {
                persisted = state
                    .signed
                    .iter()
                    .filter_map(|m| match m {
                        Message::Vote(v) => Some(v.clone()),
                        Message::Proposal(_) => None,
                    })
                    .collect();
            }
            Effect::BroadcastVote(v) => {
                broadcasts += 1;
                assert!(persisted.contains(v), "{v} broadcast before being persisted");
            }
            _ => {}
        }
    }
    assert_eq!(broadcasts, 3);
}

#[test]
fn a_resumed_node_keeps_its_lock_and_its_votes_and_finishes_its_round() {
    let mut h = Harness::new();
    h.start(0);
    h.propose(0, A, None, true);
    let out = h.prevotes(&[1, 2], 0, Some(&A));
    let state = out
        .iter()
        .rev()
        .find_map(|e| match e {
            Effect::Persist(s) => Some(s.clone()),
            _ => None,
        })
        .expect("persisted");
    // Crash; a new machine resumes from the persisted state: same round, lock kept.
    let mut h2 = Harness::new();
    h2.input(Input::Resume(state));
    assert_eq!((h2.node.height(), h2.node.round(), h2.node.step()), (H, 0, Step::Precommit));
    assert_eq!(h2.node.locked_round(), Some(0));
    // It signs nothing new in round 0, and sends its persisted votes again.
    let out = h2.prevotes(&[1, 2, 3], 0, None);
    assert!(!out.iter().any(|e| matches!(e, Effect::BroadcastVote(_))), "{out:?}");
    let again = h2.node.rebroadcast();
    assert!(again.iter().any(|m| matches!(m, Message::Vote(v) if v.kind == PRECOMMIT && v.value == id(&A))));
    // The others' precommits complete round 0 (the node is not stranded in round 1)...
    h2.precommits(&[1, 2], 0, None);
    let out = h2.timeout(0, TimeoutStep::Precommit);
    assert_eq!(h2.node.round(), 1);
    // ...and in round 1 a fresh proposal of B gets a nil prevote: the lock on A survived.
    let out2 = h2.propose(1, B, None, true);
    assert_eq!(signed(&out2, PREVOTE), vec![(1, None)]);
    let _ = out;
    // Restarting with only a higher round (no lock) would prevote B: with enough such restarts
    // B could gather q prevotes and precommits while A was decided in round 0 elsewhere.
    let mut amnesiac = Harness::new();
    amnesiac.start(1);
    let out3 = amnesiac.propose(1, B, None, true);
    assert_eq!(signed(&out3, PREVOTE), vec![(1, id(&B))]);
}

#[test]
fn an_observer_never_signs_but_decides() {
    let k = keys(4);
    let node = Consensus::<TestValue>::new(params(&k, 3), None, k[0].clone());
    let mut h = Harness { node: node.expect("params"), keys: k, me: 0 };
    let mut out = h.start(0);
    out.extend(h.propose(0, A, None, true));
    out.extend(h.prevotes(&[1, 2, 3], 0, Some(&A)));
    out.extend(h.precommits(&[1, 2, 3], 0, Some(&A)));
    assert!(
        !out.iter().any(|e| matches!(e, Effect::BroadcastVote(_) | Effect::BroadcastProposal(_) | Effect::Persist(_)))
    );
    assert!(out.iter().any(|e| matches!(e, Effect::Decide { .. })));
    assert_eq!(h.me, 0);
}

#[test]
fn rebroadcast_repeats_own_messages_of_the_current_round() {
    let mut h = Harness::new();
    h.start(3); // node 0 proposes round 3
    h.input(Input::ProposeValue { height: H, round: 3, value: A });
    let again = h.node.rebroadcast();
    assert!(matches!(again.as_slice(), [Message::Proposal(p), Message::Vote(v)]
        if p.value == A && v.kind == PREVOTE));
}

#[test]
fn rebroadcast_carries_the_proof_of_lock_of_a_re_proposal() {
    let mut h = Harness::new();
    h.start(0);
    h.propose(0, A, None, true);
    h.prevotes(&[1, 2], 0, Some(&A)); // polka in round 0: valid value A
    h.precommits(&[1, 2], 3, None); // skip to round 3, which node 0 proposes
    let again = h.node.rebroadcast();
    let proposal = again.iter().find_map(|m| match m {
        Message::Proposal(p) => Some(p),
        Message::Vote(_) => None,
    });
    assert!(matches!(proposal, Some(p) if p.round == 3 && p.valid_round == Some(0) && p.value == A));
    let mut proof: Vec<usize> = again
        .iter()
        .filter_map(|m| match m {
            Message::Vote(v) if v.round == 0 && v.kind == PREVOTE && v.value == id(&A) => Some(v.validator),
            _ => None,
        })
        .collect();
    proof.sort();
    assert_eq!(proof, vec![0, 1, 2], "the polka that justifies valid round 0");
}

#[test]
fn catch_up_hands_a_lagging_peer_everything_of_the_current_and_previous_round() {
    let mut h = Harness::new();
    h.start(0);
    h.prevotes(&[1], 0, None);
    h.precommits(&[1, 2, 3], 0, None);
    h.timeout(0, TimeoutStep::Precommit); // round 1
    h.prevotes(&[2], 1, None);
    let mut got: Vec<(u32, VoteKind, usize)> = h
        .node
        .catch_up()
        .iter()
        .filter_map(|m| match m {
            Message::Vote(v) => Some((v.round, v.kind, v.validator)),
            Message::Proposal(_) => None,
        })
        .collect();
    got.sort();
    assert_eq!(got, vec![(0, PREVOTE, 1), (0, PRECOMMIT, 1), (0, PRECOMMIT, 2), (0, PRECOMMIT, 3), (1, PREVOTE, 2)]);
}

#[test]
fn the_proposer_arms_the_propose_timeout_too() {
    let mut h = Harness::new();
    let out = h.start(3); // node 0 proposes round 3
    assert!(out.contains(&Effect::GetValue { height: H, round: 3 }));
    assert_eq!(timeouts(&out).iter().map(|t| t.0.step).collect::<Vec<_>>(), vec![TimeoutStep::Propose]);
    // The host never answers: the proposer prevotes nil like everyone else.
    let out = h.timeout(3, TimeoutStep::Propose);
    assert_eq!(signed(&out, PREVOTE), vec![(3, None)]);
}

#[test]
fn a_restarted_proposer_neither_asks_for_nor_signs_a_second_proposal_in_its_round() {
    let mut h = Harness::new();
    h.start(3);
    let out = h.input(Input::ProposeValue { height: H, round: 3, value: A });
    let state = out
        .iter()
        .rev()
        .find_map(|e| match e {
            Effect::Persist(s) => Some(s.clone()),
            _ => None,
        })
        .expect("persisted");
    let mut h2 = Harness::new();
    let out = h2.input(Input::Resume(state));
    assert!(!out.iter().any(|e| matches!(e, Effect::GetValue { .. } | Effect::BroadcastProposal(_))), "{out:?}");
    assert_eq!(h2.node.step(), Step::Prevote, "its own prevote was restored");
    assert!(matches!(h2.node.rebroadcast().first(), Some(Message::Proposal(p)) if p.value == A));
}

#[test]
fn a_resumed_node_can_still_prove_the_polka_of_its_valid_value() {
    let mut h = Harness::new();
    h.start(0);
    h.propose(0, A, None, true);
    let out = h.prevotes(&[1, 2], 0, Some(&A));
    let state = out
        .iter()
        .rev()
        .find_map(|e| match e {
            Effect::Persist(s) => Some(s.clone()),
            _ => None,
        })
        .expect("persisted");
    assert_eq!(state.proof_of_lock.len(), 3);
    let mut h2 = Harness::new();
    h2.input(Input::Resume(state));
    h2.precommits(&[1, 2], 3, None); // skip to round 3, which node 0 proposes
    let again = h2.node.rebroadcast();
    assert!(again.iter().any(|m| matches!(m, Message::Proposal(p) if p.valid_round == Some(0) && p.value == A)));
    let proof = again.iter().filter(|m| matches!(m, Message::Vote(v) if v.round == 0 && v.kind == PREVOTE)).count();
    assert_eq!(proof, 3, "{again:?}");
}
