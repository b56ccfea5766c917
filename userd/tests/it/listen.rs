//! The user port: IPv4 + IPv6 for localhost, no port for a validator-only node, the status
//! service, and shutdown.

use crate::support::*;
use hp_client::Output;
use hp_proto::v1::UserdStatusRequest;
use hp_proto::v1::userd_client::UserdClient;
use std::time::{Duration, Instant};

#[tokio::test]
async fn default_ip_listens_on_ipv4_and_ipv6_localhost() {
    let node = Node::start_with(|s| s.ip = None).await;
    let port = node.addr.port();
    let addrs: Vec<String> = node.userd().local_addrs().iter().map(|a| a.to_string()).collect();
    assert_eq!(addrs, vec![format!("127.0.0.1:{port}"), format!("[::1]:{port}")]);
    for url in [format!("ws://[::1]:{port}/"), format!("ws://127.0.0.1:{port}/"), format!("ws://localhost:{port}/")] {
        let key = hp_client::generate_key();
        let mut client = within(hp_client::Client::connect(&url, &key)).await.unwrap();
        client.send(url.as_bytes()).await.unwrap();
        assert_eq!(recv(&mut client).await, Some(Output::Data(url.as_bytes().to_vec().into())));
    }
}

#[tokio::test]
async fn without_pubport_userd_runs_and_reports_status() {
    let node = Node::start_with(|s| s.pubport = None).await;
    assert!(node.userd().local_addrs().is_empty());
    let channel = hp_daemon::ipc::channel(&node.run_dir().join("userd.sock"));
    let status = within(UserdClient::new(channel).status(UserdStatusRequest {})).await.unwrap().into_inner();
    assert_eq!(status.users, 0);
    assert!(status.listening);
    assert!(status.consensus_up);
}

#[tokio::test]
async fn status_counts_users() {
    let node = Node::start().await;
    let (_, _a) = node.user().await;
    let (_, _b) = node.user().await;
    let channel = hp_daemon::ipc::channel(&node.run_dir().join("userd.sock"));
    let status = within(UserdClient::new(channel).status(UserdStatusRequest {})).await.unwrap().into_inner();
    assert_eq!((status.users, status.listening, status.consensus_up), (2, true, true));
}

#[tokio::test]
async fn shutdown_closes_every_user_promptly_and_removes_the_socket() {
    let node = Node::start().await;
    let (_, mut authenticated) = node.user().await;
    let mut unauthenticated = node.raw().await;
    read_challenge(&mut unauthenticated).await;
    let socket = node.run_dir().join("userd.sock");
    assert!(socket.exists());
    let started = Instant::now();
    let stopping = tokio::spawn(node.stop());
    assert_eq!(recv(&mut authenticated).await, None, "the user gets a close");
    let reason = expect_refusal(&mut unauthenticated).await;
    assert!(reason.contains("shutting down"), "{reason}");
    within(stopping).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!socket.exists());
}
