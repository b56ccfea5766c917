//! `wire::decode` on arbitrary bytes (through prost), on arbitrary frames, and on signed frames
//! with one byte changed: it never panics, and it never accepts what the sender did not sign.

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use hp_consensus::{NetworkId, Proposal, ResultVote, Vote, VoteKind};
use hp_consensusd::wire::{self, PeerMessage, PeerStatus};
use hp_ledger::{Input, InputBatch, Ledger, LedgerBody, ResultSummary};
use hp_proto::v1::peer::{self as pb, frame::Kind};
use proptest::prelude::*;
use prost::Message;

/// The network the frames are signed in.
const NET: NetworkId = NetworkId([0x4e; 32]);
/// Another network.
const OTHER_NET: NetworkId = NetworkId([0x0f; 32]);

fn keys() -> Vec<SigningKey> {
    (0..4u8).map(|i| SigningKey::from_bytes(&[i + 1; 32])).collect()
}

fn unl(keys: &[SigningKey]) -> hp_ledger::Epochs {
    let unl = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
    hp_ledger::Epochs::new(hp_ledger::Membership::new(unl, keys.len()).unwrap())
}

/// Decodes against `epochs`, every height's members known.
fn decode(frame: pb::Frame, network: &NetworkId, epochs: &hp_ledger::Epochs) -> Result<PeerMessage, wire::WireError> {
    wire::decode(frame, network, &wire::Signers { epochs, known_through: u64::MAX })
}

/// Byte strings with lengths that matter here (empty, a hash, a signature) and random ones.
fn field_bytes() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        Just(Bytes::new()),
        proptest::collection::vec(any::<u8>(), 32).prop_map(Bytes::from),
        proptest::collection::vec(any::<u8>(), 64).prop_map(Bytes::from),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from),
    ]
}

fn small_u64() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(1), Just(u64::MAX), Just(u64::MAX - 1), any::<u64>(), 0u64..10]
}

fn small_u32() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), Just(1), Just(2), Just(3), Just(4), Just(u32::MAX), any::<u32>()]
}

fn arbitrary_frame() -> impl Strategy<Value = pb::Frame> {
    // Each arm boxed: the unboxed strategy tree overflows a test thread's stack in debug builds.
    let kind: BoxedStrategy<Kind> = prop_oneof![
        (field_bytes(), field_bytes(), field_bytes())
            .prop_map(|(origin, inputs, signature)| Kind::Inputs(pb::InputBatch { origin, inputs, signature }))
            .boxed(),
        (small_u64(), small_u32(), any::<i64>(), small_u32(), field_bytes(), field_bytes())
            .prop_map(|(height, round, valid_round, proposer, ledger, signature)| Kind::Proposal(pb::Proposal {
                height,
                round,
                valid_round,
                proposer,
                ledger,
                signature
            }))
            .boxed(),
        (small_u32(), small_u64(), small_u32(), field_bytes(), small_u32(), field_bytes())
            .prop_map(|(kind, height, round, value, validator, signature)| Kind::Vote(pb::Vote {
                kind,
                height,
                round,
                value,
                validator,
                signature
            }))
            .boxed(),
        (small_u64(), field_bytes(), field_bytes(), small_u32(), field_bytes(), field_bytes())
            .prop_map(|(height, state_hash, outputs_hash, validator, signature, output_root_sig)| {
                Kind::Result(pb::ResultVote { height, state_hash, outputs_hash, validator, signature, output_root_sig })
            })
            .boxed(),
        (small_u64(), field_bytes(), small_u64(), small_u32(), proptest::collection::vec(field_bytes(), 0..5))
            .prop_map(|(lcl_seq, lcl_hash, height, round, users)| Kind::Status(pb::Status {
                lcl_seq,
                lcl_hash,
                height,
                round,
                users
            }))
            .boxed(),
        (any::<u64>(), small_u64(), small_u32())
            .prop_map(|(request_id, from_seq, max_count)| Kind::LedgerRequest(pb::LedgerRequest {
                request_id,
                from_seq,
                max_count
            }))
            .boxed(),
        (any::<u64>(), proptest::collection::vec(field_bytes(), 0..4))
            .prop_map(|(request_id, records)| Kind::LedgerReply(pb::LedgerReply { request_id, records }))
            .boxed(),
        any::<u64>().prop_map(|seq| Kind::OutcomeRequest(pb::OutcomeRequest { seq })).boxed(),
        (small_u64(), field_bytes())
            .prop_map(|(seq, outcome)| Kind::OutcomeReply(pb::OutcomeReply { seq, outcome }))
            .boxed(),
    ]
    .boxed();
    proptest::option::weighted(0.95, kind).prop_map(|kind| pb::Frame { kind })
}

