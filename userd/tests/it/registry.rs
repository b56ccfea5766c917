//! docs/user-protocol.md step 5: one connection per key; and what a disconnect leaves behind.

use crate::support::*;
use hp_client::Output;
use hp_proto::v1::userd_message::Kind;

fn connected_events(node: &Node, key: [u8; 32]) -> (usize, usize) {
    let kinds = node.fake.kinds();
    let connected = kinds.iter().filter(|k| matches!(k, Kind::Connected(c) if c.pubkey.as_ref() == key)).count();
    let gone = kinds.iter().filter(|k| matches!(k, Kind::Disconnected(d) if d.pubkey.as_ref() == key)).count();
    (connected, gone)
}

#[tokio::test]
async fn a_second_connection_with_the_same_key_replaces_the_first() {
    let node = Node::start().await;
    let (key, mut first) = node.user().await;
    let mut second = node.user_with(&key).await;
    let Some(Output::Error(reason)) = recv(&mut first).await else { panic!("expected an error frame") };
    assert!(reason.contains("replaced"), "{reason}");
    assert_eq!(recv(&mut first).await, None);
    second.send(b"still here").await.unwrap();
    assert_eq!(recv(&mut second).await, Some(Output::Data(b"still here".to_vec().into())));
    assert_eq!(node.userd().registry().len(), 1);
    // consensusd saw the user connect once and never leave.
    assert_eq!(connected_events(&node, key_bytes(&key)), (1, 0));
}

#[tokio::test]
async fn a_disconnect_removes_the_user_and_tells_consensusd() {
    let node = Node::start().await;
    let (key, client) = node.user().await;
    let user = hp_cfg::PublicKeyHex(key_bytes(&key));
    eventually("consensusd hears of the user", || connected_events(&node, key_bytes(&key)) == (1, 0)).await;
    client.close().await.unwrap();
    eventually("the registry forgets the user", || !node.userd().registry().contains(&user)).await;
    eventually("consensusd hears the user left", || connected_events(&node, key_bytes(&key)) == (1, 1)).await;
    assert_eq!(node.userd().status().users, 0);
}
