//! Shared helpers: the compiled test contract, contract directories, engines, requests, the
//! real `hp-execd` process under a guard, and polling with a deadline.

use bytes::Bytes;
use hp_cfg::{Config, ContractDir};
use hp_execd::{Engine, EngineConfig, ExecRequest, RoundResult, UserInput};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The test contract, compiled once per test run.
pub fn contract_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| compile("contract"))
}

/// The HotPocket ABI's test contract (contracts/hotpocket.c), compiled once per test run.
pub fn hotpocket_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| compile("hotpocket"))
}

fn compile(name: &str) -> PathBuf {
    let ok = Command::new("cc").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(
        ok.is_ok_and(|s| s.success()),
        "these tests compile C contracts and need a C compiler as `cc` on PATH (apt-get install gcc)"
    );
    // Under the target folder (not /tmp, where it would outlive the run); compiled under a
    // name of this process and renamed, so that two test runs never see half a binary.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let out = dir.join(format!("execd-test-{name}"));
    let building = dir.join(format!("execd-test-{name}.{}", std::process::id()));
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/it/contracts/{name}.c"));
    let status = Command::new("cc").args(["-O0", "-o"]).arg(&building).arg(&src).status().unwrap();
    assert!(status.success(), "cc failed on {}", src.display());
    std::fs::rename(&building, &out).unwrap();
    out
}

/// Process-wide setup: room for 1,000 users' pipes, and reaping the contracts' orphans.
pub fn init() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        hp_execd::process::raise_nofile_limit().unwrap();
        hp_execd::process::become_subreaper().unwrap();
    });
}

/// A contract directory in a temp dir, running the test contract with `binargs`.
pub struct Node {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub cfg: Config,
}

impl Node {
    pub fn new(binargs: &str) -> Self {
        Self::with(binargs, |_| {})
    }

    pub fn with(binargs: &str, edit: impl FnOnce(&mut Config)) -> Self {
        Self::in_dir(tempfile::tempdir().unwrap(), binargs, edit)
    }

    /// On a RAM file system when there is one: for tests that create thousands of files, which
    /// a busy virtual disk makes slow (about 1 ms per file here) without testing anything more.
    pub fn on_tmpfs(binargs: &str) -> Self {
        Self::in_dir(fast_tempdir(), binargs, |_| {})
    }

    /// A contract directory running the HotPocket ABI's test contract with `binargs`.
    pub fn hotpocket(binargs: &str) -> Self {
        Self::in_dir_with(tempfile::tempdir().unwrap(), hotpocket_bin(), binargs, |c| {
            c.stdinfmt = hp_cfg::StdinFormat::Hotpocket
        })
    }

    fn in_dir(tmp: tempfile::TempDir, binargs: &str, edit: impl FnOnce(&mut Config)) -> Self {
        Self::in_dir_with(tmp, contract_bin(), binargs, edit)
    }

    fn in_dir_with(tmp: tempfile::TempDir, bin: &Path, binargs: &str, edit: impl FnOnce(&mut Config)) -> Self {
        init();
        // Run as root, the real hp-execd runs the contract as a user of its own, which must be
        // able to reach its binary under this folder.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = tmp.path().join("node");
        let mut cfg = hp_cfg::create::new_contract_dir(&root, Some(bin)).unwrap();
        cfg.binargs = binargs.split_whitespace().map(str::to_string).collect();
        cfg.contract_timeout_ms = 20_000;
        edit(&mut cfg);
        cfg.save(&ContractDir::new(&root).config_file()).unwrap();
        Self { _tmp: tmp, root, cfg }
    }

    pub fn dir(&self) -> ContractDir {
        ContractDir::new(&self.root)
    }

    pub fn state(&self) -> PathBuf {
        self.dir().state()
    }

    pub fn engine(&self) -> Engine {
        Engine::open(EngineConfig::new(&self.root, &self.cfg).unwrap()).unwrap()
    }

    /// The engine with the contract in its sandbox, as the real hp-execd runs it.
    pub fn sandboxed_engine(&self) -> Engine {
        Engine::open(self.sandboxed_config()).unwrap()
    }

    pub fn sandboxed_config(&self) -> EngineConfig {
        let mut cfg = EngineConfig::new(&self.root, &self.cfg).unwrap();
        let sandbox = hp_execd::sandbox::Sandbox::start(&cfg.dir, &self.cfg, &cfg.contract.program).unwrap();
        cfg.contract.sandbox = sandbox.map(std::sync::Arc::new);
        cfg
    }

