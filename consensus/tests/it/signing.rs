//! Byte-exact checks of the canonical signed bytes (outside verifiers depend on them).

use hp_consensus::sign::{proposal_bytes, result_bytes, vote_bytes};
use hp_consensus::{NetworkId, Proposal, ResultVote, SignatureError, Value, Vote, VoteKind};

use crate::common::{A, NET, OTHER_NET, keys};

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A network id whose bytes are all distinct, so a misplaced byte shows.
fn net() -> NetworkId {
    NetworkId(std::array::from_fn(|i| 0xc0 + i as u8))
}

#[test]
fn vote_bytes_follow_the_documented_layout() {
    let id = [0xab; 32];
    let prevote = vote_bytes(&net(), VoteKind::Prevote, 0x0102030405060708, 0x0a0b0c0d, Some(&id));
    let want = concat(&[
        &[20],
        b"hotpocket/prevote/v2",
        net().as_bytes(),
        &[1, 2, 3, 4, 5, 6, 7, 8],
        &[0x0a, 0x0b, 0x0c, 0x0d],
        &[1],
        &id,
    ]);
    assert_eq!(prevote, want);
    assert_eq!(prevote.len(), 98);

    let nil = vote_bytes(&net(), VoteKind::Precommit, 1, 2, None);
    let want = concat(&[
        &[22],
        b"hotpocket/precommit/v2",
        net().as_bytes(),
        &1u64.to_be_bytes(),
        &2u32.to_be_bytes(),
        &[0],
        &[0; 32],
    ]);
    assert_eq!(nil, want);
    assert_eq!(nil.len(), 100);
}

#[test]
fn proposal_and_result_bytes_follow_the_documented_layout() {
    let id = [7; 32];
    let fresh = proposal_bytes(&net(), 3, 4, None, &id);
    let want = concat(&[
        &[21],
        b"hotpocket/proposal/v2",
        net().as_bytes(),
        &3u64.to_be_bytes(),
        &4u32.to_be_bytes(),
        &[0],
        &[0; 4],
        &id,
    ]);
    assert_eq!(fresh, want);
    assert_eq!(fresh.len(), 103);
    let again = proposal_bytes(&net(), 3, 4, Some(2), &id);
    assert_eq!(&again[66..71], &[1, 0, 0, 0, 2]);

    let result = result_bytes(&net(), 9, &[1; 32], &[2; 32]);
    let want = concat(&[&[19], b"hotpocket/result/v2", net().as_bytes(), &9u64.to_be_bytes(), &[1; 32], &[2; 32]]);
    assert_eq!(result, want);
    assert_eq!(result.len(), 124);
}

#[test]
fn the_network_id_is_signed_right_after_the_tag_of_every_kind() {
    let id = [3; 32];
    let all = |n: &NetworkId| {
        [
            vote_bytes(n, VoteKind::Prevote, 1, 0, Some(&id)),
            vote_bytes(n, VoteKind::Precommit, 1, 0, None),
            proposal_bytes(n, 1, 0, None, &id),
            result_bytes(n, 1, &id, &id),
        ]
    };
    for (ours, theirs) in all(&NET).iter().zip(all(&OTHER_NET).iter()) {
        let at = 1 + usize::from(ours[0]);
        assert_eq!(&ours[at..at + 32], NET.as_bytes());
        assert_eq!(&theirs[at..at + 32], OTHER_NET.as_bytes());
        assert_eq!((&ours[..at], &ours[at + 32..]), (&theirs[..at], &theirs[at + 32..]), "only the id differs");
    }
}

#[test]
fn a_signature_of_one_kind_does_not_verify_as_another() {
    let k = keys(2);
    let unl: Vec<_> = k.iter().map(|k| k.verifying_key()).collect();
    let prevote = Vote::sign(&NET, VoteKind::Prevote, 1, 0, Some(A.id()), 1, &k[1]);
    assert!(prevote.verify(&NET, &unl).is_ok());
    let as_precommit = Vote { kind: VoteKind::Precommit, ..prevote.clone() };
    assert!(as_precommit.verify(&NET, &unl).is_err());
    let other_signer = Vote { validator: 0, ..prevote.clone() };
    assert!(other_signer.verify(&NET, &unl).is_err());
    let unknown = Vote { validator: 2, ..prevote };
    assert!(matches!(
        unknown.verify(&NET, &unl),
        Err(SignatureError::UnknownValidator { validator: 2, unl_len: 2, .. })
    ));

    let proposal = Proposal::sign(&NET, 1, 0, A, None, 1, &k[1]);
    assert!(proposal.verify(&NET, &unl).is_ok());
    let bumped = Proposal { valid_round: Some(0), ..proposal };
    assert!(bumped.verify(&NET, &unl).is_err());

    let result = ResultVote::sign(&NET, 1, [1; 32], [2; 32], 0, &k[0]);
    assert!(result.verify(&NET, &unl).is_ok());
    assert!(ResultVote { height: 2, ..result }.verify(&NET, &unl).is_err());
}

#[test]
fn a_message_signed_for_one_network_does_not_verify_in_another() {
    let k = keys(2);
    let unl: Vec<_> = k.iter().map(|k| k.verifying_key()).collect();
    let bad = |what: &'static str, round| SignatureError::BadSignature { what, validator: 1, height: 1, round };
    for kind in [VoteKind::Prevote, VoteKind::Precommit] {
        for value in [Some(A.id()), None] {
            let vote = Vote::sign(&NET, kind, 1, 2, value, 1, &k[1]);
            assert_eq!(vote.verify(&NET, &unl), Ok(()));
            assert_eq!(vote.verify(&OTHER_NET, &unl), Err(bad(kind.name(), 2)), "{vote}");
        }
    }

    let proposal = Proposal::sign(&NET, 1, 3, A, Some(1), 1, &k[1]);
    assert_eq!(proposal.verify(&NET, &unl), Ok(()));
    assert_eq!(proposal.verify(&OTHER_NET, &unl), Err(bad("proposal", 3)));

    let result = ResultVote::sign(&NET, 1, [1; 32], [2; 32], 1, &k[1]);
    assert_eq!(result.verify(&NET, &unl), Ok(()));
    assert_eq!(result.verify(&OTHER_NET, &unl), Err(bad("result", 0)));
}
