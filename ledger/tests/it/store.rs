use crate::{NET, Network, OTHER_NET};
use bytes::Bytes;
use hp_ledger::chain::verify_chain;
use hp_ledger::{ExitKind, Ledger, LedgerRecord, Outcome, Store, StoreError};

/// `record` as a node stores it when decided: its result certificate comes later.
fn without_result(record: &LedgerRecord) -> LedgerRecord {
    LedgerRecord { result: None, ..record.clone() }
}

/// Appends `chain` after its genesis, each ledger without its result certificate.
fn append_without_results(store: &mut Store, chain: &[LedgerRecord]) {
    for record in &chain[1..] {
        store.append(&without_result(record)).unwrap();
    }
}

#[test]
fn appended_ledgers_survive_reopening_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let net = Network::new(3);
    let chain = net.chain(4);
    {
        let mut store = Store::open(&path, &chain[0].ledger).unwrap();
        for record in &chain[1..] {
            store.append(&without_result(record)).unwrap();
            store.set_result(record.result.as_ref().unwrap()).unwrap();
        }
    }
    let store = Store::open_read_only(&path).unwrap();
    assert_eq!(store.last().unwrap().ledger.seq, 4);
    assert_eq!(store.all().unwrap(), chain);
    verify_chain(store.all().unwrap(), &net.id, &net.members()).unwrap();
    let lines = store.summaries(2).unwrap();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0].seq, 2);
    assert_eq!(lines[0].inputs, 1);
    assert_eq!(lines[0].signers, 3);
    assert_eq!(lines[0].state_hash, Some([2; 32]));
}

#[test]
fn append_refuses_gaps_and_broken_links() {
    let dir = tempfile::tempdir().unwrap();
    let net = Network::new(3);
    let chain = net.chain(3);
    let mut store = Store::open(&dir.path().join("l.sqlite"), &chain[0].ledger).unwrap();
    assert!(matches!(store.append(&chain[2]), Err(StoreError::NotNext { seq: 2, last: 0 })));
    let other = Network::new(3).chain(1);
    assert!(matches!(store.append(&other[1]), Err(StoreError::BadLink { seq: 1 })));
}

#[test]
fn a_store_of_another_network_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    let net = Network::new(1);
    Store::open(&path, &Ledger::genesis(&net.unl(), &NET)).unwrap();
    assert!(matches!(
        Store::open(&path, &Ledger::genesis(&Network::new(1).unl(), &NET)),
        Err(StoreError::ForeignGenesis)
    ));
    // The same UNL in another network is another network.
    assert!(matches!(Store::open(&path, &Ledger::genesis(&net.unl(), &OTHER_NET)), Err(StoreError::ForeignGenesis)));
    assert!(Store::open(&path, &Ledger::genesis(&net.unl(), &NET)).is_ok());
}

#[test]
fn accepted_inputs_are_durable_until_a_ledger_carries_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    let net = Network::new(3);
    let chain = net.chain(1);
    let origin = net.unl()[0];
    let accepted = {
        let mut store = Store::open(&path, &chain[0].ledger).unwrap();
        store
            .accept_inputs(
                &net.keys[0],
                &net.id,
                vec![([1; 32], Bytes::from_static(b"a")), ([1; 32], Bytes::from_static(b"a"))],
            )
            .unwrap()
    };
    assert_ne!(accepted[0].id, accepted[1].id, "the same bytes twice are two instances");
    let mut store = Store::open(&path, &chain[0].ledger).unwrap();
    assert_eq!(store.pending_inputs(origin).unwrap(), accepted);
    // A ledger carrying the first one commits it.
    let ledger = Ledger::new(hp_ledger::LedgerBody {
        seq: 1,
        prev_hash: chain[0].ledger.hash(),
        time_ms: 5,
        inputs: vec![accepted[0].clone()],
        users: vec![],
        prev_result: None,
        config_hash: [0; 32],
        next_membership: None,
    });
    let commit = net.commit(&ledger, 3);
    store.append(&LedgerRecord { ledger, commit: Some(commit), result: None }).unwrap();
    assert!(store.is_committed(&accepted[0].id).unwrap());
    assert!(!store.is_committed(&accepted[1].id).unwrap());
    assert_eq!(store.pending_inputs(origin).unwrap(), vec![accepted[1].clone()]);
    store.prune_pending(origin).unwrap();
    // New identities never reuse old ones, even after pruning.
    let more = store.accept_inputs(&net.keys[0], &net.id, vec![([1; 32], Bytes::from_static(b"b"))]).unwrap();
    assert!(more[0].id.nonce > accepted[1].id.nonce);
}

