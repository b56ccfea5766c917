//! The one owner of `state/` and the committed copy: executes rounds in order, answers state
//! queries and applies state from peers. Synchronous; the service drives it on its own thread
//! ([`handle`]) so that exactly one operation runs at a time.

pub mod handle;

use crate::header::{self, ContractSecret, RoundInfo};
use crate::npl::{NplHub, NplLimits};
use crate::process;
use crate::recorded_result;
use crate::round::{ExecRequest, RoundResult, StateInfo};
use crate::runner::{self, Contract, RunError};
use crate::snapshot::{self, Marker, MarkerFile, Paths, Record, SnapshotError};
use crate::state_hash::{self, Entry, Hash, HashError, HashStats, Kind, Scan, StateHasher};
use crate::sync::{self, SyncError, WireEntry};
use bytes::Bytes;
use hp_cfg::patch::{ContractPatch, MAX_PATCH_BYTES, PATCH_FILE_IN_STATE, PATCH_LINK};
use hp_cfg::{Config, ContractDir, StdinFormat};
use hp_daemon::CancellationToken;
use hp_ledger::ExitKind;
use std::fs;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest chunk `ReadStateChunk` returns.
pub const MAX_CHUNK: u32 = 1024 * 1024;
/// How long recovery waits for the processes of a contract left behind by a killed execd.
const LEFTOVER_KILL_WAIT: Duration = Duration::from_secs(2);

/// What the engine needs from the config, with absolute paths.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub dir: ContractDir,
    pub contract: Contract,
    pub stdinfmt: StdinFormat,
    pub node_pubkey: [u8; 32],
    pub unl: Vec<[u8; 32]>,
    /// The network's contract id (the HotPocket header's `contract_id`).
    pub contract_id: String,
    /// The node's secret key for a `hotpocket`-format contract, only if the operator allows.
    pub secret: Option<ContractSecret>,
    /// The NPL and control channel of `hotpocket`-format runs; made for every engine, used
    /// only by that format.
    pub npl: Arc<NplHub>,
    /// After each round, reap zombie children adopted from escaped contract descendants. Only
    /// for the `hp-execd` process (a subreaper whose every child is a contract), never where
    /// the process has other children (tests).
    pub reap_strays: bool,
    /// The agreed config a new network starts with (`patch.cfg` at genesis): hp.cfg's.
    pub genesis_patch: ContractPatch,
}

impl EngineConfig {
    /// From a loaded config; `root` is made absolute (the contract runs with another cwd).
    pub fn new(root: &Path, cfg: &Config) -> std::io::Result<Self> {
        let root = std::path::absolute(root)?;
        let dir = ContractDir::new(&root);
        let binary = Path::new(&cfg.binary);
        let program = if binary.is_absolute() { binary.to_path_buf() } else { root.join(binary) };
        Ok(Self {
            contract: Contract {
                program,
                args: cfg.binargs.clone(),
                env: Vec::new(),
                limits: Default::default(),
                max_user_output: 0,
                cwd: dir.state(),
                timeout: Duration::from_millis(cfg.contract_timeout_ms),
                sandbox: None,
            },
            dir,
            stdinfmt: cfg.stdinfmt,
            node_pubkey: cfg.key.public_bytes(),
            unl: cfg.unl.clone(),
            contract_id: cfg.contract_id.clone(),
            secret: cfg
                .contract_gets_secret_key
                .then(|| ContractSecret(format!("ed{}{}", cfg.key.secret_hex(), hex::encode(cfg.key.public_bytes())))),
            npl: NplHub::new(
                cfg.key.public_bytes(),
                NplLimits { messages: cfg.npl_messages_per_round, bytes: cfg.npl_output_bytes },
            ),
            reap_strays: false,
            genesis_patch: ContractPatch::from_config(cfg),
        })
    }
}