    /// Installs a shell script as the contract (`bin/contract.sh`, 0755).
    pub fn script(&mut self, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.root.join("bin/contract.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{text}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        self.cfg.binary = "bin/contract.sh".into();
        self.cfg.binargs.clear();
        self.cfg.save(&self.dir().config_file()).unwrap();
    }
}

/// A temporary directory on `/dev/shm` (tmpfs) if usable, else the default one.
pub fn fast_tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap()
}

/// A 32-byte public key filled with `b`.
/// The text of `node`'s config as `patch.cfg` (hp.cfg's, field for field), after `edit`.
pub fn patched(node: &Node, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut json = serde_json::to_value(hp_cfg::ContractPatch::from_config(&node.cfg)).unwrap();
    edit(&mut json);
    serde_json::to_string(&json).unwrap()
}

pub fn key(b: u8) -> [u8; 32] {
    [b; 32]
}

/// A round with the given users and inputs.
pub fn request(seq: u64, users: Vec<([u8; 32], Vec<Vec<u8>>)>) -> ExecRequest {
    ExecRequest {
        seq,
        ledger_hash: vec![0xcd; 32],
        prev_hash: vec![0xab; 32],
        time_ms: 1_700_000_000_123,
        users: users
            .into_iter()
            .map(|(pubkey, inputs)| UserInput { pubkey, inputs: inputs.into_iter().map(Bytes::from).collect() })
            .collect(),
    }
}

/// One user with one input.
pub fn one(seq: u64, input: &str) -> ExecRequest {
    request(seq, vec![(key(1), vec![input.as_bytes().to_vec()])])
}

pub fn execute(engine: &mut Engine, req: ExecRequest) -> RoundResult {
    engine.execute(req, &hp_daemon::CancellationToken::new()).unwrap()
}

/// The output of `user`, empty if none.
pub fn output_of(result: &RoundResult, user: [u8; 32]) -> Vec<u8> {
    result.outputs.iter().find(|(k, _)| *k == user).map(|(_, v)| v.to_vec()).unwrap_or_default()
}

/// Polls `cond` until it holds or `within` passes.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A real `hp-execd` process, killed (SIGKILL) and reaped when dropped, even if a test fails.
pub struct Execd {
    child: Option<Child>,
    pub socket: PathBuf,
}

impl Execd {
    /// Starts `hp-execd <root>` and waits until its socket accepts connections.
    pub fn start(root: &Path) -> Self {
        let socket = ContractDir::new(root).socket("execd");
        let _ = std::fs::remove_file(&socket);
        let child = Command::new(env!("CARGO_BIN_EXE_hp-execd"))
            .arg(root)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("start hp-execd");
        let mut me = Self { child: Some(child), socket };
        let up = wait_until(Duration::from_secs(20), || std::os::unix::net::UnixStream::connect(&me.socket).is_ok());
        assert!(up, "hp-execd did not start serving {}", me.socket.display());
        assert!(me.child.as_mut().unwrap().try_wait().unwrap().is_none(), "hp-execd exited at start");
        me
    }

    /// The process id of this hp-execd.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// `kill -9`, then reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for the exit status (at most `within`).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let mut status = None;
        wait_until(within, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status
    }

    /// A gRPC client of this execd.
    pub fn client(&self) -> hp_proto::v1::exec_client::ExecClient<tonic::transport::Channel> {
        hp_proto::v1::exec_client::ExecClient::new(hp_daemon::ipc::channel(&self.socket))
            .max_decoding_message_size(hp_proto::MAX_LOCAL_MESSAGE)
            .max_encoding_message_size(hp_proto::MAX_LOCAL_MESSAGE)
    }
}

impl Drop for Execd {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An `ExecuteRequest` for one user with one input.
pub fn proto_request(seq: u64, input: &str) -> hp_proto::v1::ExecuteRequest {
    hp_proto::v1::ExecuteRequest {
        seq,
        ledger_hash: vec![1; 32].into(),
        prev_hash: vec![2; 32].into(),
        time_ms: 1_700_000_000_000,
        users: vec![hp_proto::v1::UserInputs {
            pubkey: key(1).to_vec().into(),
            inputs: vec![input.as_bytes().to_vec().into()],
        }],
    }
}

/// The state hash of a directory, computed from scratch.
pub fn hash_of(dir: &Path) -> [u8; 32] {
    hp_execd::state_hash::StateHasher::new(dir).scan().unwrap().root
}
