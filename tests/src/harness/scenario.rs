//! A fault scenario from start to verdict: a cluster running the fault contract (optionally
//! behind the [`Proxy`]), client load, the fault the test does, then [`Scenario::finish`]:
//! stop the load and drain it, let every node reach one ledger, stop the nodes, and run every
//! check of [`check`](super::check) — panicking with the problems and the logs if any fails.
//!
//! Scenarios run one at a time in a process (a global lock), since each is a whole network
//! of real processes on a small machine. Their size follows the environment, so that CI runs a
//! short version and `scripts/soak` a long one:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HP_FAULT_SECONDS` | seconds of load before and after each fault | 3 |
//! | `HP_FAULT_CLIENTS` | clients per scenario | 5 |
//! | `HP_FAULT_INTERVAL_MS` | pause between two inputs of one client | 40 |
//! | `HP_FAULT_REPEAT` | times each fault is done in one scenario (read by the tests) | 1 |
//! | `HP_FAULT_OUTAGE_SECS` | how long a node stays frozen or partitioned (tests) | 11 |
//! | `HP_FAULT_FLAPS` | partition changes in the flapping scenario (tests) | 12 |
//! | `HP_FAULT_RESULTS` | a file to append one JSON line per scenario to | none |
//! | `HP_FAULT_DEBUG` | debug logs for consensusd in the byzantine scenarios (tests) | off |
//!
//! A failed scenario's node logs are copied to `target/<profile>/fault-logs/<scenario>/`.

use super::check::{CheckOptions, NodeView, Report, check};
use super::contract;
use super::load::{Load, LoadOptions};
use super::netns::NetLab;
use super::proxy::Proxy;
use crate::{Cluster, ClusterOptions, Node, OrPanic, wait_until};
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// A number from the environment, or `default`.
/// How long a fault lasts (`HP_FAULT_OUTAGE_SECS`, 11 s by default): past the propose timeout
/// (roundtime + 1 s), the peer handshake timeout (5 s) and userd's ack timeout (10 s).
pub fn outage() -> Duration {
    Duration::from_secs(env_u64("HP_FAULT_OUTAGE_SECS", 11))
}

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// How a scenario's network is made.
pub struct ScenarioOptions {
    pub nodes: usize,
    pub roundtime_ms: u64,
    /// Route peers through a [`Proxy`].
    pub proxy: bool,
    /// Run each node on a host of its own: a network namespace of a [`NetLab`] (needs root).
    pub netns: bool,
    /// Overrides the config's `threshold`.
    pub threshold: Option<f64>,
    /// Nodes that get a config but are not started (their key is played by the test).
    pub not_started: Vec<usize>,
    pub load: LoadOptions,
    /// More changes to each node's config.
    pub edit: Option<crate::cluster::ConfigEdit>,
}

impl Default for ScenarioOptions {
    fn default() -> Self {
        Self {
            nodes: 5,
            roundtime_ms: 300,
            proxy: false,
            netns: false,
            threshold: None,
            not_started: Vec::new(),
            load: LoadOptions {
                clients: env_u64("HP_FAULT_CLIENTS", 5) as usize,
                interval: Duration::from_millis(env_u64("HP_FAULT_INTERVAL_MS", 40)),
                ..LoadOptions::default()
            },
            edit: None,
        }
    }
}

/// What a finished scenario left to check.
pub struct Collected {
    pub views: Vec<NodeView>,
    pub record: super::load::LoadRecord,
    pub options: CheckOptions,
    /// Problems found while stopping.
    pub problems: Vec<String>,
}

/// A running scenario.
pub struct Scenario {
    pub name: String,
    pub cluster: Cluster,
    pub proxy: Option<Arc<Proxy>>,
    load: Option<Load>,
    started: Instant,
    check: CheckOptions,
    finished: bool,
    /// Dropped after the cluster and the load: processes and clients are gone before their
    /// hosts.
    pub netlab: Option<NetLab>,
    // Last: released after the cluster is gone.
    _serial: MutexGuard<'static, ()>,
}