/// Why an engine operation failed. The service maps each to a gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the committed state is lost ({why}); fetch the state from peers")]
    DataLoss { why: String },
    #[error("cannot execute seq {requested}: the last executed seq is {last}, so the next is {}", last.saturating_add(1))]
    OutOfOrder { requested: u64, last: u64 },
    #[error("seq {seq} was applied from peers or its result was lost: no recorded result to return")]
    NoRecordedResult { seq: u64 },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("`{path}` is not in the committed state")]
    NotFound { path: String },
    #[error("`{path}` no longer has content {expected} in the committed state")]
    ContentChanged { path: String, expected: String },
    #[error("the staged state hashes to {got}, not to the requested {expected}; nothing was changed")]
    HashMismatch { expected: String, got: String },
    #[error("restored state/ still hashes to {got}, not to the committed {expected}")]
    RestoreFailed { expected: String, got: String },
    #[error("cannot start the engine's runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// Owns `state/`, the committed copy and the record of the last round.
pub struct Engine {
    cfg: EngineConfig,
    paths: Paths,
    /// Drives the contract's pipes and process; the engine's thread blocks on it.
    rt: tokio::runtime::Runtime,
    /// Incremental hasher of `state/`.
    state: StateHasher,
    /// Hasher of `hist/exec/committed/`.
    committed_hasher: StateHasher,
    /// What `committed/` holds (its root equals `state_hash` while healthy).
    committed: Scan,
    /// The last executed (or applied) seq; `None` before the first.
    seq: Option<u64>,
    /// The committed state hash, as recorded.
    state_hash: Hash,
    /// The recorded result of `seq`, if any.
    reply: Option<RoundResult>,
    marker: MarkerFile,
    /// Set when the committed copy does not match its record: only state sync can help.
    data_loss: Option<String>,
    /// What hashing `state/` after the last run cost.
    last_scan: HashStats,
    boot_id: String,
    /// The last ledger run here and its hash, since execd started: what a read-only run's
    /// HotPocket header names as its `lcl` (not kept across restarts; the contract library
    /// does not show a read-only run its `lcl`).
    last_ledger: Option<(u64, Vec<u8>)>,
    /// The agreed config in force after the last round: what `state/.patch.cfg` holds.
    patch: ContractPatch,
}

