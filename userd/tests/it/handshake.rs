//! docs/user-protocol.md steps 1–3 over the wire: the challenge, good helos, and each strict check
//! failing with an error frame followed by a close.

use crate::support::*;
use ed25519_dalek::Signer;
use futures::SinkExt;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_good_helo_as_text_or_binary_authenticates() {
    let node = Node::start().await;
    for binary in [false, true] {
        let key = hp_client::generate_key();
        let mut ws = node.raw().await;
        let challenge = read_challenge(&mut ws).await;
        let helo = helo(&key, &challenge);
        let frame = if binary { Message::binary(helo.into_bytes()) } else { Message::text(helo) };
        within(ws.send(frame)).await.unwrap();
        let user = hp_cfg::PublicKeyHex(key_bytes(&key));
        eventually("the user is registered", || node.userd().registry().contains(&user)).await;
        within(ws.send(Message::binary(b"ping?".to_vec()))).await.unwrap();
        assert_eq!(next_frame(&mut ws).await, Some(Message::binary(b"ping?".to_vec())));
    }
}

#[tokio::test]
async fn every_strict_check_refuses_with_an_error_frame_then_close() {
    let node = Node::start().await;
    let key = hp_client::generate_key();
    let other = hp_client::generate_key();
    let pubkey = hex::encode(key_bytes(&key));
    type Case = (&'static str, Box<dyn Fn(&str) -> String>);
    let cases: Vec<Case> = vec![
        ("not valid UTF-8 JSON", Box::new(|_: &str| "hello".to_string())),
        ("must be \\\"helo\\\"", Box::new(|_: &str| r#"{"type":"hi"}"#.to_string())),
        ("`sig` is missing", {
            let pubkey = pubkey.clone();
            Box::new(move |c: &str| format!(r#"{{"type":"helo","challenge":"{c}","pubkey":"{pubkey}"}}"#))
        }),
        ("`pubkey` must be 64 hex characters, found 67", {
            let key = key.clone();
            let pubkey = pubkey.clone();
            Box::new(move |c: &str| {
                helo_with(c, &format!("{pubkey};ab"), &hex::encode(key.sign(c.as_bytes()).to_bytes()))
            })
        }),
        ("`sig` must be 128 hex characters, found 129", {
            let key = key.clone();
            let pubkey = pubkey.clone();
            Box::new(move |c: &str| {
                helo_with(c, &pubkey, &format!("{}0", hex::encode(key.sign(c.as_bytes()).to_bytes())))
            })
        }),
        ("`sig` must contain only hex digits", {
            let pubkey = pubkey.clone();
            Box::new(move |c: &str| helo_with(c, &pubkey, &"x".repeat(128)))
        }),
        ("`challenge` must be 32 hex characters", {
            let key = key.clone();
            Box::new(move |c: &str| helo(&key, &format!("{c}00")))
        }),
        ("not the challenge this connection was given", {
            let key = key.clone();
            Box::new(move |_: &str| helo(&key, "00112233445566778899aabbccddeeff"))
        }),
        ("not a valid Ed25519 signature", {
            // Signed over the 16 decoded bytes instead of the hex text.
            let key = key.clone();
            let pubkey = pubkey.clone();
            Box::new(move |c: &str| {
                let bytes = hex::decode(c).unwrap();
                helo_with(c, &pubkey, &hex::encode(key.sign(&bytes).to_bytes()))
            })
        }),
        ("not a valid Ed25519 signature", {
            // Signed by another key.
            let other = other.clone();
            let pubkey = pubkey.clone();
            Box::new(move |c: &str| helo_with(c, &pubkey, &hex::encode(other.sign(c.as_bytes()).to_bytes())))
        }),
    ];
    for (expected, make) in cases {
        let mut ws = node.raw().await;
        let challenge = read_challenge(&mut ws).await;
        send_text(&mut ws, make(&challenge)).await;
        let reason = expect_refusal(&mut ws).await;
        let shown = serde_json::to_string(&reason).unwrap();
        assert!(shown.contains(expected), "reason {shown} should contain {expected}");
        assert!(node.userd().registry().is_empty());
    }
}

#[tokio::test]
async fn a_challenge_is_good_only_on_its_own_connection() {
    let node = Node::start().await;
    let key = hp_client::generate_key();
    let mut first = node.raw().await;
    let first_challenge = read_challenge(&mut first).await;
    let mut second = node.raw().await;
    let second_challenge = read_challenge(&mut second).await;
    assert_ne!(first_challenge, second_challenge);
    send_text(&mut second, helo(&key, &first_challenge)).await;
    assert!(expect_refusal(&mut second).await.contains("not the challenge this connection was given"));
}

#[tokio::test]
async fn an_unfinished_handshake_is_closed_at_the_timeout() {
    let node = Node::start_with(|s| s.connection.handshake_timeout = Duration::from_millis(300)).await;
    let started = Instant::now();
    let mut ws = node.raw().await;
    read_challenge(&mut ws).await;
    let reason = expect_refusal(&mut ws).await;
    assert_eq!(reason, "handshake not completed within 300 ms");
    assert_eq!(hp_userd::frame::handshake_timeout(Duration::from_secs(5)), "handshake not completed within 5 s");
    assert!(started.elapsed() < Duration::from_secs(3));
}