#[test]
fn outcomes_and_delivered_outputs_are_kept_with_the_result_for_recent_ledgers_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    let net = Network::new(3);
    let chain = net.chain(3);
    let outputs_of = |seq: u64| vec![([seq as u8; 32], Bytes::from(format!("out {seq}")))];
    let outcome_of = |seq: u64| Outcome { exit: ExitKind::Code(seq as i32), outputs: outputs_of(seq) };
    {
        let mut store = Store::open(&path, &chain[0].ledger).unwrap();
        for record in &chain[1..] {
            store.append(&without_result(record)).unwrap();
            let cert = record.result.as_ref().unwrap();
            store
                .set_result_with_outcome(cert, Some(&outcome_of(cert.height)), Some(&outputs_of(cert.height)), &[])
                .unwrap();
        }
        // The certificate went in with the outputs.
        assert_eq!(store.all().unwrap(), chain);
    }
    let store = Store::open_read_only(&path).unwrap();
    let kept = store.outputs_after(1, 3).unwrap();
    assert_eq!(kept, vec![(2, outputs_of(2)), (3, outputs_of(3))]);
    assert_eq!(store.outputs_after(3, 10).unwrap(), vec![]);
    assert_eq!(store.agreed_outcome(2).unwrap(), Some(outcome_of(2).encode()));
    assert_eq!(store.agreed_outcome(4).unwrap(), None);

    // Outputs more than KEPT_OUTPUTS ledgers old are dropped.
    let mut store = Store::open(&path, &chain[0].ledger).unwrap();
    let mut far = chain[3].result.clone().unwrap();
    far.height = 3 + hp_ledger::store::KEPT_OUTPUTS;
    store.set_result_with_outcome(&far, None, Some(&[]), &[]).unwrap();
    let kept: Vec<u64> = store.outputs_after(0, u64::MAX >> 1).unwrap().into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(kept, vec![far.height]);
    assert_eq!(store.agreed_outcome(3).unwrap(), None, "old outcomes are dropped with old outputs");

    // An outcome fetched from a peer later is kept like an own one.
    store.keep_outcome(far.height, &outcome_of(9), &outputs_of(9), &[]).unwrap();
    assert_eq!(store.agreed_outcome(far.height).unwrap(), Some(outcome_of(9).encode()));
    assert_eq!(store.outputs_after(far.height - 1, far.height).unwrap(), vec![(far.height, outputs_of(9))]);
}

#[test]
fn wanted_outcomes_survive_reopening_until_kept_forgotten_or_too_old() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    let net = Network::new(3);
    let chain = net.chain(3);
    let outcome = Outcome { exit: ExitKind::Code(0), outputs: vec![([7; 32], Bytes::from_static(b"agreed"))] };
    {
        let mut store = Store::open(&path, &chain[0].ledger).unwrap();
        append_without_results(&mut store, &chain);
        // Ledger 2's own run differed: its certificate goes in with the note that its outcome is wanted.
        store.set_result_wanting_outcome(chain[2].result.as_ref().unwrap()).unwrap();
        store.want_outcomes(&[1, 3, 3]).unwrap();
    }
    let mut store = Store::open(&path, &chain[0].ledger).unwrap();
    assert_eq!(store.all().unwrap()[2], chain[2], "the certificate went in with the note");
    assert_eq!(store.wanted_outcomes().unwrap(), vec![1, 2, 3], "a restarted node asks again");
    store.keep_outcome(2, &outcome, &outcome.outputs, &[]).unwrap();
    store.forget_wanted_outcome(1).unwrap();
    assert_eq!(store.wanted_outcomes().unwrap(), vec![3]);
    // Outcomes peers no longer keep are not wanted any more.
    let mut far = chain[3].result.clone().unwrap();
    far.height = 3 + hp_ledger::store::KEPT_OUTPUTS;
    store.set_result_with_outcome(&far, None, Some(&[]), &[]).unwrap();
    assert_eq!(store.wanted_outcomes().unwrap(), Vec::<u64>::new());
}

#[test]
fn a_store_of_an_older_format_is_refused_at_open_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    let net = Network::new(3);
    let genesis = net.chain(0).remove(0).ledger;
    drop(Store::open(&path, &genesis).unwrap());
    assert!(Store::open(&path, &genesis).is_ok(), "a store of this format opens again");
    // A store from before formats were numbered: no format, but a chain.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute("DELETE FROM meta WHERE key = 'format'", []).unwrap();
    drop(raw);
    let err = Store::open(&path, &genesis).err().expect("an old store opened");
    assert!(matches!(err, StoreError::OldFormat { found: 1, .. }), "{err}");
    assert!(err.to_string().contains("l.sqlite"), "{err}");
}

/// The writer keeps the users' nonces it read or wrote, and a ledger it stores raises them:
/// what the replay rules read after a ledger is stored is that ledger's, never an older nonce.
/// A read-only store (another process) always reads the file.
#[test]
fn a_users_nonce_follows_every_stored_ledger_also_after_it_was_read() {
    use crate::chain::{signed_by_user, with_inputs};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    let net = Network::new(3);
    let (user, other) =
        (ed25519_dalek::SigningKey::from_bytes(&[31; 32]), ed25519_dalek::SigningKey::from_bytes(&[32; 32]));
    let (key, other_key) = (user.verifying_key().to_bytes(), other.verifying_key().to_bytes());
    let chain = with_inputs(&net, net.chain(3), 1, vec![signed_by_user(&net, &user, 101, 5, 4)]);
    let chain = with_inputs(&net, chain, 3, vec![signed_by_user(&net, &user, 102, 9, 6)]);
    let mut store = Store::open(&path, &chain[0].ledger).unwrap();
    // Read before any ledger carries them: no nonce yet (and now held so).
    assert_eq!((store.user_nonce(&key).unwrap(), store.user_nonce(&other_key).unwrap()), (None, None));
    store.append(&without_result(&chain[1])).unwrap();
    assert_eq!(store.user_nonce(&key).unwrap(), Some(5));
    store.append(&without_result(&chain[2])).unwrap();
    assert_eq!(store.user_nonce(&key).unwrap(), Some(5), "a ledger without their inputs leaves it");
    let reader = Store::open_read_only(&path).unwrap();
    assert_eq!(reader.user_nonce(&key).unwrap(), Some(5));
    store.append(&without_result(&chain[3])).unwrap();
    assert_eq!(store.user_nonce(&key).unwrap(), Some(9));
    assert_eq!(reader.user_nonce(&key).unwrap(), Some(9), "a read-only store reads what the writer wrote since");
    assert_eq!(store.user_nonce(&other_key).unwrap(), None);
    drop(store);
    assert_eq!(Store::open(&path, &chain[0].ledger).unwrap().user_nonce(&key).unwrap(), Some(9));
}