/// Frames signed by UNL member 1, one of each kind that carries a signature.
fn signed_frames() -> Vec<pb::Frame> {
    let keys = keys();
    let ledger = Ledger::new(LedgerBody {
        seq: 7,
        prev_hash: [3; 32],
        time_ms: 1_700_000_000_000,
        inputs: vec![Input::sign(&NET, 42, [9; 32], Bytes::from_static(b"hello"), &keys[1])],
        users: vec![[9; 32]],
        prev_result: Some(ResultSummary { state_hash: [4; 32], outputs_hash: [5; 32] }),
        config_hash: [6; 32],
        next_membership: None,
    });
    let batch = InputBatch::sign(&NET, ledger.inputs.clone(), &keys[1]);
    vec![
        wire::inputs(&batch),
        // Height 7, round 1: validator 1 is its proposer, (7 + 1) mod 4 = 0... the signature is
        // what matters here, not the turn.
        wire::proposal(&Proposal::sign(&NET, 7, 1, ledger.clone(), Some(0), 1, &keys[1])),
        wire::vote(&Vote::sign(&NET, VoteKind::Prevote, 7, 1, Some(ledger.hash()), 1, &keys[1])),
        wire::vote(&Vote::sign(&NET, VoteKind::Precommit, 7, 1, None, 1, &keys[1])),
        wire::result(&ResultVote::sign(&NET, 7, [1; 32], [2; 32], 1, &keys[1])),
    ]
}

/// What a message says, signed parts only, to compare a decoded mutant with the original.
fn signed_content(m: &PeerMessage) -> Option<String> {
    Some(match m {
        PeerMessage::Inputs(b, _) => format!("inputs {:?} {:?}", b.origin, b.inputs),
        PeerMessage::Proposal(p) => {
            format!("proposal {} {} {:?} {:?}", p.height, p.round, p.valid_round, p.value.hash())
        }
        PeerMessage::Vote(v) => format!("vote {:?} {} {} {:?} {}", v.kind, v.height, v.round, v.value, v.validator),
        PeerMessage::Result(r, _) => {
            format!("result {} {:?} {:?} {}", r.height, r.state_hash, r.outputs_hash, r.validator)
        }
        _ => return None,
    })
}

#[test]
fn signed_frames_round_trip_through_bytes() {
    let unl = unl(&keys());
    for frame in signed_frames() {
        let bytes = frame.encode_to_vec();
        let back = pb::Frame::decode(bytes.as_slice()).unwrap();
        let message = decode(back, &NET, &unl).unwrap();
        assert!(signed_content(&message).is_some());
    }
    let status = PeerStatus { lcl_seq: 3, lcl_hash: [1; 32], height: 4, round: 0, users: vec![[2; 32]] };
    let back = decode(wire::status(&status), &NET, &unl).unwrap();
    assert!(matches!(back, PeerMessage::Status(s) if s == status));
}

/// A node refuses everything signed for another network, even by a key in its UNL.
#[test]
fn frames_signed_for_another_network_are_refused() {
    let unl = unl(&keys());
    for frame in signed_frames() {
        assert!(decode(frame.clone(), &NET, &unl).is_ok());
        let err = decode(frame, &OTHER_NET, &unl).unwrap_err();
        assert!(
            matches!(&err, wire::WireError::Signature { .. })
                || matches!(&err, wire::WireError::Decode { message: "InputBatch", problem }
                    if problem.contains("signature does not verify")),
            "{err}"
        );
    }
}

