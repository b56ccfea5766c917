use crate::Network;
use hp_ledger::chain::{ChainError, verify_chain};
use hp_ledger::{Ledger, LedgerBody, LedgerRecord};

#[test]
fn a_properly_signed_chain_verifies() {
    let net = Network::new(3);
    let chain = net.chain(5);
    let (seq, hash) = verify_chain(chain.clone(), &net.unl(), 3).unwrap();
    assert_eq!(seq, 5);
    assert_eq!(hash, chain[5].ledger.hash());
}

#[test]
fn a_record_survives_its_encoding() {
    let net = Network::new(3);
    for record in net.chain(3) {
        assert_eq!(LedgerRecord::decode(&record.encode()).unwrap(), record);
    }
}

#[test]
fn too_few_signers_are_refused() {
    let net = Network::new(5);
    let mut chain = net.chain(3);
    chain[2].commit = Some(net.commit(&chain[2].ledger, 3));
    let err = verify_chain(chain, &net.unl(), 4).unwrap_err();
    assert!(matches!(err, ChainError::BadCommit { seq: 2, .. }), "{err}");
}

#[test]
fn a_tampered_input_breaks_the_certificate() {
    let net = Network::new(3);
    let mut chain = net.chain(3);
    let mut body: LedgerBody = (*chain[2].ledger).clone();
    body.inputs[0].data = bytes::Bytes::from_static(b"forged");
    chain[2].ledger = Ledger::new(body);
    let err = verify_chain(chain, &net.unl(), 3).unwrap_err();
    assert_eq!(err, ChainError::CommitForOtherLedger { seq: 2 });
}

#[test]
fn a_broken_link_is_found() {
    let net = Network::new(3);
    let mut chain = net.chain(3);
    let mut body: LedgerBody = (*chain[3].ledger).clone();
    body.prev_hash = [0; 32];
    chain[3].ledger = Ledger::new(body);
    chain[3].commit = Some(net.commit(&chain[3].ledger, 3));
    assert_eq!(verify_chain(chain, &net.unl(), 3).unwrap_err(), ChainError::BrokenLink { seq: 3 });
}

#[test]
fn a_signature_from_outside_the_unl_does_not_count() {
    let net = Network::new(3);
    let outsider = Network::new(3);
    let mut chain = net.chain(2);
    chain[1].commit = Some(outsider.commit(&chain[1].ledger, 3));
    assert!(matches!(verify_chain(chain, &net.unl(), 3).unwrap_err(), ChainError::BadCommit { seq: 1, .. }));
}

#[test]
fn a_carried_result_must_match_its_certificate() {
    let net = Network::new(3);
    let mut chain = net.chain(3);
    chain[1].result = Some(net.result(1, [0x77; 32], [0xaa; 32], 3));
    assert_eq!(verify_chain(chain, &net.unl(), 3).unwrap_err(), ChainError::ResultMismatch { seq: 2 });
}

#[test]
fn a_chain_of_another_network_is_refused() {
    let net = Network::new(3);
    let other = Network::new(3);
    assert_eq!(verify_chain(net.chain(1), &other.unl(), 3).unwrap_err(), ChainError::BadGenesis);
}

#[test]
fn the_same_input_instance_twice_is_refused() {
    let net = Network::new(3);
    let mut chain = net.chain(3);
    let mut body: LedgerBody = (*chain[3].ledger).clone();
    body.inputs[0].id = chain[2].ledger.inputs[0].id;
    chain[3].ledger = Ledger::new(body);
    chain[3].commit = Some(net.commit(&chain[3].ledger, 3));
    assert!(matches!(verify_chain(chain, &net.unl(), 3).unwrap_err(), ChainError::DuplicateInput { seq: 3, .. }));
}
