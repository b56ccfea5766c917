//! A cluster of real nodes: N contract folders under one root (a temporary folder unless one is
//! given), peers and UNL wired together on ports from [`crate::ports`], one `hotpocket run` per
//! node started on demand (its output in the node's `log/node.log`).
//!
//! Dropping the [`Cluster`] stops every process it started — at once (SIGKILL), or after a
//! grace period for a clean stop ([`ClusterOptions::drop_grace`]) — and then kills every process
//! whose command line still names the cluster's folder (daemons or contracts orphaned by a
//! supervisor that was itself killed), so nothing outlives a test that failed or a benchmark
//! interrupted with Ctrl-C.

use crate::LocalnetError;
use crate::wait::poll_until;
use hp_cfg::{Config, ContractDir, NodeKey};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use std::fs::{self, OpenOptions};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A change to node `i`'s config before it is written.
pub type ConfigEdit = Box<dyn Fn(usize, &mut Config)>;

/// How long [`Node::stop`] waits for a node to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often start-up and shutdown are polled.
const POLL: Duration = Duration::from_millis(50);
/// The components `hotpocket status` must show as running for a node to be ready.
const COMPONENTS: [&str; 3] = ["userd", "consensusd", "execd"];
/// How many log lines an error carries.
const ERROR_TAIL: usize = 30;

/// Where a node runs when not on 127.0.0.1 of this host: its address, and the command prefix
/// that starts a program there (such as `ip netns exec <ns>`).
#[derive(Clone, Debug)]
pub struct Host {
    pub ip: IpAddr,
    pub exec_prefix: Vec<String>,
}

impl Host {
    /// 127.0.0.1 of this host.
    pub fn localhost() -> Self {
        Self { ip: Ipv4Addr::LOCALHOST.into(), exec_prefix: Vec::new() }
    }
}

/// How a cluster is made.
pub struct ClusterOptions {
    pub nodes: usize,
    /// A contract binary to install; the default contract (upper-cases input) otherwise.
    pub contract: Option<PathBuf>,
    pub roundtime_ms: u64,
    /// Changes to each node's config before it is written (after everything set here; the
    /// `loglevel` is `$HP_NODE_LOGLEVEL`, else `info`, until an edit changes it).
    pub edit: Option<ConfigEdit>,
    /// One host per node; all on 127.0.0.1 when `None`.
    pub hosts: Option<Vec<Host>>,
    /// The folder to write `node1..N` into (kept); a temporary folder, removed with the
    /// cluster, when `None`.
    pub root: Option<PathBuf>,
    /// The folder of `hotpocket` and the daemons; [`crate::bins::find`] when `None`.
    pub bin_dir: Option<PathBuf>,
    /// On drop, SIGTERM every node and give them this long to stop cleanly before SIGKILL;
    /// SIGKILL at once when `None` (a test's cluster has nothing left to keep).
    pub drop_grace: Option<Duration>,
    /// Serve the HotPocket 0.6 user protocol too: `hpport` (TLS, with a self-signed
    /// certificate) and `hpport_plain` on free ports.
    pub hotpocket: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            nodes: 1,
            contract: None,
            roundtime_ms: 200,
            edit: None,
            hosts: None,
            root: None,
            bin_dir: None,
            drop_grace: None,
            hotpocket: false,
        }
    }
}

/// One node of a cluster.
#[derive(Debug)]
pub struct Node {
    /// 0-based; the folder is `node<index + 1>`.
    pub index: usize,
    pub dir: PathBuf,
    pub peerport: u16,
    pub pubport: u16,
    /// The HotPocket 0.6 ports (TLS, plain), when the cluster serves that protocol.
    pub hpports: Option<(u16, u16)>,
    pub pubkey: String,
    /// The address its ports are on.
    pub ip: IpAddr,
    exec_prefix: Vec<String>,
    hotpocket: PathBuf,
    bin_dir: PathBuf,
    process: Option<Child>,
}

