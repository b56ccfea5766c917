//! The client library: handshake, send/recv, split, and refusals surfaced with the node's reason.

use crate::support::*;
use futures::{SinkExt, StreamExt};
use hp_client::{Client, ClientError, Output};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn connect_send_and_receive() {
    let node = Node::start().await;
    let key = hp_client::generate_key();
    let mut client = Client::connect(&node.url(), &key).await.unwrap();
    assert_eq!(client.public_key(), key.verifying_key().to_bytes());
    client.send(b"\x00\xffhi").await.unwrap();
    assert_eq!(client.recv().await, Some(Output::Data(b"\x00\xffhi".to_vec().into())));
    client.send(b"refuse:nope").await.unwrap();
    assert_eq!(client.recv().await, Some(Output::Error("input refused: nope".into())));
    client.close().await.unwrap();
}

#[tokio::test]
async fn split_halves_work_concurrently() {
    let node = Node::start().await;
    let client = Client::connect(&node.url(), &hp_client::generate_key()).await.unwrap();
    let (mut tx, mut rx) = client.split();
    let sender = tokio::spawn(async move {
        for i in 0..100u8 {
            tx.send(&[i]).await.unwrap();
        }
        tx
    });
    for i in 0..100u8 {
        assert_eq!(rx.recv().await, Some(Output::Data(vec![i].into())));
    }
    sender.await.unwrap();
}

#[tokio::test]
async fn a_refused_handshake_carries_the_nodes_reason() {
    // A node that refuses every helo.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(socket).await.unwrap();
        let challenge = r#"{"hotpocket":0.1,"type":"public_challenge","challenge":"ef97b2286de21927d48cc54fcab401c3"}"#;
        ws.send(Message::text(challenge)).await.unwrap();
        let _helo = ws.next().await;
        ws.send(Message::text(r#"{"hotpocket":0.1,"type":"error","reason":"go away"}"#)).await.unwrap();
        let _ = ws.close(None).await;
    });
    match Client::connect(&url, &hp_client::generate_key()).await {
        Err(ClientError::Refused(reason)) => assert_eq!(reason, "go away"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let url = format!("ws://127.0.0.1:{}/", closed_port());
    let err = Client::connect(&url, &hp_client::generate_key()).await.unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
}
