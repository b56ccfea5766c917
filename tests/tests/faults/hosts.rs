//! The same kind of harm as `network`, made by the kernel instead of the test's proxy: every
//! node runs on a host of its own (a network namespace on a bridge, `harness::netns`), a
//! partition takes a host's link down, and a slow WAN is every link limited to a trickle of
//! bandwidth with a short queue (`tc tbf`: bursts are delayed, then dropped). Five nodes,
//! q = 4. Needs root, as CI has.

use hp_tests::harness::load::LoadOptions;
use hp_tests::harness::{Scenario, ScenarioOptions};
use std::time::Duration;

const PROGRESS: u64 = 40;
const RECOVER: Duration = Duration::from_secs(90);

fn on_own_hosts() -> ScenarioOptions {
    ScenarioOptions { netns: true, ..Default::default() }
}

#[test]
fn a_host_whose_link_goes_down_falls_behind_and_catches_up_when_it_returns() {
    let s = Scenario::start("hosts: node 5's link down, up again", on_own_hosts());
    let lab = s.netlab.as_ref().unwrap();
    s.cut_off(4, || lab.set_link(4, false), || lab.set_link(4, true), PROGRESS, RECOVER);
    s.finish();
}

/// The load is fixed whatever `HP_FAULT_*` say: 5 clients, an input each 160 ms — about half
/// of what the starved links carry (about 60 of the load's inputs/s since every input carries
/// its origin's 64-byte signature, which more than doubled the wire size of these tiny inputs),
/// so that bursts (a proposal and its ledger to four peers) still overflow the 20 ms queues.
/// At an input each 80 ms, now about the links' capacity, it fell into the overload stall in
/// every run (no 40 outputs in 90 s), as at 40 ms before the signatures: offered that much, the
/// network falls behind its users, as a proposal carries its whole ledger and a ledger of
/// everything pending takes longer to send over such a link than the propose timeout allows,
/// for many rounds (a known limit, see SCENARIOS.md).
#[test]
fn a_starved_network_that_queues_and_drops_bursts_loses_forks_and_doubles_nothing() {
    let load = LoadOptions { clients: 5, interval: Duration::from_millis(160), ..LoadOptions::default() };
    let s = Scenario::start("hosts: every link 256 kbit/s, 20 ms queue", ScenarioOptions { load, ..on_own_hosts() });
    let lab = s.netlab.as_ref().unwrap();
    lab.limit_all(256, 20);
    s.run_load();
    s.expect_progress(PROGRESS, RECOVER);
    s.run_load();
    let (held, dropped) = lab.limit_counters();
    eprintln!("the links held back {held} packets and dropped {dropped}");
    assert!(held > 0, "the bandwidth limit never held anything back: it did not bite");
    lab.repair_all();
    s.finish();
}
