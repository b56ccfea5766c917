//! A cluster of real nodes in a temporary folder: `hotpocket run` per node, each node's log in
//! its `log/node.log`. Dropping the [`Cluster`] kills every process whose command line names
//! the cluster's folder — supervisors, daemons and contracts — so nothing outlives a test.

use crate::bins::{bin, bin_dir};
use crate::ports::free_port;
use crate::wait::wait_until;
use hp_cfg::{Config, ContractDir, NodeKey};
use serde_json::Value;
use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A change to node `i`'s config before it is written.
pub type ConfigEdit = Box<dyn Fn(usize, &mut Config)>;

/// Where a node runs when not on 127.0.0.1 of this host: its address, and the command prefix
/// that starts a program there (such as `ip netns exec <ns>`).
#[derive(Clone, Debug)]
pub struct Host {
    pub ip: std::net::IpAddr,
    pub exec_prefix: Vec<String>,
}

/// How a cluster is made.
pub struct ClusterOptions {
    pub nodes: usize,
    /// A contract binary to install; the default contract (upper-cases input) otherwise.
    pub contract: Option<PathBuf>,
    pub roundtime_ms: u64,
    /// Changes to each node's config before it is written.
    pub edit: Option<ConfigEdit>,
    /// One host per node (see [`crate::harness::netns`]); all on 127.0.0.1 when `None`.
    pub hosts: Option<Vec<Host>>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self { nodes: 1, contract: None, roundtime_ms: 200, edit: None, hosts: None }
    }
}

/// One node of a cluster.
pub struct Node {
    pub index: usize,
    pub dir: PathBuf,
    pub peerport: u16,
    pub pubport: u16,
    pub pubkey: String,
    /// The address its ports are on.
    pub ip: std::net::IpAddr,
    exec_prefix: Vec<String>,
    process: Option<Child>,
}

pub struct Cluster {
    // Kept for its Drop (removes the folder); declared last so processes die first.
    pub nodes: Vec<Node>,
    root: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// Writes the node folders and starts every node; returns once all are serving.
    pub fn start(options: ClusterOptions) -> Self {
        let cluster = Self::create(options);
        let mut cluster = cluster;
        for i in 0..cluster.nodes.len() {
            cluster.nodes[i].start();
        }
        for node in &cluster.nodes {
            node.wait_ready(Duration::from_secs(30));
        }
        cluster
    }

    /// Writes the node folders without starting anything.
    pub fn create(options: ClusterOptions) -> Self {
        let tmp = tempfile::Builder::new().prefix("hp-cluster-").tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let root = tmp.path().to_path_buf();
        let keys: Vec<NodeKey> = (0..options.nodes).map(|_| NodeKey::generate()).collect();
        let unl: Vec<[u8; 32]> = keys.iter().map(NodeKey::public_bytes).collect();
        // One network, one id: peers of different networks refuse each other.
        let contract_id = hp_cfg::config::new_contract_id();
        let ports: Vec<(u16, u16)> = (0..options.nodes).map(|_| (free_port(), free_port())).collect();
        let localhost = Host { ip: std::net::Ipv4Addr::LOCALHOST.into(), exec_prefix: Vec::new() };
        let hosts = options.hosts.clone().unwrap_or_else(|| vec![localhost; options.nodes]);
        assert_eq!(hosts.len(), options.nodes, "one host per node");
        let mut nodes = Vec::new();
        for (i, key) in keys.into_iter().enumerate() {
            let dir = root.join(format!("node{}", i + 1));
            let contract_dir = ContractDir::new(&dir);
            hp_cfg::create::make_folders(&contract_dir).unwrap_or_else(|e| panic!("{e}"));
            let binary = match &options.contract {
                Some(path) => {
                    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    fs::copy(path, contract_dir.bin().join(&name)).unwrap_or_else(|e| panic!("copy contract: {e}"));
                    format!("bin/{name}")
                }
                None => {
                    let target = contract_dir.bin().join("contract.sh");
                    fs::write(&target, hp_cfg::create::DEFAULT_CONTRACT).unwrap_or_else(|e| panic!("{e}"));
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
                    "bin/contract.sh".into()
                }
            };
            let pubkey = key.public_hex();
            let mut cfg = Config::new_single(key);
            cfg.binary = binary;
            cfg.unl = unl.clone();
            cfg.contract_id = contract_id.clone();
            cfg.ip = Some(hosts[i].ip);
            cfg.peerport = ports[i].0;
            cfg.pubport = Some(ports[i].1);
            cfg.peers = (0..options.nodes)
                .filter(|j| *j != i)
                .map(|j| std::net::SocketAddr::new(hosts[j].ip, ports[j].0).to_string())
                .collect();
            cfg.roundtime_ms = options.roundtime_ms;
            cfg.pubmaxcpm = 0;
            // HP_NODE_LOGLEVEL (a tracing filter) to chase a rare failure with more detail.
            cfg.loglevel = std::env::var("HP_NODE_LOGLEVEL").unwrap_or_else(|_| "info".into());
            if let Some(edit) = &options.edit {
                edit(i, &mut cfg);
            }
            cfg.save(&contract_dir.config_file()).unwrap_or_else(|e| panic!("{e}"));
            nodes.push(Node {
                index: i,
                dir,
                peerport: ports[i].0,
                pubport: ports[i].1,
                pubkey,
                ip: hosts[i].ip,
                exec_prefix: hosts[i].exec_prefix.clone(),
                process: None,
            });
        }
        Self { nodes, root, _tmp: tmp }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn node(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }

    /// Waits until every running node has closed at least ledger `seq`.
    pub fn wait_all_at(&self, seq: u64, timeout: Duration) {
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            wait_until(&format!("node {} to reach ledger {seq}", node.index + 1), timeout, || {
                node.status().and_then(|s| s["lcl_seq"].as_u64()).filter(|l| *l >= seq)
            });
        }
    }