impl Engine {
    /// Opens the contract directory and recovers from whatever a previous execd left: kills a
    /// contract it left running, finishes or drops a half-done commit, restores `state/` from
    /// the committed copy when a run was interrupted or `state/` was changed behind execd's back.
    /// A fresh directory commits whatever `state/` holds as the genesis state.
    pub fn open(cfg: EngineConfig) -> Result<Self, EngineError> {
        let paths = Paths::new(&cfg.dir);
        for dir in [&paths.state, &paths.data] {
            fs::create_dir_all(dir).map_err(SnapshotError::io("cannot create", dir))?;
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(EngineError::Runtime)?;
        let mut engine = Self {
            state: StateHasher::new(&paths.state),
            committed_hasher: StateHasher::new(&paths.committed),
            committed: Scan::empty(),
            seq: None,
            state_hash: state_hash::empty_state_hash(),
            reply: None,
            marker: MarkerFile::open(&paths.marker)?,
            data_loss: None,
            last_scan: HashStats::default(),
            boot_id: snapshot::boot_id(),
            last_ledger: None,
            patch: cfg.genesis_patch.clone(),
            cfg,
            paths,
            rt,
        };
        engine.recover()?;
        engine.give_to_contract(&engine.paths.state)?;
        engine.load_patch();
        link_patch(engine.paths.state.parent(), &engine.paths.state);
        Ok(engine)
    }

    /// Gives a folder execd wrote to the contract's own user, if it has one ([`crate::sandbox`]).
    fn give_to_contract(&self, dir: &Path) -> Result<(), EngineError> {
        match &self.cfg.contract.sandbox {
            Some(sandbox) => sandbox.own(dir).map_err(|e| EngineError::Run(RunError::Sandbox(e))),
            None => Ok(()),
        }
    }

    fn recover(&mut self) -> Result<(), EngineError> {
        let marker = self.marker.read()?;
        if let Some(m) = &marker {
            let killed = match m.sid {
                Some(sid) if m.boot_id == self.boot_id => process::kill_session(sid, LEFTOVER_KILL_WAIT),
                _ => 0,
            };
            tracing::warn!(
                seq = m.seq,
                leftover_processes = killed,
                "execd stopped while the contract ran; the round will be re-run from the committed state"
            );
        }
        let Some(record) = Record::load(&self.paths.record)? else {
            return self.genesis();
        };
        self.adopt(record);
        self.committed = self.committed_hasher.scan()?;
        if let Some(pending) = Record::load(&self.paths.pending)? {
            if self.committed.root == pending.state_hash {
                self.finalize(pending)?;
            } else {
                let state = self.state.scan()?;
                if state.root == pending.state_hash {
                    tracing::warn!(seq = ?pending.seq, "finishing the commit of a round interrupted by a crash");
                    snapshot::sync_tree(&self.paths.state, &state, &self.paths.committed, &self.committed, true)?;
                    self.committed = self.committed_hasher.scan()?;
                    if self.committed.root == pending.state_hash {
                        self.finalize(pending)?;
                    }
                } else if self.committed.root == self.state_hash {
                    tracing::warn!(seq = ?pending.seq, "dropping a commit that never started");
                    snapshot::remove_any(&self.paths.pending)
                        .map_err(SnapshotError::io("cannot remove", &self.paths.pending))?;
                }
            }
        }
        snapshot::remove_any(&self.paths.incoming).map_err(SnapshotError::io("cannot remove", &self.paths.incoming))?;
        if self.committed.root != self.state_hash {
            let why = format!(
                "{} hashes to {}, its record says {}",
                self.paths.committed.display(),
                hex::encode(self.committed.root),
                hex::encode(self.state_hash)
            );
            tracing::error!(%why, "the committed state is corrupt; waiting for state sync from peers");
            self.data_loss = Some(why);
            return Ok(());
        }
        self.ensure_state(marker.is_some())?;
        self.marker.clear()?;
        tracing::info!(seq = ?self.seq, state_hash = %hex::encode(self.state_hash), "state ready");
        Ok(())
    }

    /// A fresh directory: whatever `state/` holds is the genesis state.
    fn genesis(&mut self) -> Result<(), EngineError> {
        for stale in [&self.paths.committed, &self.paths.pending, &self.paths.incoming] {
            snapshot::remove_any(stale).map_err(SnapshotError::io("cannot remove", stale))?;
        }
        self.write_patch(&self.cfg.genesis_patch.to_bytes())?;
        let state = self.state.scan()?;
        snapshot::sync_tree(&self.paths.state, &state, &self.paths.committed, &Scan::empty(), true)?;
        let record = Record { seq: None, state_hash: state.root, reply: None };
        record.save(&self.paths.record, true)?;
        self.adopt(record);
        self.committed = state;
        self.marker.clear()?;
        tracing::info!(state_hash = %hex::encode(self.state_hash), "new contract directory: genesis state committed");
        Ok(())
    }

    /// Takes a record as the engine's view of the committed state.
    fn adopt(&mut self, record: Record) {
        self.seq = record.seq;
        self.state_hash = record.state_hash;
        self.reply = record.reply.and_then(|bytes| match recorded_result::decode(&bytes) {
            Ok(reply) => Some(reply),
            Err(e) => {
                tracing::warn!(error = %e, "the recorded result is unreadable");
                None
            }
        });
    }

    /// Makes the journal the record, after `committed/` was brought to it.
    fn finalize(&mut self, pending: Record) -> Result<(), EngineError> {
        fs::rename(&self.paths.pending, &self.paths.record)
            .map_err(SnapshotError::io("cannot rename", &self.paths.pending))?;
        self.adopt(pending);
        Ok(())
    }

    fn healthy(&self) -> Result<(), EngineError> {
        match &self.data_loss {
            Some(why) => Err(EngineError::DataLoss { why: why.clone() }),
            None => Ok(()),
        }
    }

    /// Copies the committed state to `dst` (a fresh folder) for a read-only run, and says how
    /// to run the contract there. Runs on the engine's thread, between rounds, so the copy is
    /// of one committed state.
    pub fn prepare_read(&self, dst: &Path) -> Result<crate::read::Prepared, EngineError> {
        self.healthy()?;
        crate::read::copy_tree(&self.paths.committed, dst)
            .map_err(|e| EngineError::Invalid(format!("cannot copy the state for a read: {e}")))?;
        self.give_to_contract(dst)?;
        link_patch(dst.parent(), dst);
        let mut contract = self.contract();
        contract.cwd = dst.to_path_buf();
        let round = RoundInfo {
            prev_hash: match &self.last_ledger {
                Some((seq, hash)) if Some(*seq) == self.seq => hash.clone(),
                _ => Vec::new(),
            },
            prev_seq: self.seq.unwrap_or(0),
            time_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            ..self.round_info()
        };
        Ok(crate::read::Prepared { contract, round, format: self.cfg.stdinfmt })
    }

    /// How to run the contract under the agreed config (`patch.cfg`): its `bin_path`,
    /// `bin_args`, `environment` and `round_limits.exec_timeout` where the contract changed them
    /// from the genesis config, hp.cfg's `binary`, `binargs` and `contract_timeout_ms` where
    /// not; its process limits and `user_output_bytes` (applied with the node's own). The same
    /// on every node at the same ledger, for the patch is part of the state.
    fn contract(&self) -> Contract {
        let (patch, genesis) = (&self.patch, &self.cfg.genesis_patch);
        let mut contract = self.cfg.contract.clone();
        if patch.bin_path != genesis.bin_path {
            contract.program = self.program_of(patch);
        }
        if patch.bin_args != genesis.bin_args {
            contract.args = patch.bin_args.split_whitespace().map(String::from).collect();
        }
        // 0 is HotPocket's "no limit"; a contract that never ends would stop the network, so
        // the node's own timeout stays.
        if patch.round_limits.exec_timeout != genesis.round_limits.exec_timeout && patch.round_limits.exec_timeout > 0 {
            contract.timeout = Duration::from_millis(patch.round_limits.exec_timeout);
        }
        contract.env = patch.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let limits = &patch.round_limits;
        contract.limits = crate::sandbox::limits::AgreedLimits {
            mem_bytes: limits.proc_mem_bytes,
            cpu_seconds: limits.proc_cpu_seconds,
            open_files: limits.proc_ofd_count,
        };
        contract.max_user_output = limits.user_output_bytes;
        contract
    }

    /// The binary `patch` names: relative paths are the contract directory's.
    fn program_of(&self, patch: &ContractPatch) -> PathBuf {
        let binary = Path::new(&patch.bin_path);
        if binary.is_absolute() { binary.to_path_buf() } else { self.cfg.dir.root().join(binary) }
    }

    /// What every header says about the node. The UNL is the agreed config's (`patch.cfg`),
    /// which the network hands over to: hp.cfg's is only the first one.
    fn round_info(&self) -> RoundInfo {
        RoundInfo {
            node_pubkey: self.cfg.node_pubkey,
            unl: self.patch.unl_keys().unwrap_or_else(|_| self.cfg.unl.clone()),
            contract_id: self.cfg.contract_id.clone(),
            secret: self.cfg.secret.clone(),
            ..RoundInfo::default()
        }
    }

    /// Checks that `state/` equals the committed state and restores what differs if not.
    fn ensure_state(&mut self, interrupted: bool) -> Result<(), EngineError> {
        // The contract may have removed or replaced its own folder.
        if !fs::symlink_metadata(&self.paths.state).is_ok_and(|m| m.is_dir()) {
            tracing::error!(path = %self.paths.state.display(), "state/ is missing or not a folder; recreating it");
            snapshot::remove_any(&self.paths.state).map_err(SnapshotError::io("cannot remove", &self.paths.state))?;
            fs::create_dir(&self.paths.state).map_err(SnapshotError::io("cannot create", &self.paths.state))?;
            self.give_to_contract(&self.paths.state)?;
        }
        let current = self.state.scan()?;
        if current.root == self.state_hash {
            for rel in &current.skipped {
                let path = state_hash::join(&self.paths.state, rel);
                tracing::warn!(path = %path.display(), "removing a FIFO, socket or device: not part of the state");
                snapshot::remove_any(&path).map_err(SnapshotError::io("cannot remove", &path))?;
            }
            return Ok(());
        }
        if !interrupted {
            tracing::error!(
                expected = %hex::encode(self.state_hash),
                found = %hex::encode(current.root),
                "state/ was changed outside a round; restoring it from the committed copy"
            );
        }
        let committed = self.committed_hasher.scan()?;
        if committed.root != self.state_hash {
            let why = format!("{} no longer hashes to its record", self.paths.committed.display());
            self.data_loss = Some(why.clone());
            return Err(EngineError::DataLoss { why });
        }
        self.committed = committed;
        let stats = snapshot::sync_tree(&self.paths.committed, &self.committed, &self.paths.state, &current, false)?;
        self.give_to_contract(&self.paths.state)?;
        let after = self.state.scan()?;
        if after.root != self.state_hash {
            return Err(EngineError::RestoreFailed {
                expected: hex::encode(self.state_hash),
                got: hex::encode(after.root),
            });
        }
        tracing::warn!(removed = stats.removed, written = stats.written, "state/ restored to the committed state");
        Ok(())
    }

    /// The agreed config in force after the last round (or at genesis).
    pub fn patch(&self) -> &ContractPatch {
        &self.patch
    }

    /// Takes the committed `patch.cfg` as the config in force; one that is missing (a
    /// directory from before `patch.cfg`) or unreadable leaves hp.cfg's, and the next round
    /// writes it.
    fn load_patch(&mut self) {
        let path = self.paths.state.join(PATCH_FILE_IN_STATE);
        let committed = match read_patch(&path).map(|bytes| ContractPatch::parse(&bytes)) {
            Ok(Ok(patch)) => Some(patch),
            Ok(Err(e)) => {
                tracing::error!(path = %path.display(), error = %e, "the committed patch.cfg is invalid; using hp.cfg's");
                None
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read the committed patch.cfg; using hp.cfg's");
                None
            }
        };
        self.patch = committed.unwrap_or_else(|| self.cfg.genesis_patch.clone());
    }

    /// After a round: judges what the contract left in `patch.cfg` and leaves the file in its
    /// canonical form, of the patch taken or, if it was refused, of the config in force. The
    /// same bytes give the same verdict on every node, so the state hash agrees either way.
    /// Returns the config in force after the round, for the caller to take once committed.
    fn settle_patch(&self, seq: u64) -> Result<ContractPatch, EngineError> {
        link_patch(self.paths.state.parent(), &self.paths.state);
        let path = self.paths.state.join(PATCH_FILE_IN_STATE);
        let current = self.patch.to_bytes();
        let written = read_patch(&path);
        if written.as_ref().is_ok_and(|bytes| *bytes == current) {
            return Ok(self.patch.clone());
        }
        let verdict = match &written {
            Ok(bytes) => ContractPatch::parse(bytes).map_err(|e| e.to_string()).and_then(|patch| {
                // A binary that cannot start could never write a config again: the network
                // would be stuck with it. (The same on every node whose contract directory
                // holds the same files, as every node's must.)
                if patch.bin_path != self.patch.bin_path {
                    runner::check_executable(&self.program_of(&patch))
                        .map_err(|why| format!("patch.cfg `bin_path`: {why}"))?;
                }
                Ok(patch)
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("patch.cfg was removed".to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(e.to_string()),
            Err(e) => Err(format!("patch.cfg cannot be read: {e}")),
        };
        let next = match verdict {
            Ok(patch) => {
                if patch != self.patch {
                    tracing::info!(
                        seq,
                        unl = patch.unl.len(),
                        threshold = patch.consensus.threshold,
                        roundtime = patch.consensus.roundtime,
                        "the contract changed patch.cfg; the new config is agreed with the state"
                    );
                }
                patch
            }
            Err(why) => {
                tracing::warn!(seq, reason = %why, "patch.cfg refused; the config in force stays");
                self.patch.clone()
            }
        };
        let canonical = next.to_bytes();
        if !written.is_ok_and(|bytes| bytes == canonical) {
            self.write_patch(&canonical)?;
        }
        Ok(next)
    }

    /// Replaces `state/.patch.cfg` (whatever it is now) with `bytes`, the contract's to change.
    fn write_patch(&self, bytes: &[u8]) -> Result<(), EngineError> {
        let path = self.paths.state.join(PATCH_FILE_IN_STATE);
        snapshot::remove_any(&path).map_err(SnapshotError::io("cannot remove", &path))?;
        fs::write(&path, bytes).map_err(SnapshotError::io("cannot write", &path))?;
        self.give_to_contract(&path)
    }

    /// The committed seq and state hash.
    pub fn state_info(&self) -> Result<StateInfo, EngineError> {
        self.healthy()?;
        Ok(StateInfo { seq: self.seq, state_hash: self.state_hash })
    }

    /// Runs one round. Idempotent per seq: the last executed seq returns its recorded result.
    pub fn execute(&mut self, mut req: ExecRequest, cancel: &CancellationToken) -> Result<RoundResult, EngineError> {
        let started = Instant::now();
        self.healthy()?;
        match self.seq {
            Some(last) if last == req.seq => {
                return self.reply.clone().ok_or(EngineError::NoRecordedResult { seq: last });
            }
            Some(last) if Some(req.seq) != last.checked_add(1) => {
                return Err(EngineError::OutOfOrder { requested: req.seq, last });
            }
            _ => {}
        }
        req.users.sort_by_key(|u| u.pubkey);
        if let Some(pair) = req.users.windows(2).find(|p| p[0].pubkey == p[1].pubkey) {
            return Err(EngineError::Invalid(format!("user {} is listed twice", hex::encode(pair[0].pubkey))));
        }
        let interrupted = self.marker.read()?.is_some();
        self.ensure_state(interrupted)?;

        let mut marker = Marker { seq: req.seq, boot_id: self.boot_id.clone(), sid: None };
        self.marker.set(&marker)?;
        let round = RoundInfo {
            prev_hash: req.prev_hash.clone(),
            prev_seq: req.seq.saturating_sub(1),
            time_ms: req.time_ms,
            ..self.round_info()
        };
        let users: Vec<header::HeaderUser> =
            req.users.iter().map(|u| (u.pubkey, u.inputs.iter().map(Bytes::len).collect())).collect();
        let head = header::build(self.cfg.stdinfmt, &round, &users);
        let abi = match self.cfg.stdinfmt {
            StdinFormat::Text | StdinFormat::Json => runner::Abi::Pipes,
            StdinFormat::Hotpocket => runner::Abi::HotPocket(runner::HotPocketRun {
                npl: Some(
                    self.cfg.npl.begin(req.seq, &req.prev_hash).limit_bytes(self.patch.round_limits.npl_output_bytes),
                ),
                control: Some(self.cfg.npl.clone()),
            }),
        };
        let marker_file = &self.marker;
        let mut on_spawn = |sid: i32| {
            marker.sid = Some(sid);
            if let Err(e) = marker_file.set(&marker) {
                tracing::warn!(error = %e, "cannot record the contract's session in the marker");
            }
        };
        let outcome =
            self.rt.block_on(runner::run(&self.contract(), req.seq, head, &req.users, abi, cancel, &mut on_spawn))?;
        self.last_ledger = Some((req.seq, req.ledger_hash.clone()));
        match &outcome.exit {
            ExitKind::Code(0) => {}
            // hotpocket-nodejs-contract's `forceTerminate` ends the process with SIGINT: its
            // way of exiting once done, not a failure.
            ExitKind::Signal(libc::SIGINT) if self.cfg.stdinfmt == StdinFormat::Hotpocket => {
                tracing::debug!(seq = req.seq, "the contract ended itself with SIGINT");
            }
            exit => {
                tracing::warn!(seq = req.seq, ?exit, spawn_error = ?outcome.spawn_error, "the contract did not exit cleanly")
            }
        }
        if self.cfg.reap_strays {
            process::reap_adopted_zombies();
        }
        let patch = self.settle_patch(req.seq)?;
        let scan = self.state.scan()?;
        self.last_scan = scan.stats;
        let run_micros = outcome.run_time.as_micros() as u64;
        let mut result = RoundResult {
            seq: req.seq,
            state_hash: scan.root,
            outputs: outcome.outputs.into_iter().map(|(k, v)| (k, Bytes::from(v))).collect(),
            exit: outcome.exit,
            spawn_error: outcome.spawn_error,
            run_micros,
            overhead_micros: 0,
        };
        result.overhead_micros = (started.elapsed().as_micros() as u64).saturating_sub(run_micros);
        self.commit(scan, &result)?;
        // Only once committed: a round that failed half-way leaves the committed config in
        // force, which is what a refused patch is undone to on every node.
        self.patch = patch;
        Ok(result)
    }

    /// Records a round: if the state changed, the journal, the changed entries into
    /// `committed/` and the journal renamed to the record; else just the record.
    fn commit(&mut self, scan: Scan, result: &RoundResult) -> Result<(), EngineError> {
        let record =
            Record { seq: Some(result.seq), state_hash: scan.root, reply: Some(recorded_result::encode(result)) };
        if scan.root == self.committed.root {
            record.save(&self.paths.record, false)?;
        } else {
            record.save(&self.paths.pending, true)?;
            snapshot::sync_tree(&self.paths.state, &scan, &self.paths.committed, &self.committed, true)?;
            fs::rename(&self.paths.pending, &self.paths.record)
                .map_err(SnapshotError::io("cannot rename", &self.paths.pending))?;
        }
        self.committed = scan;
        self.seq = record.seq;
        self.state_hash = record.state_hash;
        self.reply = Some(result.clone());
        self.marker.clear()?;
        Ok(())
    }

    /// The committed entries, for peers (`StateManifest`).
    /// With `include_damaged`, lists the committed copy as scanned even when it no longer matches
    /// its record (for this node's own state copy: only entries whose content hash matches the
    /// target are reused, and the result is checked against the target root).
    pub fn manifest(&self, include_damaged: bool) -> Result<(StateInfo, Vec<Entry>), EngineError> {
        let info =
            if include_damaged { StateInfo { seq: self.seq, state_hash: self.state_hash } } else { self.state_info()? };
        Ok((info, self.committed.entries.clone()))
    }

    /// Reads up to [`MAX_CHUNK`] bytes of a committed file (or a symlink's target), refusing if
    /// its content is no longer `content_hash`.
    pub fn read_chunk(
        &self,
        path: &str,
        content_hash: &[u8],
        offset: u64,
        length: u32,
    ) -> Result<(Vec<u8>, bool), EngineError> {
        self.healthy()?;
        sync::validate_path(path)?;
        let entry = self.committed.get(path.as_bytes()).ok_or_else(|| EngineError::NotFound { path: path.into() })?;
        if entry.kind == Kind::Dir {
            return Err(EngineError::Invalid(format!("`{path}` is a directory")));
        }
        if entry.content.as_slice() != content_hash {
            return Err(EngineError::ContentChanged { path: path.into(), expected: hex::encode(content_hash) });
        }
        let start = offset.min(entry.size);
        let len = u64::from(length.min(MAX_CHUNK)).min(entry.size - start) as usize;
        let full = state_hash::join(&self.paths.committed, &entry.path);
        let data = match entry.kind {
            Kind::Symlink => {
                let target = fs::read_link(&full).map_err(SnapshotError::io("cannot read link", &full))?;
                let bytes = std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()).to_vec();
                bytes.get(start as usize..start as usize + len).map(<[u8]>::to_vec).unwrap_or_default()
            }
            _ => {
                let file = state_hash::open_regular(&full).map_err(SnapshotError::io("cannot open", &full))?;
                let mut data = vec![0u8; len];
                let mut filled = 0;
                while filled < len {
                    match file.read_at(&mut data[filled..], start + filled as u64) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(source) => return Err(SnapshotError::Io { what: "cannot read", path: full, source }.into()),
                    }
                }
                data.truncate(filled);
                data
            }
        };
        let eof = start + data.len() as u64 >= entry.size;
        Ok((data, eof))
    }

    /// Stages one chunk received from a peer.
    pub fn stage_chunk(&mut self, path: &str, offset: u64, data: &[u8], reset: bool) -> Result<(), EngineError> {
        sync::stage_chunk(&self.paths.staging, &self.committed, path, offset, data, reset)?;
        Ok(())
    }

    /// Replaces the state by the target manifest, built from staged files and unchanged committed
    /// ones, only if it hashes to `state_hash`; the committed copy is swapped in one rename, then
    /// `state/` is brought to it. Sets the seq; no result is recorded for it.
    pub fn apply_staged(&mut self, seq: u64, state_hash: Hash, entries: Vec<WireEntry>) -> Result<(), EngineError> {
        let target = sync::parse_manifest(entries)?;
        let result = sync::build_incoming(
            &self.paths.incoming,
            &self.paths.staging,
            &self.paths.committed,
            &self.committed,
            &target,
        );
        let discard = |paths: &Paths| {
            let _ = snapshot::remove_any(&paths.incoming);
        };
        if let Err(e) = result {
            discard(&self.paths);
            return Err(e.into());
        }
        let mut hasher = StateHasher::new(&self.paths.incoming);
        let scan = match hasher.scan() {
            Ok(scan) => scan,
            Err(e) => {
                discard(&self.paths);
                return Err(e.into());
            }
        };
        if scan.root != state_hash {
            discard(&self.paths);
            return Err(EngineError::HashMismatch { expected: hex::encode(state_hash), got: hex::encode(scan.root) });
        }
        let record = Record { seq: Some(seq), state_hash, reply: None };
        record.save(&self.paths.pending, true)?;
        swap_dirs(&self.paths.incoming, &self.paths.committed)?;
        snapshot::fsync_dir(&self.paths.data).map_err(SnapshotError::io("cannot fsync", &self.paths.data))?;
        hasher.set_root(&self.paths.committed);
        self.committed_hasher = hasher;
        self.committed = scan;
        self.finalize(record)?;
        self.data_loss = None;
        for done in [&self.paths.incoming, &self.paths.staging] {
            snapshot::remove_any(done).map_err(SnapshotError::io("cannot remove", done))?;
        }
        tracing::info!(seq, state_hash = %hex::encode(state_hash), "state applied from peers");
        self.ensure_state(true)?;
        self.load_patch();
        Ok(())
    }

    /// The paths this engine uses.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// What hashing `state/` after the last run cost (incremental hashing is tested on it).
    pub fn last_scan_stats(&self) -> HashStats {
        self.last_scan
    }
}

/// Swaps two directories in one `renameat2(RENAME_EXCHANGE)`; `b` may be missing.
fn swap_dirs(a: &Path, b: &Path) -> Result<(), SnapshotError> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    if !b.exists() {
        return fs::rename(a, b).map_err(SnapshotError::io("cannot rename", a));
    }
    renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE).map_err(|e| SnapshotError::Io {
        what: "cannot swap in",
        path: PathBuf::from(b),
        source: e.into(),
    })
}

