//! docs/user-protocol.md step 4: after the handshake every frame is one input, byte for byte, and each
//! output comes back as one binary frame, byte for byte.

use crate::support::*;
use futures::SinkExt;
use hp_client::Output;
use hp_proto::v1::userd_message::Kind;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn all_256_byte_values_round_trip_byte_exact() {
    let node = Node::start().await;
    let (key, mut client) = node.user().await;
    let every_byte: Vec<u8> = (0..=255u8).collect();
    client.send(&every_byte).await.unwrap();
    assert_eq!(recv(&mut client).await, Some(Output::Data(every_byte.clone().into())));
    // consensusd received exactly those bytes, from this user.
    let inputs: Vec<_> = node
        .fake
        .kinds()
        .into_iter()
        .filter_map(|k| match k {
            Kind::Input(input) => Some(input),
            _ => None,
        })
        .collect();
    assert_eq!(inputs.len(), 1);
    assert_eq!(inputs[0].data.as_ref(), every_byte.as_slice());
    assert_eq!(inputs[0].pubkey.as_ref(), key_bytes(&key).as_slice());
}

#[tokio::test]
async fn a_text_frame_is_an_input_too_and_its_output_is_binary() {
    let node = Node::start().await;
    let key = hp_client::generate_key();
    let mut ws = node.raw().await;
    let challenge = read_challenge(&mut ws).await;
    send_text(&mut ws, helo(&key, &challenge)).await;
    within(ws.send(Message::text("héllo {\"type\":\"helo\"}"))).await.unwrap();
    assert_eq!(next_frame(&mut ws).await, Some(Message::binary("héllo {\"type\":\"helo\"}".as_bytes().to_vec())));
}

#[tokio::test]
async fn many_inputs_in_flight_all_come_back_in_order() {
    let node = Node::start().await;
    let (_, mut client) = node.user().await;
    for i in 0..200u32 {
        client.send(&i.to_be_bytes()).await.unwrap();
    }
    for i in 0..200u32 {
        assert_eq!(recv(&mut client).await, Some(Output::Data(i.to_be_bytes().to_vec().into())));
    }
}

#[tokio::test]
async fn a_refused_input_gets_the_reason_and_the_connection_stays() {
    let node = Node::start().await;
    let (_, mut client) = node.user().await;
    client.send(b"refuse:ledger is full").await.unwrap();
    assert_eq!(recv(&mut client).await, Some(Output::Error("input refused: ledger is full".into())));
    client.send(b"next").await.unwrap();
    assert_eq!(recv(&mut client).await, Some(Output::Data(b"next".to_vec().into())));
}

#[tokio::test]
async fn outputs_for_a_user_reach_only_that_user() {
    let node = Node::start().await;
    let (alice, mut alice_client) = node.user().await;
    let (_, mut bob_client) = node.user().await;
    assert!(node.fake.push_output(key_bytes(&alice), b"for alice".to_vec().into()));
    assert_eq!(recv(&mut alice_client).await, Some(Output::Data(b"for alice".to_vec().into())));
    // Bob's next frame is his own echo, not alice's output.
    bob_client.send(b"bob").await.unwrap();
    assert_eq!(recv(&mut bob_client).await, Some(Output::Data(b"bob".to_vec().into())));
}
