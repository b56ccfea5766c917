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
        let connected = match from {
            Some(from) => Client::connect_from(url, from, &key).await,
            None => Client::connect(url, &key).await,
        };
        let mut client = connected.unwrap_or_else(|e| panic!("connect {url}: {e}"));
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            client.send(input).await.unwrap_or_else(|e| panic!("send: {e}"));
            let output = tokio::time::timeout_at(deadline, client.recv()).await;
            match output {
                Ok(Some(Output::Data(data))) => return data.to_vec(),
                // A node whose userd has not yet reached consensusd (just started or a
                // component restarting) refuses with a reason asking to send again later.
                Ok(Some(Output::Error(reason))) if reason.contains("again later") => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Ok(Some(Output::Error(reason))) => panic!("node refused the input: {reason}"),
                Ok(None) => panic!("connection closed before the output came"),
                Err(_) => panic!("no output within {timeout:?}"),
            }
        }
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
