//! Property tests of the ledger decoders that read peers' bytes (issue 10): `Ledger::decode`,
//! `LedgerRecord::decode`, `InputBatch::decode_verified`. They never panic; what they accept is
//! canonical (re-encoding gives the same bytes, so a hash over received bytes is the hash every
//! node computes); and a signed batch with any byte changed is refused. `HP_FUZZ_CASES` cases
//! each (256 by default).

use crate::{NET, Network};
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use hp_ledger::{Input, InputBatch, InputId, Ledger, LedgerBody, LedgerRecord, Outcome};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn config() -> Config {
    let cases = std::env::var("HP_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    Config { cases, failure_persistence: None, ..Config::default() }
}

fn records() -> Vec<LedgerRecord> {
    // Deterministic keys so that a failing case reproduces.
    let net = Network { keys: (0..3u8).map(|i| SigningKey::from_bytes(&[i + 10; 32])).collect(), id: NET };
    net.chain(3)
}

fn input() -> impl Strategy<Value = Input> {
    (
        any::<[u8; 32]>(),
        any::<u64>(),
        any::<[u8; 32]>(),
        proptest::collection::vec(any::<u8>(), 0..40),
        any::<[u8; 32]>(),
    )
        .prop_map(|(origin, nonce, user, data, sig)| {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&sig);
            let signature = ed25519_dalek::Signature::from_bytes(&signature);
            Input { id: InputId { origin, nonce }, user, data: Bytes::from(data), signature, user_signed: None }
        })
}

fn body() -> impl Strategy<Value = LedgerBody> {
    (
        any::<u64>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        proptest::collection::vec(input(), 0..4),
        proptest::collection::btree_set(any::<[u8; 32]>(), 0..4),
        proptest::option::of((any::<[u8; 32]>(), any::<[u8; 32]>())),
    )
        .prop_map(|(seq, prev_hash, time_ms, inputs, users, prev)| LedgerBody {
            seq,
            prev_hash,
            time_ms,
            inputs,
            users: users.into_iter().collect(),
            prev_result: prev.map(|(s, o)| hp_ledger::ResultSummary { state_hash: s, outputs_hash: o }),
            config_hash: [3; 32],
            next_membership: None,
        })
}

/// Mutations: change a byte, drop a byte, insert a byte, cut the end.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    Remove(prop::sample::Index),
    Insert(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<prop::sample::Index>().prop_map(Mutation::Remove),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match m {
        Mutation::Flip(i, x) => {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        Mutation::Remove(i) => {
            bytes.remove(i.index(bytes.len()));
        }
        Mutation::Insert(i, b) => bytes.insert(i.index(bytes.len()), *b),
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn ledgers_round_trip_with_their_hash(body in body()) {
        let ledger = Ledger::new(body);
        let back = Ledger::decode(&ledger.encode()).unwrap();
        prop_assert_eq!(back.hash(), ledger.hash());
        prop_assert_eq!(back, ledger);
    }

    #[test]
    fn a_decoded_ledger_is_canonical(which in 0usize..4, m in proptest::collection::vec(mutation(), 1..3)) {
        let mut bytes = records()[which].ledger.encode();
        for m in &m {
            apply(&mut bytes, m);
        }
        if let Ok(ledger) = Ledger::decode(&bytes) {
            prop_assert_eq!(ledger.encode(), bytes, "accepted bytes are not the canonical encoding");
            prop_assert_eq!(Ledger::new((*ledger).clone()).hash(), ledger.hash());
        }
    }

    #[test]
    fn arbitrary_bytes_are_no_ledger_or_record(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Ledger::decode(&bytes);
        let _ = LedgerRecord::decode(&bytes);
    }

    /// A peer's outcome (`OutcomeReply`) and a stored one: what decodes hashes like its canonical
    /// bytes, so a forged reply can only match a certificate by being the agreed outcome.
    #[test]
    fn arbitrary_bytes_decode_to_an_outcome_with_the_same_hash_or_not_at_all(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        if let Ok(outcome) = Outcome::decode(&bytes) {
            prop_assert_eq!(Outcome::decode(&outcome.encode()).map(|o| o.hash()).ok(), Some(outcome.hash()));
        }
        let _ = hp_ledger::decode_outputs(&bytes);
    }

    #[test]
    fn a_mutated_record_decodes_to_a_canonical_ledger_or_not_at_all(
        which in 0usize..4,
        m in proptest::collection::vec(mutation(), 1..3),
    ) {
        let mut bytes = records()[which].encode();
        for m in &m {
            apply(&mut bytes, m);
        }
        if let Ok(record) = LedgerRecord::decode(&bytes) {
            // The ledger inside is canonical: its hash is the one every node computes.
            let ledger = record.ledger.encode();
            prop_assert_eq!(&bytes[4..4 + ledger.len()], ledger.as_slice());
        }
    }

    #[test]
    fn a_decoded_record_is_canonical(which in 0usize..4, m in proptest::collection::vec(mutation(), 1..3)) {
        let mut bytes = records()[which].encode();
        for m in &m {
            apply(&mut bytes, m);
        }
        if let Ok(record) = LedgerRecord::decode(&bytes) {
            prop_assert_eq!(record.encode(), bytes, "accepted record bytes are not the canonical encoding");
        }
    }

    #[test]
    fn a_signed_batch_with_any_change_is_refused(
        inputs in proptest::collection::vec(input(), 1..4),
        m in mutation(),
    ) {
        let key = SigningKey::from_bytes(&[42; 32]);
        let origin = key.verifying_key().to_bytes();
        let inputs: Vec<Input> =
            inputs.into_iter().map(|i| Input::sign(&NET, i.id.nonce, i.user, i.data, &key)).collect();
        let batch = InputBatch::sign(&NET, inputs, &key);
        let encoded = InputBatch::encode_inputs(&batch.inputs);
        let signature = batch.signature.to_bytes();
        prop_assert_eq!(InputBatch::decode_verified(&NET, &origin, &encoded, &signature).unwrap(), batch);
        let mut changed = encoded.clone();
        apply(&mut changed, &m);
        if changed != encoded {
            prop_assert!(InputBatch::decode_verified(&NET, &origin, &changed, &signature).is_err());
        }
        let mut sig = signature.to_vec();
        apply(&mut sig, &m);
        if sig != signature {
            prop_assert!(InputBatch::decode_verified(&NET, &origin, &encoded, &sig).is_err());
        }
    }

    #[test]
    fn arbitrary_batches_never_verify(
        origin in any::<[u8; 32]>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        sig in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        prop_assert!(InputBatch::decode_verified(&NET, &origin, &bytes, &sig).is_err());
    }
}

/// The record flags are bytes 0 or 1; another value must be refused, as the ledger's own
/// `prev_result` flag is, or two byte strings decode to one record.
#[test]
fn record_flags_other_than_0_or_1_are_refused() {
    let record = records().swap_remove(2);
    let mut bytes = record.encode();
    let flag = 4 + record.ledger.encoded_len();
    assert_eq!(bytes[flag], 1);
    bytes[flag] = 2;
    assert!(LedgerRecord::decode(&bytes).is_err(), "a commit flag of 2 was accepted");
}
