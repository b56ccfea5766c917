use crate::{NET, Network, OTHER_NET};
use bytes::Bytes;
use hp_ledger::chain::{ChainError, verify_chain, verify_next};
use hp_ledger::{Input, Ledger, LedgerBody, LedgerRecord};

#[test]
fn a_properly_signed_chain_verifies() {
    let net = Network::new(3);
    let chain = net.chain(5);
    let (seq, hash) = verify_chain(chain.clone(), &net.id, &net.members()).unwrap();
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
    let err = verify_chain(chain, &net.id, &net.members()).unwrap_err();
    assert!(matches!(err, ChainError::BadCommit { seq: 2, .. }), "{err}");
}

#[test]
fn a_tampered_input_breaks_the_certificate() {
    let net = Network::new(3);
    let mut chain = net.chain(3);
    let mut body: LedgerBody = (*chain[2].ledger).clone();
    body.inputs[0].data = bytes::Bytes::from_static(b"forged");
    chain[2].ledger = Ledger::new(body);
    let err = verify_chain(chain, &net.id, &net.members()).unwrap_err();
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
    assert_eq!(verify_chain(chain, &net.id, &net.members()).unwrap_err(), ChainError::BrokenLink { seq: 3 });
}

#[test]
fn a_signature_from_outside_the_unl_does_not_count() {
    let net = Network::new(3);
    let outsider = Network::new(3);
    let mut chain = net.chain(2);
    chain[1].commit = Some(outsider.commit(&chain[1].ledger, 3));
    assert!(matches!(verify_chain(chain, &net.id, &net.members()).unwrap_err(), ChainError::BadCommit { seq: 1, .. }));
}

#[test]
fn a_carried_result_must_match_its_certificate() {
    let net = Network::new(3);
    let mut chain = net.chain(3);
    chain[1].result = Some(net.result(1, [0x77; 32], [0xaa; 32], 3));
    assert_eq!(verify_chain(chain, &net.id, &net.members()).unwrap_err(), ChainError::ResultMismatch { seq: 2 });
}

#[test]
fn a_chain_of_another_unl_is_refused() {
    let net = Network::new(3);
    let other = Network::new(3);
    assert_eq!(
        verify_chain(net.chain(1), &net.id, &other.members()).unwrap_err(),
        ChainError::BadGenesis { network: NET }
    );
}

#[test]
fn a_chain_of_another_network_with_the_same_unl_is_refused() {
    let net = Network::new(3);
    let chain = net.chain(2);
    assert!(verify_chain(chain.clone(), &NET, &net.members()).is_ok());
    let err = verify_chain(chain, &OTHER_NET, &net.members()).unwrap_err();
    assert_eq!(err, ChainError::BadGenesis { network: OTHER_NET });
    assert!(err.to_string().contains(&format!("genesis ledger of network {OTHER_NET}")), "{err}");
}

#[test]
fn no_ledger_of_one_network_links_into_another() {
    let net = Network::new(3);
    let theirs = net.in_network(OTHER_NET);
    assert_ne!(Ledger::genesis(&net.unl(), &NET).hash(), Ledger::genesis(&net.unl(), &OTHER_NET).hash());
    // Their ledger 1, with certificates valid in their network, after our genesis.
    let ours = net.chain(0);
    let foreign = theirs.chain(1).remove(1);
    let err = verify_next(&foreign, &ours[0].ledger, None, &NET, &net.members()).unwrap_err();
    assert_eq!(err, ChainError::BrokenLink { seq: 1 });
    assert!(verify_next(&foreign, &theirs.chain(0)[0].ledger, None, &OTHER_NET, &net.members()).is_ok());
}

#[test]
fn certificates_signed_in_another_network_are_refused() {
    let net = Network::new(3);
    let theirs = net.in_network(OTHER_NET);
    let mut chain = net.chain(2);
    chain[1].commit = Some(theirs.commit(&chain[1].ledger, 3));
    let err = verify_chain(chain, &NET, &net.members()).unwrap_err();
    assert!(matches!(err, ChainError::BadCommit { seq: 1, .. }), "{err}");
    assert!(err.to_string().contains(&format!("in network {NET}")), "{err}");

    let mut chain = net.chain(2);
    chain[2].result = Some(theirs.result(2, [2; 32], [0xaa; 32], 3));
    let err = verify_chain(chain, &NET, &net.members()).unwrap_err();
    assert!(matches!(err, ChainError::BadResult { seq: 2, .. }), "{err}");
}

