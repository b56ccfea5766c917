//! CommitCertificate::verify, as `hotpocket verify` uses it offline.

use ed25519_dalek::Signer;
use hp_consensus::sign::vote_bytes;
use hp_consensus::{CertError, CommitCertificate, Hash, Vote, VoteKind};

use crate::common::{NET, OTHER_NET, keys};

const N: usize = 5;
const Q: usize = 4;
const ID: Hash = [0x11; 32];

/// A certificate for (height 7, round 2, ID) signed by `signers`.
fn cert(signers: &[usize]) -> (CommitCertificate, Vec<ed25519_dalek::VerifyingKey>) {
    let k = keys(N);
    let signatures = signers
        .iter()
        .map(|&v| {
            let vote = Vote::sign(&NET, VoteKind::Precommit, 7, 2, Some(ID), v, &k[v % N]);
            (v, vote.signature)
        })
        .collect();
    let cert = CommitCertificate { height: 7, round: 2, value_id: ID, signatures };
    (cert, k.iter().map(|k| k.verifying_key()).collect())
}

#[test]
fn a_certificate_of_q_distinct_valid_precommits_verifies() {
    let (c, unl) = cert(&[0, 1, 2, 3]);
    assert_eq!(c.verify(&NET, &unl, Q), Ok(()));
    let (c, unl) = cert(&[4, 3, 2, 1, 0]);
    assert_eq!(c.verify(&NET, &unl, Q), Ok(()));
}

#[test]
fn a_certificate_with_too_few_signatures_is_rejected() {
    let (c, unl) = cert(&[0, 1, 2]);
    assert_eq!(c.verify(&NET, &unl, Q), Err(CertError::TooFewSignatures { height: 7, have: 3, need: Q }));
}

#[test]
fn a_certificate_with_a_duplicate_signer_is_rejected() {
    let (c, unl) = cert(&[0, 1, 2, 2]);
    assert_eq!(c.verify(&NET, &unl, Q), Err(CertError::DuplicateSigner { height: 7, validator: 2 }));
}

#[test]
fn a_certificate_with_a_signer_outside_the_unl_is_rejected() {
    let (c, unl) = cert(&[0, 1, 2, 5]);
    assert_eq!(c.verify(&NET, &unl, Q), Err(CertError::UnknownSigner { height: 7, validator: 5, unl_len: N }));
}

#[test]
fn a_certificate_with_a_wrong_signature_is_rejected() {
    let (mut c, unl) = cert(&[0, 1, 2, 3]);
    // Validator 3's slot carries validator 4's signature.
    c.signatures[3].1 = keys(N)[4].sign(&vote_bytes(&NET, VoteKind::Precommit, 7, 2, Some(&ID)));
    let err = c.verify(&NET, &unl, Q).unwrap_err();
    assert!(matches!(err, CertError::BadSignature { validator: 3, .. }), "{err}");
    assert!(err.to_string().contains("precommit at height 7 round 2"), "{err}");
}

#[test]
fn a_certificate_with_a_signature_for_another_height_round_value_or_kind_is_rejected() {
    let k = keys(N);
    let unl: Vec<_> = k.iter().map(|k| k.verifying_key()).collect();
    let others: [(&str, Vec<u8>); 5] = [
        ("other height", vote_bytes(&NET, VoteKind::Precommit, 8, 2, Some(&ID))),
        ("other round", vote_bytes(&NET, VoteKind::Precommit, 7, 3, Some(&ID))),
        ("other value", vote_bytes(&NET, VoteKind::Precommit, 7, 2, Some(&[0x22; 32]))),
        ("nil", vote_bytes(&NET, VoteKind::Precommit, 7, 2, None)),
        ("prevote", vote_bytes(&NET, VoteKind::Prevote, 7, 2, Some(&ID))),
    ];
    for (name, bytes) in others {
        let (mut c, _) = cert(&[0, 1, 2, 3]);
        c.signatures[1].1 = k[1].sign(&bytes);
        assert!(matches!(c.verify(&NET, &unl, Q), Err(CertError::BadSignature { validator: 1, .. })), "{name}");
    }
}

#[test]
fn a_certificate_of_another_network_is_rejected() {
    let (c, unl) = cert(&[0, 1, 2, 3]);
    let err = c.verify(&OTHER_NET, &unl, Q).unwrap_err();
    assert!(matches!(err, CertError::BadSignature { validator: 0, .. }), "{err}");
    assert!(err.to_string().contains(&format!("in network {OTHER_NET}")), "{err}");
    // One precommit signed for another network spoils a certificate of this one.
    let (mut c, _) = cert(&[0, 1, 2, 3]);
    c.signatures[2].1 = keys(N)[2].sign(&vote_bytes(&OTHER_NET, VoteKind::Precommit, 7, 2, Some(&ID)));
    assert!(matches!(c.verify(&NET, &unl, Q), Err(CertError::BadSignature { validator: 2, .. })));
}

#[test]
fn a_certificate_checked_with_an_impossible_quorum_says_so() {
    let (c, unl) = cert(&[0, 1, 2, 3]);
    assert_eq!(c.verify(&NET, &unl, 0), Err(CertError::InvalidQuorum { quorum: 0, unl_len: N }));
    assert_eq!(c.verify(&NET, &unl, 6), Err(CertError::InvalidQuorum { quorum: 6, unl_len: N }));
}

#[test]
fn a_certificate_turns_back_into_the_votes_it_is_made_of() {
    let (c, unl) = cert(&[0, 1, 2, 3]);
    for vote in c.votes() {
        assert_eq!(vote.verify(&NET, &unl), Ok(()));
    }
}