impl Scenario {
    /// Starts the network (every node but `not_started`) and the load, and waits until the
    /// load is being served.
    pub fn start(name: &str, options: ScenarioOptions) -> Self {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let proxy = options.proxy.then(Proxy::new);
        let edit_proxy = proxy.clone();
        let threshold = options.threshold;
        let extra = options.edit;
        let edit: crate::cluster::ConfigEdit = Box::new(move |i, cfg| {
            if let Some(p) = &edit_proxy {
                p.rewire(i, cfg);
            }
            if let Some(t) = threshold {
                cfg.threshold = t;
            }
            if let Some(e) = &extra {
                e(i, cfg);
            }
        });
        let netlab = options.netns.then(|| NetLab::new(options.nodes));
        let hosts = netlab.as_ref().map(|lab| {
            (0..options.nodes).map(|i| crate::Host { ip: lab.ip(i), exec_prefix: lab.exec_prefix(i) }).collect()
        });
        let mut cluster = Cluster::create(ClusterOptions {
            nodes: options.nodes,
            contract: Some(contract::path()),
            roundtime_ms: options.roundtime_ms,
            edit: Some(edit),
            hosts,
            ..ClusterOptions::default()
        })
        .or_panic();
        for i in 0..options.nodes {
            if !options.not_started.contains(&i) {
                cluster.nodes[i].start().or_panic();
            }
        }
        for node in cluster.nodes.iter_mut().filter(|n| n.is_running()) {
            node.wait_ready(Duration::from_secs(60)).or_panic();
        }
        let urls: Vec<String> = cluster.nodes.iter().filter(|n| n.is_running()).map(Node::url).collect();
        let mut scenario = Self {
            name: name.to_string(),
            cluster,
            netlab,
            proxy,
            load: None,
            started,
            check: CheckOptions::default(),
            finished: false,
            _serial: serial,
        };
        if options.load.clients > 0 {
            let load = Load::start(urls, options.load);
            load.wait_answered(20, Duration::from_secs(60));
            scenario.load = Some(load);
        }
        scenario
    }

    pub fn node(&mut self, i: usize) -> &mut Node {
        self.cluster.node(i)
    }

    pub fn load(&self) -> &Load {
        self.load.as_ref().unwrap_or_else(|| panic!("scenario without load"))
    }

    /// Lets the load run for `HP_FAULT_SECONDS` (the scenario's steady phase).
    pub fn run_load(&self) {
        std::thread::sleep(Duration::from_secs(env_u64("HP_FAULT_SECONDS", 3)));
    }

    /// Waits until the cluster serves `more` further outputs (it has recovered).
    pub fn expect_progress(&self, more: u64, timeout: Duration) {
        if let Some(load) = &self.load {
            load.wait_answered(more, timeout);
        }
    }

    /// Waits until every running node closed ledger `seq` or later.
    pub fn wait_all_at(&self, seq: u64, timeout: Duration) {
        self.cluster.wait_all_at(seq, timeout).or_panic();
    }

    /// Every running node reaches the highest ledger any of them holds now (the lagging ones
    /// caught up).
    pub fn wait_all_at_tip(&self, timeout: Duration) {
        self.wait_all_at(self.max_lcl(), timeout);
    }

    /// One node cut off under load, then reconnected: `cut` isolates node `node`; the others
    /// must serve `progress` more outputs and `node` must have fallen behind (asserted) after
    /// the outage ([`outage`]); `heal` reconnects it, and it must catch up while the load is
    /// served again.
    pub fn cut_off(&self, node: usize, cut: impl FnOnce(), heal: impl FnOnce(), progress: u64, timeout: Duration) {
        self.run_load();
        cut();
        self.expect_progress(progress, timeout);
        std::thread::sleep(outage());
        let (behind, others) = (self.cluster.nodes[node].lcl_seq(), self.max_lcl());
        assert!(behind + 3 < others, "node {} is at {behind}, the others at {others}: it was not cut off", node + 1);
        heal();
        self.wait_all_at_tip(timeout);
        self.expect_progress(progress, timeout);
        self.run_load();
    }

    /// The highest last-closed ledger among running nodes.
    pub fn max_lcl(&self) -> u64 {
        self.cluster.nodes.iter().filter(|n| n.is_running()).map(Node::lcl_seq).max().unwrap_or(0)
    }

    /// Changes what the final check tolerates.
    pub fn check_options(&mut self) -> &mut CheckOptions {
        &mut self.check
    }

