//! The session with consensusd: snapshot first, events in order, and surviving a consensusd
//! restart (docs/ARCHITECTURE.md, §7).

use crate::support::*;
use hp_client::Output;
use hp_proto::v1::userd_message::Kind;
use hp_userd::frame::{CONSENSUS_UNAVAILABLE, SESSION_BROKE};
use std::time::Duration;

#[tokio::test]
async fn a_session_opens_with_a_snapshot_then_events_in_order() {
    let node = Node::start().await;
    let (key, mut client) = node.user().await;
    client.send(b"one").await.unwrap();
    assert_eq!(recv(&mut client).await, Some(Output::Data(b"one".to_vec().into())));
    let kinds = node.fake.kinds();
    assert!(matches!(&kinds[0], Kind::Snapshot(s) if s.pubkeys.is_empty()), "{kinds:?}");
    assert!(matches!(&kinds[1], Kind::Connected(c) if c.pubkey.as_ref() == key_bytes(&key)), "{kinds:?}");
    assert!(matches!(&kinds[2], Kind::Input(i) if i.data.as_ref() == b"one"), "{kinds:?}");
    assert_eq!(kinds.len(), 3);
}

#[tokio::test]
async fn consensusd_restart_tells_users_meanwhile_then_resends_the_snapshot() {
    let mut node = Node::start().await;
    let (key, mut client) = node.user().await;
    client.send(b"before").await.unwrap();
    assert_eq!(recv(&mut client).await, Some(Output::Data(b"before".to_vec().into())));

    node.fake.stop();
    eventually("userd sees consensusd gone", || !node.userd().session().is_up()).await;
    assert!(!node.userd().status().consensus_up);
    client.send(b"while down").await.unwrap();
    assert_eq!(recv(&mut client).await, Some(Output::Error(CONSENSUS_UNAVAILABLE.into())));
    let user = hp_cfg::PublicKeyHex(key_bytes(&key));
    assert!(node.userd().registry().contains(&user), "the connection is kept");

    node.fake.restart().unwrap();
    eventually("the session reopens", || node.userd().session().is_up() && node.fake.sessions() == 2).await;
    let second: Vec<_> =
        node.fake.messages().into_iter().filter(|(s, _)| *s == 2).filter_map(|(_, m)| m.kind).collect();
    assert!(
        matches!(&second[0], Kind::Snapshot(s) if s.pubkeys.len() == 1 && s.pubkeys[0].as_ref() == key_bytes(&key)),
        "{second:?}"
    );
    client.send(b"after").await.unwrap();
    assert_eq!(recv(&mut client).await, Some(Output::Data(b"after".to_vec().into())));
    // The input sent while down never reached consensusd.
    assert!(!node.fake.kinds().iter().any(|k| matches!(k, Kind::Input(i) if i.data.as_ref() == b"while down")));
}

#[tokio::test]
async fn outputs_handed_over_again_after_a_consensusd_restart_reach_the_user_once() {
    let mut node = Node::start().await;
    let (key, mut client) = node.user().await;
    client.send(b"one").await.unwrap();
    assert_eq!(recv(&mut client).await, Some(Output::Data(b"one".to_vec().into())));

    node.fake.restart().unwrap();
    eventually("the session reopens", || node.userd().session().is_up() && node.fake.sessions() == 2).await;
    let second: Vec<_> =
        node.fake.messages().into_iter().filter(|(s, _)| *s == 2).filter_map(|(_, m)| m.kind).collect();
    assert!(matches!(&second[0], Kind::Snapshot(s) if s.delivered_through == 1), "{second:?}");
    // The restarted consensusd hands over ledger 1 again (userd has it) and then ledger 2.
    assert!(node.fake.push_output_at(1, key_bytes(&key), b"one again".to_vec().into()));
    assert!(node.fake.push_output_at(2, key_bytes(&key), b"two".to_vec().into()));
    assert_eq!(recv(&mut client).await, Some(Output::Data(b"two".to_vec().into())));
}

#[tokio::test]
async fn users_connected_while_consensusd_is_down_are_in_the_next_snapshot() {
    let mut node = Node::start().await;
    node.fake.stop();
    eventually("userd sees consensusd gone", || !node.userd().session().is_up()).await;
    let (key, mut client) = node.user().await;
    node.fake.restart().unwrap();
    eventually("the session reopens", || node.userd().session().is_up()).await;
    let kinds: Vec<_> = node.fake.messages().into_iter().filter(|(s, _)| *s == 2).filter_map(|(_, m)| m.kind).collect();
    assert!(matches!(&kinds[0], Kind::Snapshot(s) if s.pubkeys.len() == 1 && s.pubkeys[0].as_ref() == key_bytes(&key)));
    client.send(b"hi").await.unwrap();
    assert_eq!(recv(&mut client).await, Some(Output::Data(b"hi".to_vec().into())));
}

#[tokio::test]
async fn an_input_consensusd_does_not_ack_in_time_is_reported_unconfirmed() {
    let node = Node::start_with(|s| s.connection.ack_timeout = Duration::from_millis(300)).await;
    node.fake.set_ack(false);
    let (_, mut client) = node.user().await;
    client.send(b"lost?").await.unwrap();
    let Some(Output::Error(reason)) = recv(&mut client).await else { panic!("expected an error frame") };
    assert!(reason.contains("did not answer within 300 ms"), "{reason}");
}

#[tokio::test]
async fn inputs_in_flight_when_consensusd_dies_are_reported_unconfirmed() {
    let mut node = Node::start().await;
    node.fake.set_ack(false);
    let (_, mut client) = node.user().await;
    client.send(b"in flight").await.unwrap();
    eventually("consensusd holds the input", || {
        node.fake.kinds().iter().any(|k| matches!(k, Kind::Input(i) if i.data.as_ref() == b"in flight"))
    })
    .await;
    node.fake.stop();
    assert_eq!(recv(&mut client).await, Some(Output::Error(SESSION_BROKE.into())));
}
