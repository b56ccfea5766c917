//! Processes dying under load: one component, one whole node, every node at once, and a node
//! whose data is gone (docs/ARCHITECTURE.md). Five nodes with the default threshold: q = 4, so one node
//! may be down while the rest go on.

use hp_tests::OrPanic;
use hp_tests::harness::faults::{kill_9_node, kill_component, kill_contract, wipe};
use hp_tests::harness::{Scenario, ScenarioOptions, env_u64};
use std::time::Duration;

/// Outputs the cluster must serve after a fault to count as recovered.
const PROGRESS: u64 = 40;
const RECOVER: Duration = Duration::from_secs(90);

/// How many times each fault is repeated (`HP_FAULT_REPEAT`, soak runs raise it).
fn repeat() -> u64 {
    env_u64("HP_FAULT_REPEAT", 1)
}

#[test]
fn baseline_load_without_faults_passes_every_check() {
    let s = Scenario::start("baseline", ScenarioOptions::default());
    s.run_load();
    s.finish();
}

fn kill_one_component(name: &str, component: &str) {
    let s = Scenario::start(name, ScenarioOptions::default());
    for round in 0..repeat() {
        s.run_load();
        // A different node each round; clients sit on every node.
        let node = &s.cluster.nodes[1 + (round as usize % 4)];
        kill_component(node, component);
        s.expect_progress(PROGRESS, RECOVER);
    }
    s.run_load();
    s.finish();
}

#[test]
fn kill_9_of_execd_under_load_loses_and_doubles_nothing() {
    kill_one_component("kill -9 execd", "execd");
}

#[test]
fn kill_9_of_userd_under_load_loses_nothing_accepted() {
    kill_one_component("kill -9 userd", "userd");
}

#[test]
fn kill_9_of_consensusd_under_load_loses_and_doubles_nothing() {
    kill_one_component("kill -9 consensusd", "consensusd");
}

#[test]
fn kill_9_of_a_whole_node_under_load_the_rest_go_on_and_it_rejoins() {
    let mut s = Scenario::start("kill -9 whole node", ScenarioOptions::default());
    for round in 0..repeat() {
        let victim = 2 + (round as usize % 3);
        s.run_load();
        kill_9_node(s.node(victim));
        // q = 4 of 5: the four others keep closing ledgers and serving their users.
        s.expect_progress(PROGRESS, RECOVER);
        s.run_load();
        s.node(victim).start().or_panic();
        s.node(victim).wait_ready(RECOVER).or_panic();
        s.wait_all_at_tip(RECOVER);
        s.expect_progress(PROGRESS, RECOVER);
    }
    s.finish();
}

#[test]
fn kill_9_of_every_node_at_once_then_all_restart() {
    let mut s = Scenario::start("restart all nodes at once", ScenarioOptions::default());
    for _ in 0..repeat() {
        s.run_load();
        for i in 0..s.cluster.nodes.len() {
            kill_9_node(s.node(i));
        }
        for i in 0..s.cluster.nodes.len() {
            s.node(i).start().or_panic();
        }
        for node in &mut s.cluster.nodes {
            node.wait_ready(RECOVER).or_panic();
        }
        s.expect_progress(PROGRESS, RECOVER);
    }
    s.run_load();
    s.finish();
}

#[test]
fn a_node_whose_hist_and_state_were_wiped_rebuilds_from_its_peers() {
    let mut s = Scenario::start("wiped node rebuilds", ScenarioOptions::default());
    for round in 0..repeat() {
        let victim = 1 + (round as usize % 4);
        s.run_load();
        // Stopped cleanly, so what it accepted reached its peers; then its disk is lost.
        assert_eq!(s.node(victim).stop().or_panic(), Some(0));
        wipe(&s.cluster.nodes[victim]);
        s.run_load();
        s.node(victim).start().or_panic();
        s.node(victim).wait_ready(RECOVER).or_panic();
        s.wait_all_at_tip(RECOVER);
        s.expect_progress(PROGRESS, RECOVER);
    }
    s.run_load();
    s.finish();
}

#[test]
fn a_contract_killed_on_one_node_is_outvoted_and_the_node_repairs_its_state() {
    let mut s = Scenario::start("kill -9 of the contract on one node", ScenarioOptions::default());
    // Its run ends with SIGKILL on node 3 only: node 3's result differs from the other four's,
    // it withholds its outputs, copies the certified state from a peer and goes on.
    s.check_options().expected_log = vec!["own result differs".into(), "differs from the network".into()];
    s.check_options().may_withhold = vec![2];
    for _ in 0..repeat() {
        s.run_load();
        assert!(kill_contract(&s.cluster.nodes[2], Duration::from_secs(20)), "no contract run caught on node 3");
        s.expect_progress(PROGRESS, RECOVER);
    }
    s.run_load();
    s.wait_all_at_tip(RECOVER);
    s.finish();
}
