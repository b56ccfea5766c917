//! hp-bench and the C example contract against real nodes (the binaries of this build).
//! Each test starts its own cluster on free ports and stops it when done, also on failure.

mod echo_c;
mod smoke;

use std::time::Duration;

/// Connects a fresh user to `url`, sends `input` (again, while the node asks for that) and
/// returns its output.
pub fn send_one(url: &str, input: &[u8], within: Duration) -> Vec<u8> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + within;
        let key = hp_client::generate_key();
        let client = tokio::time::timeout_at(deadline, hp_client::Client::connect(url, &key))
            .await
            .unwrap_or_else(|_| panic!("no handshake with {url} within {within:?}"))
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        let (mut tx, mut rx) = client.split();
        let output = hp_bench::load::round_trip(&mut tx, &mut rx, input, deadline)
            .await
            .unwrap_or_else(|e| panic!("input {:?}: {e}", String::from_utf8_lossy(input)));
        output.to_vec()
    })
}
