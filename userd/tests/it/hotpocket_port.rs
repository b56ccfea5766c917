//! The HotPocket 0.6 port under clients that misbehave: it shares the seed port's pending pool
//! (a flood of sockets from one address takes only its share), a handshake answer that does
//! not verify closes the connection, and a signed-in client that sends what the node cannot
//! read is closed after a few such messages. And what a client is told of the node: the UNL in
//! force, and whether the node is in sync.

use crate::support::{Node, PATIENCE, within};
use ed25519_dalek::{Signer, SigningKey};
use futures::{SinkExt, StreamExt};
use hp_userd::HotPocketSettings;
use hp_userd::hotpocket::connection::MAX_BAD_MESSAGES;
use hp_userd::hotpocket::handshake::ed_hex;
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

async fn node_with_hotpocket(edit: impl FnOnce(&mut hp_userd::Settings)) -> (Node, SocketAddr) {
    let node = Node::start_with(|s| {
        let run = s.session.socket.parent().map(|p| p.to_path_buf()).unwrap_or_default();
        s.hotpocket = Some(HotPocketSettings {
            tls_port: None,
            plain_port: Some(0),
            cert: run.join("none.pem"),
            key_file: run.join("none.key"),
            contract_id: "test-contract".into(),
            contract_version: "1.0".into(),
            node_key: SigningKey::from_bytes(&[5; 32]),
            unl: vec![SigningKey::from_bytes(&[5; 32]).verifying_key().to_bytes()],
            peers: Vec::new(),
            consensusd_socket: s.session.socket.clone(),
            execd_socket: run.join("execd.sock"),
        });
        edit(s);
    })
    .await;
    let addr = node.userd().hotpocket_addrs().plain.first().copied().expect("the plain HotPocket port");
    (node, addr)
}

async fn challenge_of(ws: &mut crate::support::Ws) -> String {
    let Some(Ok(Message::Text(text))) = within(ws.next()).await else { panic!("no user_challenge") };
    let m: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(m["type"], "user_challenge");
    m["challenge"].as_str().expect("a challenge").to_string()
}

async fn closed_with(ws: &mut crate::support::Ws) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await.expect("the node closes the connection") {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return None,
        }
    }
}

#[tokio::test]
async fn a_response_signed_with_another_key_closes_the_connection() {
    let (_node, addr) = node_with_hotpocket(|_| {}).await;
    let (mut ws, _) = within(tokio_tungstenite::connect_async(format!("ws://{addr}"))).await.expect("upgrade");
    let challenge = challenge_of(&mut ws).await;
    let claimed = SigningKey::from_bytes(&[1; 32]);
    let signer = SigningKey::from_bytes(&[2; 32]);
    let response = json!({
        "type": "user_challenge_response",
        "pubkey": ed_hex(&claimed.verifying_key().to_bytes()),
        "sig": hex::encode(signer.sign(challenge.as_bytes()).to_bytes()),
        "server_challenge": "00".repeat(16),
        "protocol": "json",
    });
    ws.send(Message::text(response.to_string())).await.expect("send");
    assert_eq!(closed_with(&mut ws).await, Some(CloseCode::Policy));
}

#[tokio::test]
async fn a_signed_in_client_sending_unreadable_messages_is_closed() {
    let (_node, addr) = node_with_hotpocket(|_| {}).await;
    let (mut ws, _) = within(tokio_tungstenite::connect_async(format!("ws://{addr}"))).await.expect("upgrade");
    let proof = signed_in(&mut ws).await;
    assert_eq!(proof["type"], "server_challenge_response", "{proof}");
    for _ in 0..=MAX_BAD_MESSAGES {
        if ws.send(Message::text("this is not a message")).await.is_err() {
            break;
        }
    }
    assert_eq!(closed_with(&mut ws).await, Some(CloseCode::Policy));
}