/// The bytes of a patch file: a regular file of at most [`MAX_PATCH_BYTES`], else
/// `InvalidData` (a link, a folder or a larger file is never read).
fn read_patch(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "patch.cfg is not a regular file"));
    }
    if meta.len() > MAX_PATCH_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("patch.cfg is larger than {MAX_PATCH_BYTES} bytes"),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    fs::File::open(path)?.take(MAX_PATCH_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_PATCH_BYTES {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "patch.cfg grew while read"));
    }
    Ok(bytes)
}

/// Links `<parent>/patch.cfg` to `<state>/.patch.cfg`, where HotPocket contracts look for it
/// (`../patch.cfg` from their working folder). Something else already there is left alone.
fn link_patch(parent: Option<&Path>, state: &Path) {
    let (Some(parent), Some(name)) = (parent, state.file_name()) else { return };
    let link = parent.join(PATCH_LINK);
    let target = Path::new(name).join(PATCH_FILE_IN_STATE);
    match fs::symlink_metadata(&link) {
        Ok(meta) if !meta.is_symlink() => {
            tracing::warn!(path = %link.display(), "patch.cfg beside state/ is not execd's link; contracts will not find the config there");
        }
        Ok(_) if fs::read_link(&link).is_ok_and(|existing| existing == target) => {}
        _ => {
            let _ = fs::remove_file(&link);
            if let Err(e) = std::os::unix::fs::symlink(&target, &link) {
                tracing::warn!(path = %link.display(), error = %e, "cannot link patch.cfg beside state/");
            }
        }
    }
}