/// The cluster; its processes are stopped when it is dropped (module docs).
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    root: PathBuf,
    drop_grace: Option<Duration>,
    // Declared last so that the processes die before their folder is removed.
    _tmp: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Writes the node folders, starts every node and returns once all run their components.
    pub fn start(options: ClusterOptions) -> Result<Self, LocalnetError> {
        let mut cluster = Self::create(options)?;
        for node in &mut cluster.nodes {
            node.start()?;
        }
        for node in &mut cluster.nodes {
            node.wait_ready(Duration::from_secs(30))?;
        }
        Ok(cluster)
    }

    /// Writes `node1..N`: keys, configs (peers, UNL, ports) and the contract; starts nothing.
    pub fn create(options: ClusterOptions) -> Result<Self, LocalnetError> {
        let bin_dir = crate::bins::find(options.bin_dir.as_deref())?;
        let (root, tmp) = match &options.root {
            Some(root) => (root.clone(), None),
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("hp-cluster-")
                    .tempdir()
                    .map_err(LocalnetError::io("cannot create a folder in", std::env::temp_dir()))?;
                // The contract may run as a user of its own, which must reach its `bin/`.
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))
                    .map_err(LocalnetError::io("cannot open up", tmp.path()))?;
                (tmp.path().to_path_buf(), Some(tmp))
            }
        };
        let keys: Vec<NodeKey> = (0..options.nodes).map(|_| NodeKey::generate()).collect();
        let unl: Vec<[u8; 32]> = keys.iter().map(NodeKey::public_bytes).collect();
        // One network, one id: peers of different networks refuse each other.
        let contract_id = hp_cfg::config::new_contract_id();
        let ports = (0..options.nodes)
            .map(|_| Ok((crate::ports::free_port()?, crate::ports::free_port()?)))
            .collect::<Result<Vec<(u16, u16)>, LocalnetError>>()?;
        let hosts = options.hosts.clone().unwrap_or_else(|| vec![Host::localhost(); options.nodes]);
        if hosts.len() != options.nodes {
            return Err(LocalnetError::Hosts { hosts: hosts.len(), nodes: options.nodes });
        }
        let mut nodes = Vec::with_capacity(options.nodes);
        for (i, key) in keys.into_iter().enumerate() {
            let number = i + 1;
            let dir = root.join(format!("node{number}"));
            let contract_dir = ContractDir::new(&dir);
            hp_cfg::create::make_folders(&contract_dir)
                .map_err(|source| LocalnetError::Folders { node: number, source })?;
            let binary = install_contract(&contract_dir, options.contract.as_deref())?;
            let (peerport, pubport) = ports[i];
            let hpports = match options.hotpocket {
                false => None,
                true => {
                    hp_cfg::create::ensure_tls_cert(&contract_dir)
                        .map_err(|source| LocalnetError::Folders { node: number, source })?;
                    Some((crate::ports::free_port()?, crate::ports::free_port()?))
                }
            };
            let pubkey = key.public_hex();
            let mut cfg = Config::new_single(key);
            cfg.binary = binary;
            cfg.unl = unl.clone();
            cfg.contract_id = contract_id.clone();
            cfg.ip = Some(hosts[i].ip);
            cfg.peerport = peerport;
            cfg.pubport = Some(pubport);
            cfg.hpport = hpports.map(|p| p.0);
            cfg.hpport_plain = hpports.map(|p| p.1);
            cfg.peers = (0..options.nodes)
                .filter(|j| *j != i)
                .map(|j| SocketAddr::new(hosts[j].ip, ports[j].0).to_string())
                .collect();
            cfg.roundtime_ms = options.roundtime_ms;
            cfg.pubmaxcpm = 0; // no per-user rate limit: tests and benchmarks send as they need
            // HP_NODE_LOGLEVEL (a tracing filter) to chase a rare failure with more detail.
            cfg.loglevel = std::env::var("HP_NODE_LOGLEVEL").unwrap_or_else(|_| "info".into());
            hp_cfg::create::sandbox_defaults(&mut cfg);
            if cfg.contract_user.is_some() {
                // Nodes on one machine get contract users of their own (their peer ports differ).
                let id = hp_cfg::create::CONTRACT_ID_BASE + u32::from(peerport) % hp_cfg::create::CONTRACT_ID_COUNT;
                cfg.contract_user = Some(format!("{id}:{id}"));
            }
            if let Some(edit) = &options.edit {
                edit(i, &mut cfg);
            }
            cfg.save(&contract_dir.config_file()).map_err(|source| LocalnetError::Config { node: number, source })?;
            nodes.push(Node {
                index: i,
                dir,
                peerport,
                pubport,
                hpports,
                pubkey,
                ip: hosts[i].ip,
                exec_prefix: hosts[i].exec_prefix.clone(),
                hotpocket: bin_dir.join("hotpocket"),
                bin_dir: bin_dir.clone(),
                process: None,
            });
        }
        Ok(Self { nodes, root, drop_grace: options.drop_grace, _tmp: tmp })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn node(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }

    /// The started nodes.
    pub fn running(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    /// The websocket URLs of the started nodes.
    pub fn urls(&self) -> Vec<String> {
        self.running().map(Node::url).collect()
    }

    /// Waits until every running node has closed at least ledger `seq`.
    pub fn wait_all_at(&self, seq: u64, timeout: Duration) -> Result<(), LocalnetError> {
        for node in self.running() {
            poll_until(timeout, || node.status().and_then(|s| s["lcl_seq"].as_u64()).filter(|l| *l >= seq))
                .ok_or_else(|| node.timeout(format!("node {} to reach ledger {seq}", node.number()), timeout))?;
        }
        Ok(())
    }

    /// Waits until every started node runs all its components, is connected to every other
    /// started node, and has closed a ledger after genesis — the cluster agrees and users are
    /// served. Fails early when a node exits. Async (the probes are `tokio::process`), so that
    /// a benchmark can be interrupted while it waits.
    pub async fn wait_serving(&mut self, timeout: Duration) -> Result<(), LocalnetError> {
        let deadline = Instant::now() + timeout;
        let peers_wanted = self.running().count().saturating_sub(1) as u64;
        for node in self.nodes.iter_mut().filter(|n| n.is_running()) {
            let mut what = "its components to run";
            loop {
                node.check_alive()?;
                if let Some(s) = node.status_async().await {
                    let peers = s["peers"].as_u64().unwrap_or(0);
                    let seq = s["lcl_seq"].as_u64().unwrap_or(0);
                    what = if !components_running(&s) {
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
                    return Err(node.timeout(format!("node {} ({what})", node.number()), timeout));
                }
                tokio::time::sleep(POLL).await;
            }
        }
        Ok(())
    }

    /// SIGTERM to every supervisor, a wait of up to `grace`, then SIGKILL of what is left and
    /// of any process still running from the cluster's folder; with no grace, SIGKILL at once.
    /// Safe to call more than once.
    pub fn stop(&mut self, grace: Duration) {
        let mut children: Vec<Child> = self.nodes.iter_mut().filter_map(|n| n.process.take()).collect();
        if !grace.is_zero() {
            for child in &children {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            }
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
                if children.is_empty() {
                    break;
                }
                std::thread::sleep(POLL);
            }
        }
        for child in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
        kill_processes_mentioning(&self.root);
    }

    /// The last log lines of every node, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push_str(&format!("---- node {} ----\n{}\n", node.number(), node.log_tail(60)));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop(self.drop_grace.unwrap_or(Duration::ZERO));
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// Copies `contract` into the node's `bin/`, or writes the default contract; returns the
/// config's `binary`.
fn install_contract(dir: &ContractDir, contract: Option<&Path>) -> Result<String, LocalnetError> {
    match contract {
        Some(path) => {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "contract".into());
            let target = dir.bin().join(&name);
            fs::copy(path, &target).map_err(LocalnetError::io("cannot copy the contract to", &target))?;
            // Executable by the contract's own user whatever the umask it was built under.
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
                .map_err(LocalnetError::io("cannot make executable", &target))?;
            Ok(format!("bin/{name}"))
        }
        None => {
            use std::os::unix::fs::PermissionsExt;
            let target = dir.bin().join("contract.sh");
            fs::write(&target, hp_cfg::create::DEFAULT_CONTRACT).map_err(LocalnetError::io("cannot write", &target))?;
            fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
                .map_err(LocalnetError::io("cannot make executable", &target))?;
            Ok("bin/contract.sh".into())
        }
    }
}

