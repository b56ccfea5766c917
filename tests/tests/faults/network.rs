//! The network between nodes failing under load: a node frozen past every timeout, partitions
//! through the test's own proxy (a clean cut and a black hole), and a network that keeps
//! changing shape. Five nodes, q = 4.

use hp_tests::harness::faults::{pause, resume};
use hp_tests::harness::proxy::Mode;
use hp_tests::harness::{Scenario, ScenarioOptions, env_u64, outage};
use std::time::Duration;

const PROGRESS: u64 = 40;
const RECOVER: Duration = Duration::from_secs(90);

fn behind_proxy() -> ScenarioOptions {
    ScenarioOptions { proxy: true, ..Default::default() }
}

#[test]
fn a_node_frozen_with_sigstop_past_every_timeout_resumes_and_catches_up() {
    let s = Scenario::start("SIGSTOP node past timeouts, SIGCONT", ScenarioOptions::default());
    s.run_load();
    pause(&s.cluster.nodes[2]);
    // The other four have a quorum: they go on.
    s.expect_progress(PROGRESS, RECOVER);
    std::thread::sleep(outage());
    resume(&s.cluster.nodes[2]);
    s.wait_all_at_tip(RECOVER);
    s.expect_progress(PROGRESS, RECOVER);
    s.run_load();
    s.finish();
}

#[test]
fn a_node_cut_off_from_the_others_catches_up_when_the_partition_heals() {
    let s = Scenario::start("partition 4|1 (cut), heal", behind_proxy());
    let proxy = s.proxy.clone().unwrap();
    let (cut, heal) = (|| proxy.partition(&[&[0, 1, 2, 3], &[4]], Mode::Drop), || proxy.heal());
    s.cut_off(4, cut, heal, PROGRESS, RECOVER);
    s.finish();
}

#[test]
fn a_black_holed_node_catches_up_when_its_links_carry_traffic_again() {
    let s = Scenario::start("partition 4|1 (black hole), heal", behind_proxy());
    let proxy = s.proxy.clone().unwrap();
    let (cut, heal) = (|| proxy.partition(&[&[0, 1, 2, 3], &[4]], Mode::Stall), || proxy.heal());
    s.cut_off(4, cut, heal, PROGRESS, RECOVER);
    s.finish();
}

#[test]
fn a_split_with_no_quorum_on_either_side_closes_nothing_then_resumes() {
    let s = Scenario::start("partition 2|3 (no quorum), heal", behind_proxy());
    let proxy = s.proxy.clone().unwrap();
    s.run_load();
    proxy.partition(&[&[0, 1], &[2, 3, 4]], Mode::Drop);
    // q = 4: neither side may close a ledger. Let in-flight ledgers settle, then watch.
    let stalled: Vec<u64> = hp_tests::wait_until("ledgers in flight to settle", RECOVER, || {
        let before: Vec<u64> = s.cluster.nodes.iter().map(|n| n.lcl_seq()).collect();
        std::thread::sleep(Duration::from_millis(1500));
        let after: Vec<u64> = s.cluster.nodes.iter().map(|n| n.lcl_seq()).collect();
        (before == after).then_some(after)
    });
    std::thread::sleep(outage());
    let later: Vec<u64> = s.cluster.nodes.iter().map(|n| n.lcl_seq()).collect();
    assert_eq!(stalled, later, "a ledger closed without a quorum during the split");
    proxy.heal();
    s.expect_progress(PROGRESS, RECOVER);
    s.wait_all_at_tip(RECOVER);
    s.run_load();
    s.finish();
}

#[test]
fn a_network_that_keeps_changing_shape_never_forks() {
    let s = Scenario::start("flapping partitions", behind_proxy());
    let proxy = s.proxy.clone().unwrap();
    s.run_load();
    // A fixed sequence of shapes, each held about a second: quorum sides, no-quorum splits,
    // black holes; some leave a majority, some do not.
    let shapes: [(&[&[usize]], Mode); 6] = [
        (&[&[0, 1, 2, 3], &[4]], Mode::Drop),
        (&[&[0, 1], &[2, 3, 4]], Mode::Drop),
        (&[&[1, 2, 3, 4], &[0]], Mode::Stall),
        (&[&[0, 2, 4], &[1, 3]], Mode::Stall),
        (&[&[0, 1, 2], &[3], &[4]], Mode::Drop),
        (&[&[0, 1, 3, 4], &[2]], Mode::Drop),
    ];
    let rounds = env_u64("HP_FAULT_FLAPS", 12) as usize;
    for k in 0..rounds {
        let (groups, mode) = shapes[k % shapes.len()];
        proxy.partition(groups, mode);
        std::thread::sleep(Duration::from_millis(1200));
    }
    proxy.heal();
    s.expect_progress(PROGRESS, RECOVER);
    s.wait_all_at_tip(RECOVER);
    s.run_load();
    s.finish();
}
