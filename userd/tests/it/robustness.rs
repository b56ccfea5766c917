//! "Nothing a user sends can crash or stall the node" (docs/user-protocol.md): idle and garbage peers,
//! the connection limit, users that stop reading or answering.

use crate::support::*;
use futures::SinkExt;
use hp_client::Output;
use hp_userd::outbox::OutboxLimits;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Local addresses on the loopback interface that act as distinct hosts.
fn host(third: u8, fourth: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, third, fourth)
}

#[tokio::test]
async fn idle_garbage_and_http_peers_do_not_delay_an_honest_user() {
    let node = Node::start_with(|s| s.admission.max_unauth_connections = 1024).await;
    // 200 silent TCP peers and 100 that upgraded but never say helo, each from its own host.
    let mut idle = Vec::new();
    for i in 0..200u8 {
        idle.push(node.tcp_from(host(1, i + 1)).await);
    }
    let mut upgraded = Vec::new();
    for i in 0..100u8 {
        upgraded.push(node.raw_from(host(2, i + 1)).await);
    }
    // A peer that streams garbage.
    let mut garbage = node.tcp_from(host(3, 1)).await;
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
    let mut http = node.tcp_from(host(3, 2)).await;
    http.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();

    let started = Instant::now();
    let (_, mut client) = node.user_from(host(0, 2)).await;
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

/// Whether the node has closed `socket` (EOF or reset) within [`PATIENCE`].
async fn closed_by_node(socket: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(tokio::time::timeout(PATIENCE, socket.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
}

/// Issue 16 point 6. Before the pools were split, 64 half-open sockets from one address took
/// every one of the 16 `max_connections` slots and a user from anywhere was turned away.
#[tokio::test]
async fn a_flood_from_one_address_does_not_keep_a_user_from_another_address_out() {
    let node = Node::start_with(|s| {
        s.admission.max_connections = 16;
        s.admission.max_unauth_connections = 16;
        s.admission.max_unauth_per_ip = 4;
    })
    .await;
    let flooder = host(0, 1);
    let mut flood = Vec::new();
    for _ in 0..64 {
        flood.push(node.tcp_from(flooder).await);
    }
    // Past its share, the flooder's sockets are closed before a byte is read.
    let mut closed = 0;
    for socket in &mut flood[4..] {
        closed += usize::from(closed_by_node(socket).await);
    }
    assert_eq!(closed, 60, "every socket past max_unauth_per_ip is closed");
    let (_, mut client) = node.user_from(host(0, 2)).await;
    client.send(b"still served").await.unwrap();
    assert_eq!(recv(&mut client).await, Some(Output::Data(b"still served".to_vec().into())));
    drop(flood);
}

#[tokio::test]
async fn pending_connections_past_max_unauth_connections_are_closed_until_a_slot_frees() {
    let node = Node::start_with(|s| s.admission.max_unauth_connections = 3).await;
    let mut held = Vec::new();
    for i in 0..3 {
        let mut ws = node.raw_from(host(4, i + 1)).await;
        read_challenge(&mut ws).await;
        held.push(ws);
    }
    let mut refused = node.tcp_from(host(4, 9)).await;
    assert!(closed_by_node(&mut refused).await, "a fourth pending connection must not get through");
    drop(held.pop());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let tcp = node.tcp_from(host(4, 10)).await;
        let url = node.url();
        if let Ok((mut ws, _)) =
            tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(tcp)).await
        {
            read_challenge(&mut ws).await;
            break;
        }
        assert!(Instant::now() < deadline, "a slot never freed up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A separate pool: signed-in users keep being served while strangers hold every pending slot.
#[tokio::test]
async fn signed_in_users_are_served_while_the_pending_pool_is_full() {
    let node = Node::start_with(|s| {
        s.admission.max_unauth_connections = 4;
        s.admission.max_unauth_per_ip = 1;
    })
    .await;
    let (_, mut client) = node.user_from(host(5, 1)).await;
    let mut strangers = Vec::new();
    for i in 0..4 {
        let mut ws = node.raw_from(host(5, 10 + i)).await;
        read_challenge(&mut ws).await;
        strangers.push(ws);
    }
    let mut late = node.tcp_from(host(5, 20)).await;
    assert!(closed_by_node(&mut late).await, "the pending pool is full");
    client.send(b"served").await.unwrap();
    assert_eq!(recv(&mut client).await, Some(Output::Data(b"served".to_vec().into())));
    drop(strangers);
}

#[tokio::test]
async fn a_user_past_max_connections_is_told_the_node_is_full_and_gets_in_once_one_leaves() {
    let node = Node::start_with(|s| s.admission.max_connections = 2).await;
    let (_, first) = node.user_from(host(6, 1)).await;
    let (_, _second) = node.user_from(host(6, 2)).await;
    let key = hp_client::generate_key();
    let refused = within(hp_client::Client::connect_from(&node.url(), IpAddr::V4(host(6, 3)), &key)).await;
    match refused {
        Err(hp_client::ClientError::Refused(reason)) => assert!(reason.contains("max_connections"), "{reason}"),
        other => panic!("a third user must be told the node is full, got {other:?}"),
    }
    drop(first);
    let deadline = Instant::now() + PATIENCE;
    loop {
        if hp_client::Client::connect_from(&node.url(), IpAddr::V4(host(6, 3)), &key).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the slot of the user who left never freed up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Even signing in with fresh keys, one address holds only `max_connections_per_ip` of the
/// signed-in pool.
#[tokio::test]
async fn users_signing_in_from_one_address_hold_only_its_share() {
    let node = Node::start_with(|s| {
        s.admission.max_connections = 8;
        s.admission.max_connections_per_ip = 3;
    })
    .await;
    let flooder = IpAddr::V4(host(7, 1));
    let mut signed_in = Vec::new();
    let mut refusals = Vec::new();
    for _ in 0..10 {
        match within(hp_client::Client::connect_from(&node.url(), flooder, &hp_client::generate_key())).await {
            Ok(client) => signed_in.push(client),
            Err(hp_client::ClientError::Refused(reason)) => refusals.push(reason),
            Err(e) => panic!("unexpected failure: {e}"),
        }
    }
    assert_eq!(signed_in.len(), 3);
    assert!(refusals.iter().all(|r| r.contains("max_connections_per_ip")), "{refusals:?}");
    let (_, mut client) = node.user_from(host(7, 2)).await;
    client.send(b"other host").await.unwrap();
    assert_eq!(recv(&mut client).await, Some(Output::Data(b"other host".to_vec().into())));
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
