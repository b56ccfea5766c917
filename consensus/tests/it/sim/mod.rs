//! An in-process simulated network of consensus machines, checked for agreement, validity,
//! exactly-once and liveness over many seeds.
//!
//! `SIM_SEEDS=N` runs N seeds per configuration instead of the default; `SIM_SEED=S` runs
//! only seed S (to reproduce a failure: the failure message names the seed); `SIM_DUMP=1`
//! also prints every honest machine's state when a run fails.
//!
//! Checked on every run: agreement (one value per height across all nodes), validity (every
//! stored certificate has `q` distinct valid precommits for its ledger, which links to the
//! previous one), exactly-once (no input in two ledgers or twice in one), no honest node ever
//! signs two different votes or proposals for one (height, round, kind) (across crashes), no
//! honest node is accused of equivocation, and, where `q` honest nodes exist, liveness: every
//! submitted input is in every honest node's chain within `LIVENESS_BOUND` of virtual time
//! after the faults stop.

mod rng;
mod world;

use std::time::Instant;

use world::{Config, Stats, World};

const SIZES: [usize; 4] = [3, 4, 5, 7];

/// Seeds to run: `SIM_SEED` alone, else `0..SIM_SEEDS` (default `default`).
fn seeds(default: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let count = std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    (0..count).collect()
}

/// Runs every seed of every config; panics naming the config and seed of the first failure.
fn check(test: &str, configs: &[Config], default_seeds: u64) -> Vec<Stats> {
    let started = Instant::now();
    let mut all = Vec::new();
    for cfg in configs {
        for seed in seeds(default_seeds) {
            match World::new(cfg.clone(), seed).run() {
                Ok(stats) => all.push(stats),
                Err(why) => panic!(
                    "simulation '{}' (n = {}) failed with seed {seed}: {why}\nreproduce with SIM_SEED={seed} cargo test -p hp-consensus --test it {test}",
                    cfg.name, cfg.n
                ),
            }
        }
    }
    let heights: u64 = all.iter().map(|s| s.heights).sum();
    let max_round = all.iter().map(|s| s.max_round).max().unwrap_or(0);
    let equivocations: u64 = all.iter().map(|s| s.equivocations_seen).sum();
    let fetched: u64 = all.iter().map(|s| s.without_value).sum();
    let events: u64 = all.iter().map(|s| s.events).sum();
    eprintln!(
        "{}: {} runs, {heights} heights, max round {max_round}, {equivocations} equivocations seen, {fetched} fetched values, {events} events in {:?}",
        configs.first().map_or("", |c| c.name),
        all.len(),
        started.elapsed()
    );
    all
}

fn configs(name: &'static str, byzantine: impl Fn(usize) -> usize, base: Config) -> Vec<Config> {
    SIZES.iter().map(|&n| Config { name, n, byzantine: byzantine(n), ..base.clone() }).collect()
}

const BASE: Config = Config {
    name: "",
    n: 0,
    byzantine: 0,
    lossy: false,
    crashes: false,
    push_rounds: false,
    inputs: 6,
    liveness: true,
};

#[test]
fn clean_network_decides_every_input_exactly_once() {
    check("clean_network_decides", &configs("clean_network", |_| 0, BASE), 50);
}

#[test]
fn lossy_network_never_forks_and_decides_every_input_once_it_heals() {
    let base = Config { lossy: true, ..BASE };
    check("lossy_network_never_forks", &configs("lossy_network", |_| 0, base), 200);
}

#[test]
fn crashed_nodes_resume_without_equivocating_and_every_input_is_decided() {
    let base = Config { lossy: true, crashes: true, ..BASE };
    check("crashed_nodes_resume", &configs("crashes", |_| 0, base), 200);
}

/// q = ceil(0.8 n): n - q byzantine nodes leave q honest ones, enough for progress.
#[test]
fn up_to_n_minus_q_equivocators_neither_fork_nor_stall_the_network() {
    let base = Config { lossy: true, crashes: true, ..BASE };
    let configs: Vec<Config> =
        configs("byzantine_live", |n| n - world_quorum(n), base).into_iter().filter(|c| c.byzantine > 0).collect();
    check("up_to_n_minus_q", &configs, 200);
}

/// Up to 2q - n - 1 byzantine nodes (more than can be outvoted for liveness): safety only.
#[test]
fn up_to_2q_minus_n_minus_1_equivocators_cannot_fork_the_network() {
    let base = Config { lossy: true, crashes: true, push_rounds: true, liveness: false, ..BASE };
    let stats = check("up_to_2q_minus_n", &configs("byzantine_safety", |n| 2 * world_quorum(n) - n - 1, base), 200);
    // The script must actually get decisions through, or the check proves little.
    assert!(stats.iter().map(|s| s.heights).sum::<u64>() > 0);
}

fn world_quorum(n: usize) -> usize {
    hp_consensus::quorum_for(n, 0.8).expect("quorum")
}
