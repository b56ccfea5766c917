//! The post-execution result agreement.

use hp_consensus::{CertError, ResultCollector, ResultEvent, ResultVote};

use crate::common::{NET, OTHER_NET, keys};

const N: usize = 5;
const Q: usize = 4;
const GOOD: ([u8; 32], [u8; 32]) = ([1; 32], [2; 32]);
const BAD: ([u8; 32], [u8; 32]) = ([1; 32], [3; 32]);

fn vote(height: u64, pair: ([u8; 32], [u8; 32]), validator: usize) -> ResultVote {
    ResultVote::sign(&NET, height, pair.0, pair.1, validator, &keys(N)[validator])
}

fn unl() -> Vec<ed25519_dalek::VerifyingKey> {
    keys(N).iter().map(|k| k.verifying_key()).collect()
}

#[test]
fn q_matching_results_are_certified_once() {
    let mut c = ResultCollector::new(N, Q, Some(0), 1).unwrap();
    for v in 0..3 {
        assert!(c.add(vote(1, GOOD, v)).is_empty());
    }
    let events = c.add(vote(1, GOOD, 3));
    let [ResultEvent::Certified(cert)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!((cert.height, cert.state_hash, cert.outputs_hash), (1, GOOD.0, GOOD.1));
    assert_eq!(cert.verify(&NET, &unl(), Q), Ok(()));
    assert_eq!(c.certificate(1), Some(cert));
    assert!(c.add(vote(1, GOOD, 4)).is_empty(), "reported once");
}

#[test]
fn a_split_that_no_result_can_overcome_is_reported_unreachable() {
    let mut c = ResultCollector::new(N, Q, None, 1).unwrap();
    c.add(vote(1, GOOD, 0));
    assert!(c.add(vote(1, BAD, 1)).is_empty(), "1 + 3 remaining could still reach 4");
    assert!(c.add(vote(1, BAD, 2)).is_empty(), "2 + 2 remaining could still reach 4");
    let events = c.add(vote(1, GOOD, 3));
    assert_eq!(events, vec![ResultEvent::Unreachable { height: 1, voters: 4, best: 2 }]);
    assert!(c.add(vote(1, GOOD, 4)).is_empty(), "reported once");
}

#[test]
fn own_result_differing_from_the_certified_one_is_reported() {
    let mut c = ResultCollector::new(N, Q, Some(4), 1).unwrap();
    c.add(vote(1, BAD, 4));
    for v in 0..3 {
        c.add(vote(1, GOOD, v));
    }
    let events = c.add(vote(1, GOOD, 3));
    assert!(matches!(&events[0], ResultEvent::Certified(_)), "{events:?}");
    assert!(
        matches!(&events[1], ResultEvent::Diverged { own, certificate }
            if own.validator == 4 && certificate.outputs_hash == GOOD.1),
        "{events:?}"
    );
    // Also when the own vote comes after the certificate.
    let mut c = ResultCollector::new(N, Q, Some(4), 1).unwrap();
    for v in 0..4 {
        c.add(vote(1, GOOD, v));
    }
    let events = c.add(vote(1, BAD, 4));
    assert!(matches!(events.as_slice(), [ResultEvent::Diverged { .. }]), "{events:?}");
}

#[test]
fn a_validator_signing_two_results_is_reported_and_counted_once() {
    let mut c = ResultCollector::new(N, Q, None, 1).unwrap();
    c.add(vote(1, GOOD, 0));
    let events = c.add(vote(1, BAD, 0));
    assert!(matches!(events.as_slice(), [ResultEvent::Equivocation { .. }]));
    for v in 1..3 {
        c.add(vote(1, GOOD, v));
    }
    // 0 (once), 1, 2 = 3 < q; 0's later duplicate changes nothing.
    assert!(c.add(vote(1, GOOD, 0)).is_empty());
    assert!(matches!(c.add(vote(1, GOOD, 3)).as_slice(), [ResultEvent::Certified(_)]));
}

#[test]
fn result_votes_outside_the_window_or_from_unknown_validators_are_ignored() {
    let mut c = ResultCollector::new(N, Q, None, 10).unwrap();
    let k = keys(N + 1);
    let stranger = ResultVote::sign(&NET, 10, GOOD.0, GOOD.1, N, &k[N]);
    assert!(c.add(stranger).is_empty());
    for v in 0..Q {
        assert!(c.add(vote(9, GOOD, v)).is_empty(), "below the floor");
        assert!(c.add(vote(10 + 64, GOOD, v)).is_empty(), "beyond the window");
    }
    c.prune_below(12);
    for v in 0..Q {
        assert!(c.add(vote(11, GOOD, v)).is_empty(), "pruned");
    }
    assert_eq!(c.certificate(11), None);
}

#[test]
fn a_result_certificate_with_faults_is_rejected_precisely() {
    let mut c = ResultCollector::new(N, Q, None, 1).unwrap();
    let mut cert = None;
    for v in 0..Q {
        for e in c.add(vote(1, GOOD, v)) {
            if let ResultEvent::Certified(found) = e {
                cert = Some(found);
            }
        }
    }
    let cert = cert.unwrap();
    let mut few = cert.clone();
    few.signatures.pop();
    assert!(matches!(few.verify(&NET, &unl(), Q), Err(CertError::TooFewSignatures { have: 3, .. })));
    let mut dup = cert.clone();
    dup.signatures[1] = dup.signatures[0];
    assert!(matches!(dup.verify(&NET, &unl(), Q), Err(CertError::DuplicateSigner { validator: 0, .. })));
    let mut other = cert.clone();
    other.outputs_hash = BAD.1;
    assert!(matches!(other.verify(&NET, &unl(), Q), Err(CertError::BadSignature { validator: 0, .. })));
}

#[test]
fn a_result_certificate_of_another_network_is_rejected() {
    let mut c = ResultCollector::new(N, Q, None, 1).unwrap();
    let cert = (0..Q)
        .flat_map(|v| c.add(vote(1, GOOD, v)))
        .find_map(|e| match e {
            ResultEvent::Certified(cert) => Some(cert),
            _ => None,
        })
        .unwrap();
    assert_eq!(cert.verify(&NET, &unl(), Q), Ok(()));
    let err = cert.verify(&OTHER_NET, &unl(), Q).unwrap_err();
    assert!(matches!(err, CertError::BadSignature { validator: 0, .. }), "{err}");
    assert!(err.to_string().contains(&format!("in network {OTHER_NET}")), "{err}");
}