#[test]
fn the_same_input_instance_twice_is_refused() {
    let net = Network::new(3);
    let mut chain = net.chain(3);
    let mut body: LedgerBody = (*chain[3].ledger).clone();
    // A properly signed second instance of the input of ledger 2.
    let earlier = &chain[2].ledger.inputs[0];
    body.inputs[0] = Input::sign(&NET, earlier.id.nonce, [9; 32], Bytes::from_static(b"again"), &net.keys[0]);
    chain[3].ledger = Ledger::new(body);
    chain[3].commit = Some(net.commit(&chain[3].ledger, 3));
    assert!(matches!(
        verify_chain(chain, &net.id, &net.members()).unwrap_err(),
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
    let err = verify_chain(chain, &NET, &net.members()).unwrap_err();
    assert!(matches!(&err, ChainError::BadInput { seq: 2, .. }), "{err}");
    assert!(err.to_string().contains("signature"), "{err}");
}

#[test]
fn an_input_of_another_network_is_refused() {
    let net = Network::new(3);
    let mut chain = net.chain(2);
    // Ledger 1's input as its origin signed it for another network, in a ledger of this one.
    let theirs = &chain[1].ledger.inputs[0];
    let mut body: LedgerBody = (*chain[1].ledger).clone();
    body.inputs[0] = Input::sign(&OTHER_NET, theirs.id.nonce, theirs.user, theirs.data.clone(), &net.keys[0]);
    chain[1].ledger = Ledger::new(body);
    chain[1].commit = Some(net.commit(&chain[1].ledger, 3));
    chain[2].ledger = Ledger::new(LedgerBody { prev_hash: chain[1].ledger.hash(), ..(*chain[2].ledger).clone() });
    chain[2].commit = Some(net.commit(&chain[2].ledger, 3));
    let err = verify_chain(chain, &NET, &net.members()).unwrap_err();
    assert!(matches!(err, ChainError::BadInput { seq: 1, .. }), "{err}");
}

/// `chain` with ledger `seq`'s inputs replaced, the later links and all commits made again (a
/// quorum signs whatever it is given: what the chain proves must come from the inputs).
pub(crate) fn with_inputs(
    net: &Network,
    mut chain: Vec<LedgerRecord>,
    seq: usize,
    inputs: Vec<Input>,
) -> Vec<LedgerRecord> {
    let body: LedgerBody = (*chain[seq].ledger).clone();
    chain[seq].ledger = Ledger::new(LedgerBody { inputs, ..body });
    for i in seq..chain.len() {
        if i > seq {
            let body: LedgerBody = (*chain[i].ledger).clone();
            chain[i].ledger = Ledger::new(LedgerBody { prev_hash: chain[i - 1].ledger.hash(), ..body });
        }
        chain[i].commit = Some(net.commit(&chain[i].ledger, 3));
    }
    chain
}

/// A JSON container `user` signed, accepted by the network's first node as input `id`.
pub(crate) fn signed_by_user(net: &Network, user: &ed25519_dalek::SigningKey, id: u64, nonce: u64, max: u64) -> Input {
    use ed25519_dalek::Signer;
    let container = format!(r#"{{"input":"in {nonce}","nonce":{nonce},"max_ledger_seq_no":{max}}}"#);
    let signed = hp_ledger::user_signed::UserSigned {
        format: hp_ledger::user_signed::ContainerFormat::Json,
        signature: user.sign(container.as_bytes()).to_bytes(),
        container: Bytes::from(container),
    };
    let data = Bytes::from(format!("in {nonce}"));
    Input::sign_with(&net.id, id, user.verifying_key().to_bytes(), data, Some(signed), &net.keys[0])
}

#[test]
fn verify_checks_user_signed_inputs_offline_and_finds_a_replayed_nonce() {
    let net = Network::new(3);
    let user = ed25519_dalek::SigningKey::from_bytes(&[21; 32]);
    let chain = with_inputs(&net, net.chain(3), 1, vec![signed_by_user(&net, &user, 101, 5, 4)]);
    let good = with_inputs(&net, chain.clone(), 2, vec![signed_by_user(&net, &user, 102, 6, 4)]);
    assert!(verify_chain(good, &NET, &net.members()).is_ok());
    // The same nonce again in a later ledger: a replay a faulty quorum let through.
    let replayed = with_inputs(&net, chain.clone(), 2, vec![signed_by_user(&net, &user, 103, 5, 4)]);
    let err = verify_chain(replayed, &NET, &net.members()).unwrap_err();
    assert!(matches!(&err, ChainError::BadInput { seq: 2, .. }) && err.to_string().contains("nonce"), "{err}");
    // Past its window.
    let late = with_inputs(&net, chain.clone(), 3, vec![signed_by_user(&net, &user, 104, 9, 2)]);
    let err = verify_chain(late, &NET, &net.members()).unwrap_err();
    assert!(matches!(&err, ChainError::BadInput { seq: 3, .. }) && err.to_string().contains("window"), "{err}");
}

// ---- hand-overs of membership ------------------------------------------------------------

mod hand_over {
    use crate::NET;
    use bytes::Bytes;
    use ed25519_dalek::SigningKey;
    use hp_consensus::{CommitCertificate, ResultCertificate, ResultVote, Vote, VoteKind};
    use hp_ledger::chain::{ChainError, verify_chain};
    use hp_ledger::{Input, Ledger, LedgerBody, LedgerRecord, Membership};

    fn keys(n: usize) -> Vec<SigningKey> {
        (0..n).map(|_| SigningKey::generate(&mut rand::rngs::OsRng)).collect()
    }

    fn members(of: &[&SigningKey], quorum: usize) -> Membership {
        Membership::new(of.iter().map(|k| k.verifying_key().to_bytes()).collect(), quorum).unwrap()
    }

    /// The ledger after `prev`, naming `named`, signed by `signers` at their places in
    /// `named` (a signer outside it signs at place 0), handing over to `next`.
    fn next_record(
        prev: &LedgerRecord,
        named: &Membership,
        signers: &[&SigningKey],
        next: Option<Membership>,
        inputs: Vec<Input>,
    ) -> LedgerRecord {
        let seq = prev.ledger.seq + 1;
        let ledger = Ledger::new(LedgerBody {
            seq,
            prev_hash: prev.ledger.hash(),
            time_ms: 1_000 + seq,
            inputs,
            users: vec![],
            prev_result: prev.result_summary(),
            config_hash: named.hash(),
            next_membership: next,
        });
        let place = |k: &SigningKey| named.unl().iter().position(|m| *m == k.verifying_key().to_bytes()).unwrap_or(0);
        let mut commits: Vec<_> = signers
            .iter()
            .map(|k| {
                let v = Vote::sign(&NET, VoteKind::Precommit, seq, 0, Some(ledger.hash()), place(k), k);
                (place(k), v.signature)
            })
            .collect();
        commits.sort_by_key(|(i, _)| *i);
        let mut results: Vec<_> = signers
            .iter()
            .map(|k| (place(k), ResultVote::sign(&NET, seq, [seq as u8; 32], [0xaa; 32], place(k), k).signature))
            .collect();
        results.sort_by_key(|(i, _)| *i);
        LedgerRecord {
            commit: Some(CommitCertificate { height: seq, round: 0, value_id: ledger.hash(), signatures: commits }),
            result: Some(ResultCertificate {
                height: seq,
                state_hash: [seq as u8; 32],
                outputs_hash: [0xaa; 32],
                signatures: results,
            }),
            ledger,
        }
    }

    /// Validators a0, a1, a2 close ledgers 1 and 2; ledger 2 hands over to a0, a1 and the
    /// newcomer b, who close ledgers 3 and 4 — with `tweak` applied to ledger 3 (the members
    /// it names, its signers by key index: a0 a1 a2 b, its inputs). Returns the chain and
    /// its genesis members.
    fn chain(tweak: impl FnOnce(&mut Membership, &mut Vec<usize>, &mut Vec<Input>)) -> (Vec<LedgerRecord>, Membership) {
        let k = keys(4);
        let (a0, a1, a2, b) = (&k[0], &k[1], &k[2], &k[3]);
        let old = members(&[a0, a1, a2], 3);
        let new = members(&[a0, a1, b], 3);
        let genesis = LedgerRecord { ledger: Ledger::genesis(old.unl(), &NET), commit: None, result: None };
        let r1 = next_record(&genesis, &old, &[a0, a1, a2], None, vec![]);
        let r2 = next_record(&r1, &old, &[a0, a1, a2], Some(new.clone()), vec![]);
        let (mut named, mut signers, mut inputs) =
            (new.clone(), vec![0, 1, 3], vec![Input::sign(&NET, 1, [9; 32], Bytes::from_static(b"hi"), b)]);
        tweak(&mut named, &mut signers, &mut inputs);
        let signing: Vec<&SigningKey> = signers.iter().map(|i| &k[*i]).collect();
        let r3 = next_record(&r2, &named, &signing, None, inputs);
        let r4 = next_record(&r3, &new, &[a0, a1, b], None, vec![]);
        (vec![genesis, r1, r2, r3, r4], old)
    }

    /// `record`'s ledger with `edit` applied to its body; its certificates stay as they were.
    fn rewrite(record: &mut LedgerRecord, edit: impl FnOnce(&mut LedgerBody)) {
        let mut body: LedgerBody = (*record.ledger).clone();
        edit(&mut body);
        record.ledger = Ledger::new(body);
    }

    #[test]
    fn a_chain_is_verified_across_a_hand_over_from_its_genesis_unl_alone() {
        let (records, genesis) = chain(|_, _, _| {});
        let (seq, hash) = verify_chain(records.clone(), &NET, &genesis).unwrap();
        assert_eq!((seq, hash), (4, records[4].ledger.hash()));
    }

    #[test]
    fn after_a_hand_over_the_old_members_no_longer_close_ledgers() {
        // a2, removed at ledger 2, signs ledger 3 in b's place.
        let (records, genesis) = chain(|_, signers, _| *signers = vec![0, 1, 2]);
        let err = verify_chain(records, &NET, &genesis).unwrap_err();
        assert!(matches!(err, ChainError::BadCommit { seq: 3, .. }), "{err}");
    }

    #[test]
    fn a_ledger_that_ignores_a_recorded_hand_over_is_refused() {
        // Ledger 3 claims the old members still close it.
        let (mut tampered, genesis) = chain(|_, _, _| {});
        rewrite(&mut tampered[3], |body| body.config_hash = genesis.hash());
        let err = verify_chain(tampered, &NET, &genesis).unwrap_err();
        assert!(matches!(err, ChainError::WrongMembership { seq: 3, .. }), "{err}");
        // And a chain whose ledger 3 names members nobody handed over to.
        let (records, genesis) = chain(|named, _, _| *named = Membership::new(vec![named.unl()[2]], 1).unwrap());
        let err = verify_chain(records, &NET, &genesis).unwrap_err();
        assert!(matches!(err, ChainError::WrongMembership { seq: 3, .. }), "{err}");
    }

    #[test]
    fn a_hand_over_not_certified_by_the_members_in_force_is_refused() {
        let (mut records, genesis) = chain(|_, _, _| {});
        // Ledger 2's hand-over rewritten to another UNL: its commit no longer covers it.
        rewrite(&mut records[2], |body| {
            body.next_membership = Some(Membership::new(genesis.unl()[..1].to_vec(), 1).unwrap())
        });
        let err = verify_chain(records, &NET, &genesis).unwrap_err();
        assert_eq!(err, ChainError::CommitForOtherLedger { seq: 2 });
    }

    #[test]
    fn an_input_counts_only_from_an_origin_that_is_a_member_of_its_ledger() {
        // b's input is fine in ledger 3 (b is a member); in ledger 1 it would not be.
        let (records, genesis) = chain(|_, _, _| {});
        assert!(verify_chain(records.clone(), &NET, &genesis).is_ok());
        let (records, genesis) = chain(|_, _, inputs| {
            let outsider = SigningKey::generate(&mut rand::rngs::OsRng);
            inputs.push(Input::sign(&NET, 2, [9; 32], Bytes::from_static(b"x"), &outsider));
        });
        let err = verify_chain(records, &NET, &genesis).unwrap_err();
        assert!(matches!(err, ChainError::BadInput { seq: 3, .. }), "{err}");
    }
}
