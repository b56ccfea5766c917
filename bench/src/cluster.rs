//! A local cluster of real nodes: N contract folders under one root, peers and UNL wired
//! together on free ports of 127.0.0.1, one `hotpocket run` per node (its output in the node's
//! `log/node.log`). [`LocalCluster::stop`] — also run on drop, so on errors and Ctrl-C —
//! sends SIGTERM to every supervisor, waits for them with a deadline, then kills whatever
//! still runs from the cluster's folder.

use crate::BenchError;
use hp_cfg::{Config, ContractDir, NodeKey};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use std::fs::{self, OpenOptions};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the supervisors get to stop their daemons after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// How often start-up and shutdown are polled.
const POLL: Duration = Duration::from_millis(50);
/// The components `hotpocket status` must show as running for a node to be ready.
const COMPONENTS: [&str; 3] = ["userd", "consensusd", "execd"];

/// What the cluster runs.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub nodes: usize,
    /// The last `down` nodes get a folder and a config but are not started.
    pub down: usize,
    /// The contract executable, copied into each node's `bin/`.
    pub contract: PathBuf,
    pub roundtime_ms: u64,
    /// The largest input a user may send.
    pub pubmaxsize: u64,
    pub loglevel: String,
    /// How many users will connect, all from 127.0.0.1: the user port's per-address caps are
    /// raised to let them all in at once.
    pub users: u64,
}

impl ClusterSpec {
    /// How many nodes run; an error when they cannot make a quorum (default threshold).
    pub fn running(&self) -> Result<usize, BenchError> {
        let quorum = hp_cfg::config::quorum(Config::new_single(NodeKey::generate()).threshold, self.nodes);
        let running = self.nodes.saturating_sub(self.down);
        if running < quorum {
            return Err(BenchError::NoQuorum { down: self.down, nodes: self.nodes, running, quorum });
        }
        Ok(running)
    }
}

/// One node: its folder, ports and supervisor process.
#[derive(Debug)]
pub struct LocalNode {
    /// 1-based, as in the folder name `node<N>`.
    pub number: usize,
    pub dir: PathBuf,
    pub pubport: u16,
    pub peerport: u16,
    supervisor: Option<Child>,
}

impl LocalNode {
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.pubport)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log").join("node.log")
    }

    /// The supervisor's pid while it runs.
    pub fn supervisor_pid(&self) -> Option<i32> {
        self.supervisor.as_ref().map(|c| c.id() as i32)
    }

    /// The last `lines` lines of the node's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// The cluster; stopped when dropped.
#[derive(Debug)]
pub struct LocalCluster {
    root: PathBuf,
    hotpocket: PathBuf,
    bin_dir: PathBuf,
    pub nodes: Vec<LocalNode>,
    /// How many of `nodes`, from the first, are started.
    running: usize,
}