/// Every change of a signed frame's first byte (its kind's tag): found by the soak's 100,000
/// cases, where a vote read as a state manifest request. A kind that carries no signature may
/// come out; a signed one only with the original content.
#[test]
fn a_changed_frame_tag_never_makes_another_signed_claim() {
    let unl = unl(&keys());
    for frame in signed_frames() {
        let original = signed_content(&decode(frame.clone(), &NET, &unl).unwrap());
        let bytes = frame.encode_to_vec();
        for xor in 1u8..=255 {
            let mut mutant = bytes.clone();
            mutant[0] ^= xor;
            if let Ok(mutant) = pb::Frame::decode(mutant.as_slice())
                && let Ok(message) = decode(mutant, &NET, &unl)
                && let Some(content) = signed_content(&message)
            {
                assert_eq!(Some(content), original, "tag byte changed by {xor:#04x}");
            }
        }
    }
}

proptest! {
    #![proptest_config(crate::config())]

    #[test]
    fn arbitrary_bytes_through_prost_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let unl = unl(&keys());
        if let Ok(frame) = pb::Frame::decode(bytes.as_slice()) {
            let _ = decode(frame, &NET, &unl);
        }
    }

    #[test]
    fn arbitrary_frames_never_panic_and_unsigned_claims_are_refused(frame in arbitrary_frame()) {
        let unl = unl(&keys());
        match decode(frame, &NET, &unl) {
            // Random bytes are never a valid signature of a UNL key.
            Ok(PeerMessage::Inputs(..) | PeerMessage::Proposal(_) | PeerMessage::Vote(_) | PeerMessage::Result(..)) => {
                prop_assert!(false, "an unsigned frame was accepted");
            }
            Ok(PeerMessage::Status(s)) => prop_assert!(s.users.len() <= wire::MAX_USERS_PER_STATUS),
            Ok(PeerMessage::LedgerReply { records, .. }) => prop_assert!(records.len() <= wire::MAX_LEDGERS_PER_REPLY),
            // What decodes is canonical: the node compares its hash with the certificate's.
            Ok(PeerMessage::OutcomeReply { outcome: Some(outcome), .. }) => {
                prop_assert_eq!(hp_ledger::Outcome::decode(&outcome.encode()).ok(), Some(outcome));
            }
            Ok(_) | Err(_) => {}
        }
    }

    #[test]
    fn a_signed_frame_with_one_byte_changed_is_refused_or_means_the_same(
        which in 0usize..5,
        pos in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let unl = unl(&keys());
        let frame = signed_frames().swap_remove(which);
        let original = signed_content(&decode(frame.clone(), &NET, &unl).unwrap());
        let mut bytes = frame.encode_to_vec();
        let i = pos.index(bytes.len());
        bytes[i] ^= xor;
        if let Ok(mutant) = pb::Frame::decode(bytes.as_slice())
            && let Ok(message) = decode(mutant, &NET, &unl)
        {
            // Only a change outside what is signed (e.g. a field number prost then skips) may
            // decode as a signed kind, and then it must say exactly what was signed. A changed
            // frame tag can also turn the bytes into a kind that carries no signature (a vote
            // read as a state manifest request, say): that claims nothing in anyone's name.
            if let Some(content) = signed_content(&message) {
                prop_assert_eq!(Some(content), original);
            }
        }
    }

    #[test]
    fn a_signed_frame_cut_short_is_refused_or_means_the_same(which in 0usize..5, cut in any::<prop::sample::Index>()) {
        let unl = unl(&keys());
        let frame = signed_frames().swap_remove(which);
        let original = signed_content(&decode(frame.clone(), &NET, &unl).unwrap());
        let bytes = frame.encode_to_vec();
        let short = &bytes[..cut.index(bytes.len())];
        if let Ok(mutant) = pb::Frame::decode(short)
            && let Ok(message) = decode(mutant, &NET, &unl)
        {
            prop_assert_eq!(signed_content(&message), original);
        }
    }
}
