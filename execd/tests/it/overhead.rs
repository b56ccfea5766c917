//! The node overhead of an empty round: everything but the contract's own run time.

use crate::support::*;
use std::time::{Duration, Instant};

fn percentile(mut v: Vec<u64>, p: usize) -> u64 {
    v.sort_unstable();
    v[(v.len() - 1) * p / 100]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_round_overhead_is_measured() {
    // The sandbox (issue 20) is on in the first two; the third shows what it costs.
    for (fs, node) in [
        ("disk", Node::new("exit 0")),
        ("tmpfs", Node::on_tmpfs("exit 0")),
        ("disk, sandbox off", Node::with("exit 0", |c| c.sandbox = false)),
    ] {
        measure(fs, node).await;
    }
}

async fn measure(fs: &str, node: Node) {
    const ROUNDS: u64 = 40;
    let execd = Execd::start(&node.root);
    let mut client = execd.client();
    let (mut server, mut client_side, mut run) = (Vec::new(), Vec::new(), Vec::new());
    for seq in 1..=ROUNDS + 5 {
        let started = Instant::now();
        let reply = client.execute(proto_request(seq, "")).await.unwrap().into_inner();
        let total = started.elapsed();
        if seq > 5 {
            server.push(reply.overhead_micros);
            run.push(reply.run_micros);
            client_side.push((total - Duration::from_micros(reply.run_micros)).as_micros() as u64);
        }
    }
    println!(
        "empty round over gRPC on {fs}, {ROUNDS} rounds: node overhead (client-observed total - contract run) p50 {} µs p90 {} µs; \
         execd-reported overhead p50 {} µs p90 {} µs; contract run (fork+exec+exit) p50 {} µs",
        percentile(client_side.clone(), 50),
        percentile(client_side, 90),
        percentile(server.clone(), 50),
        percentile(server, 90),
        percentile(run, 50),
    );
}