    /// The last log lines of every node, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push_str(&format!("---- node {} ----\n{}\n", node.index + 1, node.log_tail(60)));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.process.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        kill_processes_mentioning(&self.root);
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// Kills (SIGKILL) every process whose command line mentions `path`.
pub fn kill_processes_mentioning(path: &Path) {
    let needle = path.to_string_lossy().into_owned();
    for _ in 0..3 {
        let pids = pids_mentioning(&needle);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pids of processes whose command line contains `needle`.
pub fn pids_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = fs::read_dir("/proc") else { return vec![] };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| *pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

impl Node {
    /// Starts `hotpocket run` for this node, appending its output to `log/node.log`.
    pub fn start(&mut self) {
        let log_path = self.dir.join("log").join("node.log");
        let log = OpenOptions::new().create(true).append(true).open(&log_path).unwrap_or_else(|e| panic!("{e}"));
        let err = log.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let hotpocket = bin("hotpocket");
        let mut command = match self.exec_prefix.split_first() {
            None => Command::new(&hotpocket),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&hotpocket);
                c
            }
        };
        let child = command
            .arg("run")
            .arg(&self.dir)
            .env("HP_BIN_DIR", bin_dir())
            // Nodes stop with the test runner, even one killed from outside.
            .env("HP_EXIT_WITH_PARENT", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start hotpocket: {e}"));
        self.process = Some(child);
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    pub fn supervisor_pid(&self) -> Option<i32> {
        self.process.as_ref().map(|c| c.id() as i32)
    }

    /// SIGTERM, then waits for a clean exit; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.process.take()?;
        let _ =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let status = wait_until("node to stop", Duration::from_secs(10), || child.try_wait().ok().flatten());
        status.code()
    }

    /// `kill -9` of the whole node: the supervisor and every process of this node.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        kill_processes_mentioning(&self.dir);
    }

    /// Waits until `hotpocket status` shows all three components running.
    pub fn wait_ready(&self, timeout: Duration) {
        wait_until(&format!("node {} to be ready\n{}", self.index + 1, self.log_tail(40)), timeout, || {
            let s = self.status()?;
            let all = ["userd", "consensusd", "execd"].iter().all(|c| s["components"][c]["state"] == "running");
            all.then_some(())
        });
    }

    /// `hotpocket status --json`, or `None` when the node does not answer.
    pub fn status(&self) -> Option<Value> {
        let out = Command::new(bin("hotpocket")).arg("status").arg(&self.dir).arg("--json").output().ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    pub fn lcl_seq(&self) -> u64 {
        self.status().and_then(|s| s["lcl_seq"].as_u64()).unwrap_or(0)
    }

    /// `hotpocket ledger --json`: one object per stored ledger.
    pub fn ledgers(&self) -> Vec<Value> {
        let out = Command::new(bin("hotpocket"))
            .arg("ledger")
            .arg(&self.dir)
            .arg("--json")
            .output()
            .unwrap_or_else(|e| panic!("hotpocket ledger: {e}"));
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// `hotpocket verify`: exit code and output.
    pub fn verify(&self) -> (i32, String) {
        let out =
            Command::new(bin("hotpocket")).arg("verify").arg(&self.dir).output().unwrap_or_else(|e| panic!("{e}"));
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", std::net::SocketAddr::new(self.ip, self.pubport))
    }

    /// Everything the node logged so far (all four processes).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("log").join("node.log")).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A component's pid from `hotpocket status`.
    pub fn component_pid(&self, component: &str) -> Option<i32> {
        self.status()?["components"][component]["pid"].as_i64().map(|p| p as i32).filter(|p| *p > 0)
    }
}