    /// Stops the load (letting clients drain), brings every node to one ledger, stops them,
    /// and reads what the checks need: each node's store and log, the clients' record, and
    /// the problems found on the way (a node that did not catch up, a dirty exit).
    pub fn collect(&mut self) -> Collected {
        self.finished = true;
        let record = match self.load.take() {
            Some(load) => load.finish(),
            None => super::load::LoadRecord { clients: vec![] },
        };
        let target = self.max_lcl() + 2;
        let mut problems = Vec::new();
        for node in self.cluster.nodes.iter().filter(|n| n.is_running()) {
            let reached = crate::wait::poll_until(Duration::from_secs(60), || {
                node.status().and_then(|s| s["lcl_seq"].as_u64()).filter(|l| *l >= target)
            });
            if reached.is_none() {
                problems.push(format!("node {} did not reach ledger {target} after the load", node.index + 1));
            }
        }
        // A node that rebuilt its chain from peers runs the ledgers after storing them: its
        // execution may still be behind its last ledger. With no more inputs the state stops
        // changing, so every node must come to the same state.
        let running: Vec<&Node> = self.cluster.nodes.iter().filter(|n| n.is_running()).collect();
        let state_of = |n: &Node| n.status().and_then(|s| s["state_hash"].as_str().map(str::to_string));
        let converged = crate::wait::poll_until(Duration::from_secs(90), || {
            let states: Vec<Option<String>> = running.iter().map(|n| state_of(n)).collect();
            (states.iter().all(Option::is_some) && states.windows(2).all(|w| w[0] == w[1])).then_some(())
        });
        if converged.is_none() {
            let states: Vec<String> =
                running.iter().map(|n| format!("node {}: {:?}", n.index + 1, state_of(n))).collect();
            problems.push(format!("the nodes' states did not converge after the load: {}", states.join(", ")));
        }
        let statuses: Vec<_> = self.cluster.nodes.iter().map(|n| n.status()).collect();
        for node in self.cluster.nodes.iter_mut().filter(|n| n.is_running()) {
            match node.stop().or_panic() {
                Some(0) => {}
                code => problems.push(format!("node {} exited with {code:?} on SIGTERM", node.index + 1)),
            }
        }
        let views: Vec<NodeView> = self
            .cluster
            .nodes
            .iter()
            .zip(statuses)
            .filter(|(n, _)| n.dir.join("hist").join("ledger.sqlite").exists())
            .map(|(n, s)| NodeView::read(n, s))
            .collect();
        let mut options = self.check.clone();
        options.min_tip = options.min_tip.max(target);
        Collected { views, record, options, problems }
    }

    /// [`Self::collect`], then every check; records the result and panics on any problem.
    pub fn finish(mut self) -> Report {
        let Collected { views, record, options, mut problems } = self.collect();
        let mut report = check(&views, &record, &options);
        problems.append(&mut report.problems);
        report.problems = problems;
        let secs = self.started.elapsed().as_secs_f64();
        eprintln!(
            "scenario {}: {} in {secs:.1}s — {}",
            self.name,
            if report.ok() { "pass" } else { "FAIL" },
            report.stats
        );
        record_result(&self.name, report.ok(), secs, &report);
        if !report.ok() {
            let kept = self.keep_logs();
            let logs = self.cluster.logs();
            panic!(
                "scenario {} failed: {} problems\n{}\nfull node logs: {kept}\n{logs}",
                self.name,
                report.problems.len(),
                report.describe(40)
            );
        }
        report
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if !self.finished && std::thread::panicking() {
            let kept = self.keep_logs();
            eprintln!("scenario {} failed before its checks; full node logs: {kept}", self.name);
            let report = Report { problems: vec!["a step of the scenario failed".into()], ..Default::default() };
            record_result(&self.name, false, self.started.elapsed().as_secs_f64(), &report);
        }
    }
}

impl Scenario {
    /// Copies every node's log to `target/<profile>/fault-logs/<scenario>/` (the cluster's own
    /// folder goes away with it); returns that folder.
    fn keep_logs(&self) -> String {
        let slug: String = self.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        let dir = crate::bins::bin_dir().or_panic().join("fault-logs").join(slug);
        let _ = std::fs::remove_dir_all(&dir);
        if std::fs::create_dir_all(&dir).is_err() {
            return "(not kept)".into();
        }
        for node in &self.cluster.nodes {
            let _ =
                std::fs::copy(node.dir.join("log").join("node.log"), dir.join(format!("node{}.log", node.index + 1)));
        }
        dir.display().to_string()
    }
}

fn record_result(name: &str, ok: bool, secs: f64, report: &Report) {
    let Some(path) = std::env::var_os("HP_FAULT_RESULTS") else { return };
    let line = serde_json::json!({
        "scenario": name,
        "result": if ok { "pass" } else { "fail" },
        "seconds": (secs * 10.0).round() / 10.0,
        "ledgers": report.stats.ledgers,
        "sent": report.stats.sent,
        "executed": report.stats.executed,
        "received": report.stats.received,
        "errors": report.stats.errors,
        "broken_conns": report.stats.broken_conns,
        "lost_on_broken": report.stats.lost_on_broken,
        "problems": report.problems.iter().take(5).collect::<Vec<_>>(),
    });
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

/// Waits for `what` with a deadline, for scenario steps.
pub fn step<T>(what: &str, timeout: Duration, check: impl FnMut() -> Option<T>) -> T {
    wait_until(what, timeout, check)
}
