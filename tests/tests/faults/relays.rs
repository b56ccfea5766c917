//! A stranger sitting between two nodes: every peer link runs through the test's proxy, which
//! plays the relay. It reads what it carries, and it can swallow one link while keeping it open.
//! Before peer links were encrypted and watched by heartbeats, the relay read every user input
//! in the clear, and swallowing the newest link between two nodes cut that pair off for good
//! (each sent only over the newest link, and an open TCP connection looked alive forever).

use hp_tests::harness::proxy::Mode;
use hp_tests::harness::{Scenario, ScenarioOptions};
use std::time::Duration;

const PROGRESS: u64 = 40;
const RECOVER: Duration = Duration::from_secs(90);

#[test]
fn a_relay_between_nodes_carries_only_ciphertext() {
    let s = Scenario::start(
        "relay between every pair reads the traffic",
        ScenarioOptions { proxy: true, ..Default::default() },
    );
    let proxy = s.proxy.clone().unwrap();
    proxy.sniff(Box::new(holds_a_load_input));
    let before = proxy.bytes_relayed();
    s.run_load();
    s.expect_progress(PROGRESS, RECOVER);
    let carried = proxy.bytes_relayed() - before;
    assert!(carried > 100_000, "the relay carried only {carried} bytes: the nodes did not talk through it");
    assert_eq!(proxy.sniffed(), 0, "the relay read user inputs in {} chunks of {carried} bytes", proxy.sniffed());
    s.finish();
}

/// Whether `chunk` holds an input of the load, `c<client>-<n>;`, with n of two digits or more:
/// in random bytes that turns up about once in 10^14 positions.
fn holds_a_load_input(chunk: &[u8]) -> bool {
    chunk.windows(6).enumerate().any(|(at, w)| {
        w[0] == b'c'
            && (b'0'..=b'4').contains(&w[1])
            && w[2] == b'-'
            && w[3].is_ascii_digit()
            && w[4].is_ascii_digit()
            && {
                let digits = chunk[at + 3..].iter().take_while(|b| b.is_ascii_digit()).count();
                chunk.get(at + 3 + digits) == Some(&b';')
            }
    })
}

#[test]
fn a_relay_that_swallows_one_link_does_not_cut_off_a_pair_of_nodes() {
    // Three nodes, q = 3: nodes 1 and 2 not hearing each other stops the network.
    let s = Scenario::start(
        "relay swallows the newest link of a pair",
        ScenarioOptions { nodes: 3, proxy: true, ..Default::default() },
    );
    let proxy = s.proxy.clone().unwrap();
    s.run_load();
    // Make node 1's own link to node 2 the newest link of the pair: cut it, let node 1 dial again.
    let dialed = proxy.connections(0, 1);
    proxy.set(0, 1, Mode::Drop);
    hp_tests::wait_until("the relay to cut node 1's link", RECOVER, || {
        (proxy.open_connections(0, 1) == 0).then_some(())
    });
    proxy.set(0, 1, Mode::Pass);
    hp_tests::wait_until("node 1 to dial node 2 again", RECOVER, || (proxy.connections(0, 1) > dialed).then_some(()));
    s.expect_progress(PROGRESS, RECOVER);
    // The relay now swallows that link both ways and keeps it open: a black hole.
    proxy.set(0, 1, Mode::Stall);
    s.expect_progress(PROGRESS, RECOVER);
    s.wait_all_at_tip(RECOVER);
    proxy.heal();
    s.expect_progress(PROGRESS, RECOVER);
    s.finish();
}