fn components_running(status: &Value) -> bool {
    COMPONENTS.iter().all(|c| status["components"][c]["state"] == "running")
}

/// SIGKILLs every process (other than this one) whose command line mentions `path`, until none
/// is left or a few rounds have passed.
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

/// Pids of processes (other than this one) whose command line contains `needle`.
pub fn pids_mentioning(needle: &str) -> Vec<i32> {
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

impl Node {
    /// 1-based, as in the folder name `node<N>`.
    pub fn number(&self) -> usize {
        self.index + 1
    }

    /// Starts `hotpocket run` for this node in a process group of its own (a Ctrl-C at the
    /// terminal reaches the launcher only, which then stops the nodes), appending its output to
    /// `log/node.log`. The node stops with the thread that started it (`HP_EXIT_WITH_PARENT`),
    /// even when the launcher is killed.
    pub fn start(&mut self) -> Result<(), LocalnetError> {
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(LocalnetError::io("cannot open", &log_path))?;
        let err = log.try_clone().map_err(LocalnetError::io("cannot open", &log_path))?;
        let mut command = match self.exec_prefix.split_first() {
            None => Command::new(&self.hotpocket),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&self.hotpocket);
                c
            }
        };
        let child = command
            .arg("run")
            .arg(&self.dir)
            .env(crate::bins::BIN_DIR_ENV, &self.bin_dir)
            .env("HP_EXIT_WITH_PARENT", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|source| LocalnetError::Spawn { node: self.number(), source })?;
        self.process = Some(child);
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    pub fn supervisor_pid(&self) -> Option<i32> {
        self.process.as_ref().map(|c| c.id() as i32)
    }

    /// An error, with the end of the log, when the supervisor has exited.
    pub fn check_alive(&mut self) -> Result<(), LocalnetError> {
        let exited = self.process.as_mut().and_then(|c| c.try_wait().ok().flatten());
        match exited {
            None => Ok(()),
            Some(status) => {
                self.process = None;
                Err(LocalnetError::NodeExited {
                    node: self.number(),
                    status: status.to_string(),
                    log: self.log_path(),
                    tail: self.log_tail(ERROR_TAIL),
                })
            }
        }
    }

    /// SIGTERM, then waits up to [`STOP_TIMEOUT`] for a clean exit; returns the exit code
    /// (`None` when the node was not running or died of a signal). A node that does not stop
    /// in time is killed and the timeout returned.
    pub fn stop(&mut self) -> Result<Option<i32>, LocalnetError> {
        let Some(mut child) = self.process.take() else { return Ok(None) };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        match poll_until(STOP_TIMEOUT, || child.try_wait().ok().flatten()) {
            Some(status) => Ok(status.code()),
            None => {
                self.process = Some(child);
                let timeout = self.timeout(format!("node {} to stop", self.number()), STOP_TIMEOUT);
                self.kill();
                Err(timeout)
            }
        }
    }

    /// `kill -9` of the whole node: the supervisor and every process of this node.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        kill_processes_mentioning(&self.dir);
    }

    /// Waits until `hotpocket status` shows all three components running; fails early when
    /// the supervisor exits.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), LocalnetError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            if self.status().is_some_and(|s| components_running(&s)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.timeout(format!("node {} to be ready", self.number()), timeout));
            }
            std::thread::sleep(crate::wait::POLL);
        }
    }

    /// The timeout error for `what`, with the end of this node's log.
    fn timeout(&self, what: String, timeout: Duration) -> LocalnetError {
        LocalnetError::Timeout {
            what,
            secs: timeout.as_secs(),
            node: self.number(),
            log: self.log_path(),
            tail: self.log_tail(ERROR_TAIL),
        }
    }

    fn hotpocket(&self, command: &'static str) -> Command {
        let mut c = Command::new(&self.hotpocket);
        c.arg(command).arg(&self.dir).stdin(Stdio::null());
        c
    }

    fn status_command(&self) -> Command {
        let mut c = self.hotpocket("status");
        c.arg("--json");
        c
    }

    /// `hotpocket status --json`, or `None` when the node does not answer.
    pub fn status(&self) -> Option<Value> {
        parse_status(self.status_command().output().ok()?)
    }

    /// [`Self::status`] without blocking the async runtime.
    pub async fn status_async(&self) -> Option<Value> {
        parse_status(tokio::process::Command::from(self.status_command()).output().await.ok()?)
    }

    /// The last closed ledger, 0 when the node does not answer.
    pub fn lcl_seq(&self) -> u64 {
        self.status().and_then(|s| s["lcl_seq"].as_u64()).unwrap_or(0)
    }

    /// `hotpocket ledger --json`: one object per stored ledger.
    pub fn ledgers(&self) -> Result<Vec<Value>, LocalnetError> {
        let mut command = self.hotpocket("ledger");
        let out = command.arg("--json").output().map_err(|source| self.command_error("ledger", source))?;
        Ok(String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
    }

    /// `hotpocket verify`: exit code and output.
    pub fn verify(&self) -> Result<(i32, String), LocalnetError> {
        let out = self.hotpocket("verify").output().map_err(|source| self.command_error("verify", source))?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Ok((out.status.code().unwrap_or(-1), text))
    }

    fn command_error(&self, command: &'static str, source: std::io::Error) -> LocalnetError {
        LocalnetError::Command { command, node: self.number(), source }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", SocketAddr::new(self.ip, self.pubport))
    }

    /// The HotPocket 0.6 URLs, `wss://` and `ws://`, when the cluster serves that protocol.
    pub fn hotpocket_urls(&self) -> Option<(String, String)> {
        let (tls, plain) = self.hpports?;
        Some((format!("wss://{}", SocketAddr::new(self.ip, tls)), format!("ws://{}", SocketAddr::new(self.ip, plain))))
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log").join("node.log")
    }

    /// Everything the node logged so far (all four processes).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last `lines` lines of the node's log.
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

fn parse_status(out: Output) -> Option<Value> {
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}
