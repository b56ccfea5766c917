//! "Nothing a user sends can crash or stall the node" (DESIGN.md §3): idle and garbage peers,
//! the connection limit, users that stop reading or answering.

use crate::support::*;
use futures::SinkExt;
use hp_client::Output;
use hp_userd::outbox::OutboxLimits;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn idle_garbage_and_http_peers_do_not_delay_an_honest_user() {
    let node = Node::start().await;
    // 200 silent TCP peers and 100 that upgraded but never say helo.
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(node.addr).await.unwrap());
    }
    let mut upgraded = Vec::new();
    for _ in 0..100 {
        upgraded.push(node.raw().await);
    }
    // A peer that streams garbage.
    let mut garbage = TcpStream::connect(node.addr).await.unwrap();
    let garbage_task = tokio::spawn(async move {
        let chunk = vec![0xA5u8; 16 * 1024];
        let mut sent = 0usize;
        while garbage.write_all(&chunk).await.is_ok() {
            sent += chunk.len();
            if sent > 64 * 1024 * 1024 {
                return false; // never cut off: a failure
            }
        }
        true
    });
    // A plain HTTP request.
    let mut http = TcpStream::connect(node.addr).await.unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();

    let started = Instant::now();
    let (_, mut client) = node.user().await;
    client.send(b"honest").await.unwrap();
    assert_eq!(recv(&mut client).await, Some(Output::Data(b"honest".to_vec().into())));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "an honest round trip took {took:?}");

    assert!(within(garbage_task).await.unwrap(), "the garbage peer was never cut off");
    let mut answer = Vec::new();
    let _ = within(http.read_to_end(&mut answer)).await;
    assert!(!String::from_utf8_lossy(&answer).contains("101 Switching"));
    drop((idle, upgraded));
}

#[tokio::test]
async fn connections_past_max_connections_are_closed() {
    let node = Node::start_with(|s| s.max_connections = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut ws = node.raw().await;
        read_challenge(&mut ws).await;
        held.push(ws);
    }
    let refused = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(node.url())).await.unwrap();
    assert!(refused.is_err(), "a fourth connection must not get through");
    drop(held.pop());
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(node.url()).await {
            read_challenge(&mut ws).await;
            break;
        }
        assert!(Instant::now() < deadline, "a slot never freed up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_user_that_never_reads_is_dropped() {
    let node = Node::start_with(|s| {
        s.connection.outbox = OutboxLimits { frames: 16, bytes: 1024 * 1024, write_timeout: Duration::from_secs(2) }
    })
    .await;
    let key = hp_client::generate_key();
    let mut ws = node.raw().await;
    let challenge = read_challenge(&mut ws).await;
    send_text(&mut ws, helo(&key, &challenge)).await;
    let user = hp_cfg::PublicKeyHex(key_bytes(&key));
    eventually("the user is registered", || node.userd().registry().contains(&user)).await;
    // Meanwhile another user is served normally.
    let (_, mut other) = node.user().await;
    let chunk = bytes::Bytes::from(vec![0u8; 256 * 1024]);
    let deadline = Instant::now() + PATIENCE;
    while node.userd().registry().contains(&user) {
        assert!(Instant::now() < deadline, "a user that never reads was never dropped");
        node.fake.push_output(key_bytes(&key), chunk.clone());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    other.send(b"fine").await.unwrap();
    assert_eq!(recv(&mut other).await, Some(Output::Data(b"fine".to_vec().into())));
    drop(ws);
}

#[tokio::test]
async fn a_user_that_does_not_answer_pings_is_dropped_and_one_that_does_is_kept() {
    let node = Node::start_with(|s| {
        s.connection.ping_interval = Duration::from_millis(200);
        s.connection.pong_timeout = Duration::from_millis(300);
    })
    .await;
    // A library client reads (and so answers pings) while waiting in recv.
    let (alive_key, mut alive) = node.user().await;
    let reader = tokio::spawn(async move {
        let got = alive.recv().await;
        (alive, got)
    });
    // A raw client that stops reading after its helo never answers.
    let key = hp_client::generate_key();
    let mut ws = node.raw().await;
    let challenge = read_challenge(&mut ws).await;
    within(ws.send(Message::text(helo(&key, &challenge)))).await.unwrap();
    let silent = hp_cfg::PublicKeyHex(key_bytes(&key));
    eventually("the silent user is registered", || node.userd().registry().contains(&silent)).await;
    let started = Instant::now();
    eventually("the silent user is dropped", || !node.userd().registry().contains(&silent)).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(node.userd().registry().contains(&hp_cfg::PublicKeyHex(key_bytes(&alive_key))));
    node.fake.push_output(key_bytes(&alive_key), b"still alive".to_vec().into());
    let (_alive, got) = within(reader).await.unwrap();
    assert_eq!(got, Some(Output::Data(b"still alive".to_vec().into())));
}
