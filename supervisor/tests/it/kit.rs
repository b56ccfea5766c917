//! The test kit: contract directories with collision-free ports, a guarded `hotpocket run`
//! whose whole process tree is killed when the test ends (pass or fail), and polling helpers.

use hp_cfg::{Config, ContractDir};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use std::collections::HashSet;
use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COMPONENTS: [&str; 3] = ["userd", "consensusd", "execd"];

/// The `hotpocket` binary under test.
pub fn hotpocket() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hotpocket"))
}

/// The folder of `hotpocket`, where `cargo build --workspace --bins` also puts the daemons.
pub fn bin_dir() -> PathBuf {
    hotpocket().parent().expect("binary has a folder").to_path_buf()
}

/// Fails the test with instructions when a daemon is not built.
pub fn require_daemons() -> PathBuf {
    let dir = bin_dir();
    for c in COMPONENTS {
        let path = dir.join(format!("hp-{c}"));
        assert!(
            path.is_file(),
            "{} is missing: these tests run the real daemons; build them first with \
             `cargo build --workspace --bins` (same CARGO_TARGET_DIR as the tests)",
            path.display()
        );
    }
    dir
}

/// A free TCP port that no other test of this process got: bind port 0, note the port, release.
pub fn free_port() -> u16 {
    static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut taken = TAKEN.lock().unwrap();
        if taken.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// Polls `cond` every 20 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` names a live process (a zombie counts as gone: it no longer runs).
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// A contract directory in its own temp folder, with ports no other test uses.
pub struct TestDir {
    pub tmp: tempfile::TempDir,
    pub dir: ContractDir,
}

impl TestDir {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        // Run as root, the contract runs as a user of its own, which must reach its `bin/`.
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let root = tmp.path().join("node");
        let mut cfg = hp_cfg::create::new_contract_dir(&root, None).unwrap();
        cfg.peerport = free_port();
        cfg.pubport = Some(free_port());
        cfg.hpport = Some(free_port());
        let dir = ContractDir::new(root);
        cfg.save(&dir.config_file()).unwrap();
        Self { tmp, dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.root()
    }

    pub fn config(&self) -> Config {
        Config::load(&self.dir.config_file()).unwrap()
    }

    /// Runs a short `hotpocket` command to completion.
    pub fn hotpocket(&self, args: &[&str]) -> Output {
        Command::new(hotpocket()).args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Starts `hotpocket run` on this directory with the real daemons.
    pub fn run(&self) -> Supervisor {
        self.run_with(require_daemons(), |_| {})
    }

    /// Starts `hotpocket run` with the daemons of `bin_dir`; `tweak` may add arguments or env.
    pub fn run_with(&self, bin_dir: PathBuf, tweak: impl FnOnce(&mut Command)) -> Supervisor {
        let mut cmd = Command::new(hotpocket());
        cmd.arg("run").arg(self.root());
        tweak(&mut cmd);
        self.spawn(bin_dir, cmd)
    }

    /// Starts `cmd` (a `hotpocket run` of this directory, perhaps behind a wrapper) with the
    /// daemons of `bin_dir`, in a process group of its own, its output in `supervisor.log`.
    pub fn spawn(&self, bin_dir: PathBuf, mut cmd: Command) -> Supervisor {
        let log = self.tmp.path().join("supervisor.log");
        cmd.env("HP_BIN_DIR", &bin_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(fs::OpenOptions::new().append(true).open(&log).unwrap()))
            .process_group(0);
        for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            if !cmd.get_envs().any(|(k, _)| k == var) {
                cmd.env_remove(var);
            }
        }
        let child = cmd.spawn().unwrap();
        Supervisor { child: Some(child), dir: self.dir.clone(), log, seen: Vec::new() }
    }
}

/// A running `hotpocket run`. Dropping it kills the supervisor's process group and every daemon
/// it started (each in a group of its own), whether the test passed or not.
pub struct Supervisor {
    child: Option<Child>,
    pub dir: ContractDir,
    pub log: PathBuf,
    /// Daemon pids seen during the test, killed at the end as well.
    seen: Vec<u32>,
}

impl Supervisor {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn status_of(&self) -> Option<Value> {
        let out = Command::new(hotpocket())
            .args(["status", self.dir.root().to_str().unwrap(), "--json"])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// `status --json`, remembering the daemon pids for cleanup.
    pub fn status(&mut self) -> Option<Value> {
        let status = self.status_of()?;
        for c in COMPONENTS {
            if let Some(pid) = status["components"][c]["pid"].as_u64().filter(|p| *p != 0)
                && !self.seen.contains(&(pid as u32))
            {
                self.seen.push(pid as u32);
            }
        }
        Some(status)
    }

    /// Waits until every component runs; returns that status. Panics with the log on timeout.
    pub fn wait_running(&mut self, timeout: Duration) -> Value {
        let found = wait_for(timeout, || {
            let s = self.status()?;
            COMPONENTS.iter().all(|c| s["components"][c]["state"] == "running").then_some(s)
        });
        match found {
            Some(s) => s,
            None => panic!(
                "node not running after {timeout:?}; last status {:?}\n--- log ---\n{}",
                self.status(),
                self.log_text()
            ),
        }
    }

    /// The pid of each component from a status, in [`COMPONENTS`] order.
    pub fn pids(status: &Value) -> [u32; 3] {
        COMPONENTS.map(|c| status["components"][c]["pid"].as_u64().unwrap() as u32)
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid() as i32), signal).unwrap();
    }

    /// Waits for the supervisor to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let status = wait_for(timeout, || child.try_wait().ok().flatten())?;
        self.child = None;
        Some(status)
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- supervisor log ({}) ---\n{}", self.log.display(), self.log_text());
        }
        if let Some(mut child) = self.child.take() {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
        // Daemons lead process groups of their own; kill what the status showed and what the
        // pid files name.
        let mut pids = self.seen.clone();
        for c in COMPONENTS {
            if let Ok(text) = fs::read_to_string(self.dir.run().join(format!("{c}.pid"))) {
                pids.extend(text.trim().parse::<u32>().ok());
            }
        }
        for pid in pids {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

/// A folder of daemon executables: symlinks to the real daemons, with `overrides` replaced by
/// shell scripts (name → script body).
pub fn bin_dir_with(tmp: &Path, overrides: &[(&str, &str)]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let real = require_daemons();
    let dir = tmp.join("bin-override");
    fs::create_dir_all(&dir).unwrap();
    for c in COMPONENTS {
        let name = format!("hp-{c}");
        let path = dir.join(&name);
        match overrides.iter().find(|(n, _)| *n == c) {
            Some((_, script)) => {
                // `hotpocket run` first asks execd whether the sandbox can be set up.
                let check = "[ \"$1\" = --check-sandbox ] && exit 0";
                fs::write(&path, format!("#!/bin/sh\n{check}\n{script}\n")).unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            }
            None => std::os::unix::fs::symlink(real.join(&name), &path).unwrap(),
        }
    }
    dir
}
