use crate::{NETWORK, Network};
use bytes::Bytes;
use hp_ledger::chain::{ChainError, verify_chain};
use hp_ledger::{Input, Ledger, LedgerBody, LedgerRecord};

#[test]
fn a_properly_signed_chain_verifies() {
    let net = Network::new(3);
    let chain = net.chain(5);
    let (seq, hash) = verify_chain(chain.clone(), &net.unl(), 3, &NETWORK).unwrap();
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
    let err = verify_chain(chain, &net.unl(), 4, &NETWORK).unwrap_err();
    assert!(matches!(err, ChainError::BadCommit { seq: 2, .. }), "{err}");
}

#[test]
fn a_tampered_input_breaks_the_certificate() {
    let net = Network::new(3);
    let mut chain = net.chain(3);
    let mut body: LedgerBody = (*chain[2].ledger).clone();
    body.inputs[0].data = bytes::Bytes::from_static(b"forged");
    chain[2].ledger = Ledger::new(body);
    let err = verify_chain(chain, &net.unl(), 3, &NETWORK).unwrap_err();
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
    assert_eq!(verify_chain(chain, &net.unl(), 3, &NETWORK).unwrap_err(), ChainError::BrokenLink { seq: 3 });
}

#[test]
fn a_signature_from_outside_the_unl_does_not_count() {
    let net = Network::new(3);
    let outsider = Network::new(3);
    let mut chain = net.chain(2);
    chain[1].commit = Some(outsider.commit(&chain[1].ledger, 3));
    assert!(matches!(verify_chain(chain, &net.unl(), 3, &NETWORK).unwrap_err(), ChainError::BadCommit { seq: 1, .. }));
}

#[test]
fn a_carried_result_must_match_its_certificate() {
    let net = Network::new(3);
    let mut chain = net.chain(3);
    chain[1].result = Some(net.result(1, [0x77; 32], [0xaa; 32], 3));
    assert_eq!(verify_chain(chain, &net.unl(), 3, &NETWORK).unwrap_err(), ChainError::ResultMismatch { seq: 2 });
}

#[test]
fn a_chain_of_another_network_is_refused() {
    let net = Network::new(3);
    let other = Network::new(3);
    assert_eq!(verify_chain(net.chain(1), &other.unl(), 3, &NETWORK).unwrap_err(), ChainError::BadGenesis);
}

#[test]
fn the_same_input_instance_twice_is_refused() {
    let net = Network::new(3);
    let mut chain = net.chain(3);
    let mut body: LedgerBody = (*chain[3].ledger).clone();
    // A properly signed second instance of the input of ledger 2.
    let earlier = &chain[2].ledger.inputs[0];
    body.inputs[0] = Input::sign(&NETWORK, earlier.id.nonce, [9; 32], Bytes::from_static(b"again"), &net.keys[0]);
    chain[3].ledger = Ledger::new(body);
    chain[3].commit = Some(net.commit(&chain[3].ledger, 3));
    assert!(matches!(
        verify_chain(chain, &net.unl(), 3, &NETWORK).unwrap_err(),
        ChainError::DuplicateInput { seq: 3, .. }
    ));
}

#[test]
fn an_input_its_origin_did_not_sign_is_refused_even_with_a_quorum_certificate() {
    let net = Network::new(3);
    let mut chain = net.chain(3);
    // A faulty proposer puts other bytes under ledger 2's input identity, and the ledger gets a
    // (faulty) quorum's commit: the origin's signature still gives it away.
    let mut body: LedgerBody = (*chain[2].ledger).clone();
    body.inputs[0].data = Bytes::from_static(b"forged");
    chain[2].ledger = Ledger::new(body);
    chain[2].commit = Some(net.commit(&chain[2].ledger, 3));
    chain[3].ledger = Ledger::new(LedgerBody { prev_hash: chain[2].ledger.hash(), ..(*chain[3].ledger).clone() });
    chain[3].commit = Some(net.commit(&chain[3].ledger, 3));
    let err = verify_chain(chain, &net.unl(), 3, &NETWORK).unwrap_err();
    assert!(matches!(&err, ChainError::BadInput { seq: 2, .. }), "{err}");
    assert!(err.to_string().contains("signature"), "{err}");
}

#[test]
fn an_input_of_another_network_is_refused() {
    let net = Network::new(3);
    assert!(verify_chain(net.chain(2), &net.unl(), 3, &NETWORK).is_ok());
    let err = verify_chain(net.chain(2), &net.unl(), 3, &[1; 32]).unwrap_err();
    assert!(matches!(err, ChainError::BadInput { seq: 1, .. }), "{err}");
}
