//! Byte-exact checks of the canonical signed bytes (outside verifiers depend on them).

use hp_consensus::sign::{proposal_bytes, result_bytes, vote_bytes};
use hp_consensus::{Proposal, ResultVote, Value, Vote, VoteKind};

use crate::common::{A, keys};

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn vote_bytes_follow_the_documented_layout() {
    let id = [0xab; 32];
    let prevote = vote_bytes(VoteKind::Prevote, 0x0102030405060708, 0x0a0b0c0d, Some(&id));
    let want =
        concat(&[&[20], b"hotpocket/prevote/v1", &[1, 2, 3, 4, 5, 6, 7, 8], &[0x0a, 0x0b, 0x0c, 0x0d], &[1], &id]);
    assert_eq!(prevote, want);
    assert_eq!(prevote.len(), 66);

    let nil = vote_bytes(VoteKind::Precommit, 1, 2, None);
    let want = concat(&[&[22], b"hotpocket/precommit/v1", &1u64.to_be_bytes(), &2u32.to_be_bytes(), &[0], &[0; 32]]);
    assert_eq!(nil, want);
    assert_eq!(nil.len(), 68);
}

#[test]
fn proposal_and_result_bytes_follow_the_documented_layout() {
    let id = [7; 32];
    let fresh = proposal_bytes(3, 4, None, &id);
    let want = concat(&[&[21], b"hotpocket/proposal/v1", &3u64.to_be_bytes(), &4u32.to_be_bytes(), &[0], &[0; 4], &id]);
    assert_eq!(fresh, want);
    assert_eq!(fresh.len(), 71);
    let again = proposal_bytes(3, 4, Some(2), &id);
    assert_eq!(&again[34..39], &[1, 0, 0, 0, 2]);

    let result = result_bytes(9, &[1; 32], &[2; 32]);
    let want = concat(&[&[19], b"hotpocket/result/v1", &9u64.to_be_bytes(), &[1; 32], &[2; 32]]);
    assert_eq!(result, want);
    assert_eq!(result.len(), 92);
}

#[test]
fn a_signature_of_one_kind_does_not_verify_as_another() {
    let k = keys(2);
    let unl: Vec<_> = k.iter().map(|k| k.verifying_key()).collect();
    let prevote = Vote::sign(VoteKind::Prevote, 1, 0, Some(A.id()), 1, &k[1]);
    assert!(prevote.verify(&unl).is_ok());
    let as_precommit = Vote { kind: VoteKind::Precommit, ..prevote.clone() };
    assert!(as_precommit.verify(&unl).is_err());
    let other_signer = Vote { validator: 0, ..prevote.clone() };
    assert!(other_signer.verify(&unl).is_err());
    let unknown = Vote { validator: 2, ..prevote };
    assert!(matches!(
        unknown.verify(&unl),
        Err(hp_consensus::SignatureError::UnknownValidator { validator: 2, unl_len: 2, .. })
    ));

    let proposal = Proposal::sign(1, 0, A, None, 1, &k[1]);
    assert!(proposal.verify(&unl).is_ok());
    let bumped = Proposal { valid_round: Some(0), ..proposal };
    assert!(bumped.verify(&unl).is_err());

    let result = ResultVote::sign(1, [1; 32], [2; 32], 0, &k[0]);
    assert!(result.verify(&unl).is_ok());
    assert!(ResultVote { height: 2, ..result }.verify(&unl).is_err());
}
