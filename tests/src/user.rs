//! Talking to a node as a user does, through the `hp-client` library.

use hp_client::{Client, Output};
use std::time::Duration;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("runtime: {e}"))
}

/// Connects with a fresh key, sends `input`, and returns the first output (panics on an error
/// frame or after `timeout`).
pub fn send_one(url: &str, input: &[u8], timeout: Duration) -> Vec<u8> {
    send_one_as(url, None, input, timeout)
}

/// [`send_one`] from the local address `from` (127.0.0.x acts as another host).
pub fn send_one_from(url: &str, from: std::net::IpAddr, input: &[u8], timeout: Duration) -> Vec<u8> {
    send_one_as(url, Some(from), input, timeout)
}

fn send_one_as(url: &str, from: Option<std::net::IpAddr>, input: &[u8], timeout: Duration) -> Vec<u8> {
    runtime().block_on(async {
        let key = hp_client::generate_key();
        let deadline = tokio::time::Instant::now() + timeout;
        let connected = match from {
            Some(from) => tokio::time::timeout_at(deadline, Client::connect_from(url, from, &key)).await,
            None => tokio::time::timeout_at(deadline, Client::connect(url, &key)).await,
        };
        let client = connected
            .unwrap_or_else(|_| panic!("no handshake with {url} within {timeout:?}"))
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        let (mut tx, mut rx) = client.split();
        // A node whose userd has not yet reached consensusd (just started or a component
        // restarting) refuses with a reason asking to send again later: round_trip does.
        let output = hp_localnet::load::round_trip(&mut tx, &mut rx, input, deadline)
            .await
            .unwrap_or_else(|e| panic!("input {:?}: {e}", String::from_utf8_lossy(input)));
        output.to_vec()
    })
}

/// Connects with a fresh key, sends `input`, and returns the first `count` outputs (panics on
/// an error frame or after `timeout`).
pub fn send_and_collect(url: &str, input: &[u8], count: usize, timeout: Duration) -> Vec<Vec<u8>> {
    runtime().block_on(async {
        let key = hp_client::generate_key();
        let deadline = tokio::time::Instant::now() + timeout;
        let client = tokio::time::timeout_at(deadline, Client::connect(url, &key))
            .await
            .unwrap_or_else(|_| panic!("no handshake with {url} within {timeout:?}"))
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        let (mut tx, mut rx) = client.split();
        let first = hp_localnet::load::round_trip(&mut tx, &mut rx, input, deadline)
            .await
            .unwrap_or_else(|e| panic!("input {:?}: {e}", String::from_utf8_lossy(input)));
        let mut outputs = vec![first.to_vec()];
        while outputs.len() < count {
            match tokio::time::timeout_at(deadline, rx.next_output()).await {
                Ok(Ok(Some(Output::Data(data)))) => outputs.push(data.to_vec()),
                other => panic!("expected output {} of {count}, got {other:?}", outputs.len() + 1),
            }
        }
        outputs
    })
}

/// Connects one user per input to the given nodes (round robin) and sends each its input;
/// returns each user's first output, in input order.
pub fn send_many(urls: &[String], inputs: &[Vec<u8>], timeout: Duration) -> Vec<Vec<u8>> {
    runtime().block_on(async {
        let mut clients = Vec::new();
        for (i, input) in inputs.iter().enumerate() {
            let url = &urls[i % urls.len()];
            let key = hp_client::generate_key();
            let mut client = Client::connect(url, &key).await.unwrap_or_else(|e| panic!("connect {url}: {e}"));
            client.send(input).await.unwrap_or_else(|e| panic!("send: {e}"));
            clients.push(client);
        }
        let mut outputs = Vec::new();
        for mut client in clients {
            match tokio::time::timeout(timeout, client.recv()).await {
                Ok(Some(Output::Data(data))) => outputs.push(data.to_vec()),
                other => panic!("expected an output, got {other:?}"),
            }
        }
        outputs
    })
}