#[tokio::test]
async fn sockets_past_one_addresss_pending_share_are_closed_on_the_hotpocket_port_too() {
    let (_node, addr) = node_with_hotpocket(|s| {
        s.admission.max_unauth_connections = 16;
        s.admission.max_unauth_per_ip = 3;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(within(TcpStream::connect(addr)).await.expect("connect"));
    }
    let mut closed = 0;
    for socket in &mut held[3..] {
        let mut byte = [0u8; 1];
        if matches!(tokio::time::timeout(PATIENCE, socket.read(&mut byte)).await, Ok(Ok(0) | Err(_))) {
            closed += 1;
        }
    }
    assert_eq!(closed, 7, "every socket past max_unauth_per_ip is closed");
}

/// Signs a user in (asking for the node's proof) and returns the node's
/// `server_challenge_response`.
async fn signed_in(ws: &mut crate::support::Ws) -> Value {
    let challenge = challenge_of(ws).await;
    let user = SigningKey::from_bytes(&[1; 32]);
    let response = json!({
        "type": "user_challenge_response",
        "pubkey": ed_hex(&user.verifying_key().to_bytes()),
        "sig": hex::encode(user.sign(challenge.as_bytes()).to_bytes()),
        "server_challenge": "00".repeat(16),
        "protocol": "json",
    });
    ws.send(Message::text(response.to_string())).await.expect("send");
    let Some(Ok(Message::Text(proof))) = within(ws.next()).await else { panic!("no server_challenge_response") };
    serde_json::from_str(&proof).expect("JSON")
}

/// The next message of type `kind`, skipping others.
async fn next_of(ws: &mut crate::support::Ws, kind: &str) -> Value {
    loop {
        let Some(Ok(message)) = within(ws.next()).await else { panic!("the connection ended") };
        let Message::Text(text) = message else { continue };
        let m: Value = serde_json::from_str(&text).expect("JSON");
        if m["type"] == kind {
            return m;
        }
    }
}

#[tokio::test]
async fn a_subscribed_user_is_told_when_the_node_falls_out_of_sync_and_when_it_is_back() {
    let (node, addr) = node_with_hotpocket(|_| {}).await;
    node.fake.set_unl(&[SigningKey::from_bytes(&[5; 32]).verifying_key().to_bytes()]);
    let (mut ws, _) = within(tokio_tungstenite::connect_async(format!("ws://{addr}"))).await.expect("upgrade");
    signed_in(&mut ws).await;
    let subscribe = json!({"type": "subscription", "channel": "ledger_event", "enabled": true});
    ws.send(Message::text(subscribe.to_string())).await.expect("send");
    for (in_sync, status) in [(false, "desync"), (true, "synced")] {
        node.fake.set_in_sync(in_sync);
        let event = next_of(&mut ws, "ledger_event").await;
        assert_eq!(
            (event["event"].as_str(), event["vote_status"].as_str()),
            (Some("vote_status"), Some(status)),
            "{event}"
        );
    }
}

#[tokio::test]
async fn a_user_is_given_the_unl_in_force_and_then_told_only_of_its_changes() {
    let (node, addr) = node_with_hotpocket(|_| {}).await;
    let key = |seed: u8| SigningKey::from_bytes(&[seed; 32]).verifying_key().to_bytes();
    let ed_keys = |unl: &[[u8; 32]]| -> Vec<String> {
        let mut keys: Vec<String> = unl.iter().map(ed_hex).collect();
        keys.sort();
        keys
    };
    // consensusd says the UNL changed from hp.cfg's one key to two.
    let in_force = [key(5), key(6)];
    node.fake.set_unl(&in_force);
    let (mut ws, _) = within(tokio_tungstenite::connect_async(format!("ws://{addr}"))).await.expect("upgrade");
    let proof = signed_in(&mut ws).await;
    let mut given: Vec<String> =
        proof["unl"].as_array().into_iter().flatten().filter_map(|k| k.as_str().map(String::from)).collect();
    given.sort();
    assert_eq!(given, ed_keys(&in_force), "the handshake names the UNL in force: {proof}");
    let subscribe = json!({"type": "subscription", "channel": "unl_change", "enabled": true});
    ws.send(Message::text(subscribe.to_string())).await.expect("send");
    // The next change is the first this user hears of: not the one its handshake already had.
    let next = [key(5), key(6), key(7)];
    node.fake.set_unl(&next);
    let event = next_of(&mut ws, "unl_change").await;
    let mut told: Vec<String> =
        event["unl"].as_array().into_iter().flatten().filter_map(|k| k.as_str().map(String::from)).collect();
    told.sort();
    assert_eq!(told, ed_keys(&next), "{event}");
}