impl LocalCluster {
    /// Writes `root/node1..N`: keys, configs (peers, UNL, free ports) and the contract.
    pub fn create(root: &Path, bin_dir: &Path, spec: &ClusterSpec) -> Result<Self, BenchError> {
        let running = spec.running()?;
        let keys: Vec<NodeKey> = (0..spec.nodes).map(|_| NodeKey::generate()).collect();
        let unl: Vec<[u8; 32]> = keys.iter().map(NodeKey::public_bytes).collect();
        // One network, one id: peers of different networks refuse each other.
        let contract_id = hp_cfg::config::new_contract_id();
        let ports = free_ports(2 * spec.nodes)?;
        let contract_name =
            spec.contract.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "contract".into());
        let mut nodes = Vec::with_capacity(spec.nodes);
        for (i, key) in keys.into_iter().enumerate() {
            let number = i + 1;
            let dir = root.join(format!("node{number}"));
            let contract_dir = ContractDir::new(&dir);
            hp_cfg::create::make_folders(&contract_dir)
                .map_err(|source| BenchError::Folders { node: number, source })?;
            let target = contract_dir.bin().join(&contract_name);
            fs::copy(&spec.contract, &target).map_err(BenchError::io("cannot copy the contract to", &target))?;
            let (peerport, pubport) = (ports[2 * i], ports[2 * i + 1]);
            let mut cfg = Config::new_single(key);
            cfg.binary = format!("bin/{contract_name}");
            cfg.unl = unl.clone();
            cfg.contract_id = contract_id.clone();
            cfg.ip = Some(Ipv4Addr::LOCALHOST.into());
            cfg.peerport = peerport;
            cfg.pubport = Some(pubport);
            cfg.peers = (0..spec.nodes).filter(|j| *j != i).map(|j| format!("127.0.0.1:{}", ports[2 * j])).collect();
            cfg.roundtime_ms = spec.roundtime_ms;
            cfg.pubmaxsize = cfg.pubmaxsize.max(spec.pubmaxsize);
            cfg.pubmaxcpm = 0; // no per-user rate limit: the load is the point
            // Every user comes from 127.0.0.1 and they connect at once.
            let users = spec.users.max(1);
            cfg.max_connections = cfg.max_connections.max(users);
            cfg.max_connections_per_ip = cfg.max_connections;
            cfg.max_unauth_connections = cfg.max_unauth_connections.max(users);
            cfg.max_unauth_per_ip = cfg.max_unauth_connections;
            cfg.loglevel = spec.loglevel.clone();
            cfg.save(&contract_dir.config_file()).map_err(|source| BenchError::Config { node: number, source })?;
            nodes.push(LocalNode { number, dir, pubport, peerport, supervisor: None });
        }
        Ok(Self {
            root: root.to_path_buf(),
            hotpocket: bin_dir.join("hotpocket"),
            bin_dir: bin_dir.to_path_buf(),
            nodes,
            running,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The started nodes.
    pub fn running(&self) -> &[LocalNode] {
        &self.nodes[..self.running]
    }

    /// The websocket URLs of the started nodes.
    pub fn urls(&self) -> Vec<String> {
        self.running().iter().map(LocalNode::url).collect()
    }

    /// Starts `hotpocket run` for every node, each in its own process group so that a Ctrl-C
    /// at the terminal reaches hp-bench only, which then stops the nodes in order.
    pub fn start(&mut self) -> Result<(), BenchError> {
        for node in &mut self.nodes[..self.running] {
            let log_path = node.log_path();
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(BenchError::io("cannot open", &log_path))?;
            let err = log.try_clone().map_err(BenchError::io("cannot open", &log_path))?;
            let child = Command::new(&self.hotpocket)
                .arg("run")
                .arg(&node.dir)
                .env(crate::bins::BIN_DIR_ENV, &self.bin_dir)
                // Nodes stop with hp-bench, even a killed one (they are started on its main thread).
                .env("HP_EXIT_WITH_PARENT", "1")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .process_group(0)
                .spawn()
                .map_err(|source| BenchError::Spawn { node: node.number, source })?;
            node.supervisor = Some(child);
        }
        Ok(())
    }

    /// `hotpocket status --json` of node `index` (0-based), or `None` when it does not answer.
    pub async fn status(&self, index: usize) -> Option<Value> {
        let out = tokio::process::Command::new(&self.hotpocket)
            .arg("status")
            .arg(&self.nodes[index].dir)
            .arg("--json")
            .stdin(Stdio::null())
            .output()
            .await
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The last closed ledger of node `index`.
    pub async fn lcl_seq(&self, index: usize) -> Option<u64> {
        self.status(index).await.and_then(|s| s["lcl_seq"].as_u64())
    }

    /// Waits until every node runs all its components, is connected to every peer, and has
    /// closed a ledger after genesis — the cluster agrees and users are served.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), BenchError> {
        let deadline = Instant::now() + timeout;
        let peers_wanted = self.running as u64 - 1;
        for index in 0..self.running {
            let mut what = "its components to run";
            loop {
                self.check_alive(index)?;
                if let Some(s) = self.status(index).await {
                    let running = COMPONENTS.iter().all(|c| s["components"][c]["state"] == "running");
                    let peers = s["peers"].as_u64().unwrap_or(0);
                    let seq = s["lcl_seq"].as_u64().unwrap_or(0);
                    what = if !running {
                        "its components to run"
                    } else if peers < peers_wanted {
                        "its peers to connect"
                    } else if seq < 1 {
                        "its first ledger"
                    } else {
                        break;
                    };
                }
                if Instant::now() > deadline {
                    let node = &self.nodes[index];
                    return Err(BenchError::Timeout {
                        what: format!("node {} ({what})", node.number),
                        secs: timeout.as_secs(),
                        node: node.number,
                        log: node.log_path(),
                        tail: node.log_tail(30),
                    });
                }
                tokio::time::sleep(POLL).await;
            }
        }
        Ok(())
    }

    /// An error when node `index`'s supervisor has exited.
    fn check_alive(&mut self, index: usize) -> Result<(), BenchError> {
        let node = &mut self.nodes[index];
        let exited = node.supervisor.as_mut().and_then(|c| c.try_wait().ok().flatten());
        match exited {
            None => Ok(()),
            Some(status) => {
                node.supervisor = None;
                Err(BenchError::NodeExited {
                    node: node.number,
                    status: status.to_string(),
                    log: node.log_path(),
                    tail: node.log_tail(30),
                })
            }
        }
    }

    /// SIGTERM to every supervisor, a wait of up to [`STOP_GRACE`], then SIGKILL of what is
    /// left, and of any process still running from the cluster's folder (daemons or contracts
    /// orphaned by a supervisor that was itself killed). Safe to call more than once.
    pub fn stop(&mut self) {
        let mut children: Vec<Child> = self.nodes.iter_mut().filter_map(|n| n.supervisor.take()).collect();
        for child in &children {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
            if children.is_empty() {
                break;
            }
            std::thread::sleep(POLL);
        }
        for child in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
        kill_processes_mentioning(&self.root);
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `count` distinct free TCP ports on 127.0.0.1: all are held at once while they are chosen,
/// so none is handed out twice.
pub fn free_ports(count: usize) -> Result<Vec<u16>, BenchError> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(BenchError::Ports)?;
    listeners.iter().map(|l| l.local_addr().map(|a| a.port()).map_err(BenchError::Ports)).collect()
}

/// SIGKILLs every process (other than this one) whose command line mentions `path`, until
/// none is left or a few rounds have passed.
pub fn kill_processes_mentioning(path: &Path) {
    let needle = path.to_string_lossy().into_owned();
    if needle.len() < 8 {
        return; // never match on a short, general path such as "/" or "/tmp"
    }
    for _ in 0..5 {
        let pids = pids_mentioning(&needle);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(POLL);
    }
}

fn pids_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
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
