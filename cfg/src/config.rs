//! The schema of `cfg/hp.cfg` and its validation.
//!
//! The file is JSON. The prototype's field names stay valid and numbers may be written as
//! numbers or as strings (`"roundtime": "1000"`). Parsing walks the JSON object field by field
//! so that every error names the field and says what is wrong with it; unknown fields are
//! refused, so a typo such as `rountime` is caught at start instead of silently ignored.

use crate::keys::{self, NodeKey};
use serde_json::{Map, Value, json};
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The largest hp.cfg we read; a bigger file is refused before it is read into memory.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// The highest `max_ledger_users` allowed: 32 bytes each, a ledger listing them all still fits
/// a peer frame (160 MiB) with room for its inputs.
pub const MAX_LEDGER_USERS_LIMIT: u64 = 1_000_000;
/// The highest `max_ledger_inputs` allowed.
pub const MAX_LEDGER_INPUTS_LIMIT: u64 = 10_000_000;
/// The largest `npl_output_bytes`: what one node may make every peer hold for one round.
pub const MAX_NPL_OUTPUT_BYTES: u64 = 64 * 1024 * 1024;
/// The largest NPL message, as the contract library's `MAX_SEQ_PACKET_SIZE`.
pub const MAX_NPL_MESSAGE: usize = 128 * 1024;

/// Why a config could not be used. Every variant names the file or field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write config {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("config {path} is larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge { path: PathBuf },
    /// Like ssh with a private key: the file holds the node's secret key, so a copy others can
    /// read is refused rather than used.
    #[error(
        "config {path} holds the node's secret key but is open to {who} (mode {mode:04o}); \
         run `chmod 600 {path}` and start again"
    )]
    ReadableByOthers { path: PathBuf, mode: u32, who: &'static str },
    #[error("config is not valid JSON: {0}")]
    Json(String),
    #[error("config must be a JSON object")]
    NotAnObject,
    #[error("config field `{field}`: {problem}")]
    Field { field: String, problem: String },
}

/// Refuses a secret-holding file that group or others may read or write.
fn check_private(path: &Path, mode: u32) -> Result<(), ConfigError> {
    let who = match (mode & 0o070 != 0, mode & 0o007 != 0) {
        (false, false) => return Ok(()),
        (true, false) => "its group",
        (false, true) => "others",
        (true, true) => "its group and others",
    };
    Err(ConfigError::ReadableByOthers { path: path.to_path_buf(), mode: mode & 0o7777, who })
}

fn field_error(field: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Field { field: field.to_string(), problem: problem.into() }
}

/// How the contract receives its header on stdin (docs/contract-interface.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdinFormat {
    Text,
    Json,
    /// HotPocket 0.6's contract ABI (`hotpocket-nodejs-contract`): a JSON document naming an
    /// inputs file, one output descriptor per user, the NPL and control sockets.
    Hotpocket,
}

impl StdinFormat {
    /// The config's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            StdinFormat::Text => "text",
            StdinFormat::Json => "json",
            StdinFormat::Hotpocket => "hotpocket",
        }
    }

    /// Whether a user's output of one round is a sequence of messages, each written as a 4-byte
    /// big-endian length and the message (the HotPocket ABI), rather than one message of
    /// whatever the contract wrote.
    pub fn length_prefixed_outputs(self) -> bool {
        matches!(self, StdinFormat::Hotpocket)
    }
}

/// How the processes write their logs to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Resource limits of one contract run, each applied to every process the contract starts
/// (`setrlimit`). All nodes of a network must share them: a contract past one is killed or sees
/// a call fail, and that must happen on every node alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContractLimits {
    /// Writable private memory per process (`RLIMIT_DATA`), MiB.
    pub memory_mb: u64,
    /// Processes and threads of the contract's user (`RLIMIT_NPROC`); only with its own user.
    pub processes: u64,
    /// Files a process may open besides the fds execd hands it (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// The largest file a process may write (`RLIMIT_FSIZE`), MiB.
    pub file_size_mb: u64,
    /// CPU time per process (`RLIMIT_CPU`), seconds.
    pub cpu_seconds: u64,
}

impl Default for ContractLimits {
    fn default() -> Self {
        Self { memory_mb: 2048, processes: 256, open_files: 1024, file_size_mb: 1024, cpu_seconds: 60 }
    }
}

/// A protection of the contract sandbox that a node can be allowed to run without
/// (`sandbox_allow_missing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protection {
    /// The file-system view: only the writable folder, system folders and `bin/` (landlock).
    Filesystem,
    /// No sockets: no network and no connecting to the node's sockets (seccomp).
    Network,
    /// The contract runs as its own user (`contract_user`; needs the node to run as root), and
    /// so its process limit is its own.
    OwnUser,
    /// The contract cannot signal or trace the node's processes: its own user, or landlock
    /// scopes (Linux 6.12) when it shares the node's user.
    Signals,
}

impl Protection {
    pub const ALL: [Protection; 4] =
        [Protection::Filesystem, Protection::Network, Protection::OwnUser, Protection::Signals];

    /// The name used in `sandbox_allow_missing` and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Protection::Filesystem => "filesystem",
            Protection::Network => "network",
            Protection::OwnUser => "own_user",
            Protection::Signals => "signals",
        }
    }
}

impl std::fmt::Display for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated node config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The protocol version string, "0.1".
    pub hotpocket: String,
    /// Names the network (HotPocket's contract id): every node of one network has the same.
    /// The network id that every peer handshake and signature carries is derived from it
    /// ([`Config::network_id`]), so nothing signed for one network is accepted by another.
    /// A config without it gets one derived from its UNL (written back by `save`).
    pub contract_id: String,
    pub key: NodeKey,
    /// The contract binary, relative to the contract directory or absolute.
    pub binary: String,
    /// Arguments for the binary, split on whitespace.
    pub binargs: Vec<String>,
    /// `host:port` of the other nodes.
    pub peers: Vec<String>,
    /// Every validator's public key, in the order all nodes share: the UNL the network starts
    /// with (ledger 1's members; later ones come from the chain).
    pub unl: Vec<[u8; 32]>,
    /// Keys of observers: nodes that follow the chain, run the contract and serve users but
    /// do not vote. This node accepts their peer links; its own key is here if it is one.
    pub observers: Vec<[u8; 32]>,
    /// Listen address of both ports; `None` means localhost (IPv4 and IPv6).
    pub ip: Option<IpAddr>,
    pub peerport: u16,
    /// `None`: a validator-only node with no user port.
    pub pubport: Option<u16>,
    /// The HotPocket 0.6 user protocol over TLS (`wss://`), with `cfg/tlscert.pem` and
    /// `cfg/tlskey.pem`; `None`: not served.
    pub hpport: Option<u16>,
    /// The HotPocket 0.6 user protocol without TLS (`ws://`), for local use; `None`: not served.
    pub hpport_plain: Option<u16>,
    /// The contract's version, told to HotPocket clients in the handshake (they may insist on
    /// one).
    pub contract_version: String,
    /// The supervisor's HTTP port for `/metrics`, `/status` and `/health`; `None`: no listener.
    pub metrics_port: Option<u16>,
    /// Listen address of the metrics port; `None` means localhost (IPv4 and IPv6).
    pub metrics_ip: Option<IpAddr>,
    /// Milliseconds between heartbeat ledgers of an idle network.
    pub roundtime_ms: u64,
    /// The largest input frame a user may send, bytes.
    pub pubmaxsize: u64,
    /// The most input frames per minute per user; 0 means no limit.
    pub pubmaxcpm: u64,
    pub stdinfmt: StdinFormat,
    pub contract_timeout_ms: u64,
    /// Whether a `hotpocket`-format contract is told the node's secret key (`private_key`), as
    /// hpcore does. Off by default: a contract that can sign as the node can forge its votes.
    pub contract_gets_secret_key: bool,
    /// Most bytes of node-party-line (NPL) messages the contract may send in one round, and
    /// the most this node takes from one peer for one round.
    pub npl_output_bytes: u64,
    /// Most NPL messages per round, sent or taken from one peer, likewise.
    pub npl_messages_per_round: u64,
    /// Fraction of the UNL whose signatures close a ledger.
    pub threshold: f64,
    /// Most signed-in users at once.
    pub max_connections: u64,
    /// Most signed-in users from one address (an IPv6 /64 counts as one).
    pub max_connections_per_ip: u64,
    /// Most user connections that have not signed in yet; a pool apart from signed-in users.
    pub max_unauth_connections: u64,
    /// Most user connections from one address that have not signed in yet.
    pub max_unauth_per_ip: u64,
    /// A user who has not completed the handshake by then is closed.
    pub handshake_timeout_ms: u64,
    /// Most input bytes one ledger carries; the rest waits for the next ledger.
    pub max_ledger_input_bytes: u64,
    /// Most users one ledger lists (connected users and the senders of its inputs together):
    /// each gets pipes when the contract runs. A proposal listing more is refused.
    pub max_ledger_users: u64,
    /// Most inputs one ledger carries; the rest waits for the next ledger. A proposal carrying
    /// more is refused.
    pub max_ledger_inputs: u64,
    /// Most memory the inputs waiting for a ledger may take (their bytes plus a fixed cost per
    /// input). Past it the node refuses its users' new inputs with an error naming this limit,
    /// and drops inputs gossiped by peers beyond twice the limit (their origin keeps them).
    pub max_pending_input_bytes: u64,
    /// How many ledgers past the last closed one a user-signed input (HotPocket 0.6) may name
    /// as its last (`max_ledger_seq_no`); all nodes must share it.
    pub max_input_ledger_offset: u64,
    /// Who the contract runs as when the node runs as root: a user name, `uid` or `uid:gid`
    /// (numbers need no entry in /etc/passwd). `None`: the node's own user (refused as root).
    pub contract_user: Option<String>,
    /// What one contract run may use (docs/contract-interface.md, "The sandbox").
    pub contract_limits: ContractLimits,
    /// `false` turns the whole sandbox off (limits included): for measurements only.
    pub sandbox: bool,
    /// Protections the node may run without where the kernel or its user cannot give them.
    pub sandbox_allow_missing: Vec<Protection>,
    /// Extra folders or files the contract may read and execute (e.g. an interpreter's tree).
    pub sandbox_read_paths: Vec<PathBuf>,
    /// `tracing` filter, e.g. "info" or "hp_consensusd=debug,info".
    pub loglevel: String,
    pub logformat: LogFormat,
}

impl Config {
    /// A fresh config for one node: a new key pair, a UNL of itself, default ports.
    pub fn new_single(key: NodeKey) -> Self {
        let unl = vec![key.public_bytes()];
        Self {
            hotpocket: "0.1".into(),
            contract_id: new_contract_id(),
            key,
            binary: "bin/contract.sh".into(),
            binargs: Vec::new(),
            peers: Vec::new(),
            unl,
            observers: Vec::new(),
            ip: None,
            peerport: 22860,
            pubport: Some(8080),
            hpport: None,
            hpport_plain: None,
            contract_version: "1.0".into(),
            metrics_port: None,
            metrics_ip: None,
            roundtime_ms: 1000,
            pubmaxsize: 1024 * 1024,
            pubmaxcpm: 6000,
            stdinfmt: StdinFormat::Text,
            contract_timeout_ms: 10_000,
            contract_gets_secret_key: false,
            npl_output_bytes: 1024 * 1024,
            npl_messages_per_round: 256,
            threshold: 0.8,
            max_connections: 1024,
            max_connections_per_ip: 64,
            max_unauth_connections: 256,
            max_unauth_per_ip: 16,
            handshake_timeout_ms: 5_000,
            max_ledger_input_bytes: 64 * 1024 * 1024,
            max_ledger_users: 4096,
            max_ledger_inputs: 100_000,
            max_pending_input_bytes: 256 * 1024 * 1024,
            max_input_ledger_offset: 10,
            contract_user: None,
            contract_limits: ContractLimits::default(),
            sandbox: true,
            sandbox_allow_missing: Vec::new(),
            sandbox_read_paths: Vec::new(),
            loglevel: "info".into(),
            logformat: LogFormat::Text,
        }
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let read_err = |source| ConfigError::Read { path: path.to_path_buf(), source };
        let file = fs::File::open(path).map_err(read_err)?;
        let metadata = file.metadata().map_err(read_err)?;
        check_private(path, metadata.permissions().mode())?;
        let len = metadata.len();
        if len > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge { path: path.to_path_buf() });
        }
        let text = fs::read_to_string(path).map_err(read_err)?;
        Self::parse(&text)
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let value: Value = serde_json::from_str(text).map_err(|e| ConfigError::Json(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(ConfigError::NotAnObject);
        };
        Self::from_map(map)
    }

    fn from_map(mut map: Map<String, Value>) -> Result<Self, ConfigError> {
        let mut f = Fields { map: &mut map };
        let hotpocket = f.string_or_number("hotpocket")?.unwrap_or_else(|| "0.1".into());
        if hotpocket != "0.1" {
            return Err(field_error("hotpocket", format!("version {hotpocket} is not supported (expected 0.1)")));
        }
        let keytype = f.string("keytype")?.unwrap_or_else(|| "ed25519".into());
        if keytype != "ed25519" {
            return Err(field_error("keytype", format!("`{keytype}` is not supported (only ed25519)")));
        }
        let seckey = f.string("seckey")?.ok_or_else(|| field_error("seckey", "is missing"))?;
        let key = NodeKey::from_secret_hex(&seckey).map_err(|e| field_error("seckey", e.to_string()))?;
        let pubkey = f.string("pubkey")?.ok_or_else(|| field_error("pubkey", "is missing"))?;
        let pub_bytes = keys::parse_public_key(&pubkey).map_err(|e| field_error("pubkey", e.to_string()))?;
        if pub_bytes.to_bytes() != key.public_bytes() {
            return Err(field_error("pubkey", "does not belong to `seckey`"));
        }
        let binary = f.string("binary")?.ok_or_else(|| field_error("binary", "is missing"))?;
        if binary.trim().is_empty() {
            return Err(field_error("binary", "is empty"));
        }
        let binargs =
            f.string("binargs")?.map(|s| s.split_whitespace().map(str::to_string).collect()).unwrap_or_default();
        let peers = f.string_list("peers")?.unwrap_or_default();
        for (i, peer) in peers.iter().enumerate() {
            validate_peer_address(peer).map_err(|p| field_error(&format!("peers[{i}]"), p))?;
        }
        let unl_text = f.string_list("unl")?.ok_or_else(|| field_error("unl", "is missing"))?;
        let mut unl = Vec::with_capacity(unl_text.len());
        for (i, k) in unl_text.iter().enumerate() {
            let key = keys::parse_public_key(k).map_err(|e| field_error(&format!("unl[{i}]"), e.to_string()))?;
            if unl.contains(&key.to_bytes()) {
                return Err(field_error(&format!("unl[{i}]"), "is listed twice"));
            }
            unl.push(key.to_bytes());
        }
        let observers_text = f.string_list("observers")?.unwrap_or_default();
        let mut observers = Vec::with_capacity(observers_text.len());
        for (i, k) in observers_text.iter().enumerate() {
            let name = format!("observers[{i}]");
            let key = keys::parse_public_key(k).map_err(|e| field_error(&name, e.to_string()))?;
            if observers.contains(&key.to_bytes()) || unl.contains(&key.to_bytes()) {
                return Err(field_error(&name, "is listed twice (or also in `unl`)"));
            }
            observers.push(key.to_bytes());
        }
        if !unl.contains(&key.public_bytes()) && !observers.contains(&key.public_bytes()) {
            return Err(field_error(
                "unl",
                "must include this node's own `pubkey` (or `observers` must, for an observer)",
            ));
        }
        let ip = f.ip("ip")?;
        let metrics_ip = f.ip("metrics_ip")?;
        let contract_id = match f.string("contract_id")? {
            None => contract_id_of_unl(&unl),
            Some(id) => {
                validate_contract_id(&id).map_err(|p| field_error("contract_id", p))?;
                id
            }
        };
        let defaults = Self::new_single(key.clone());
        let peerport = f.port("peerport")?.unwrap_or(defaults.peerport);
        let pubport = f.port("pubport")?;
        if pubport == Some(peerport) {
            return Err(field_error("pubport", "must differ from `peerport`"));
        }
        let hpport = f.port("hpport")?;
        let hpport_plain = f.port("hpport_plain")?;
        let mut taken = vec![("peerport", Some(peerport)), ("pubport", pubport)];
        for (name, port) in [("hpport", hpport), ("hpport_plain", hpport_plain)] {
            if let Some((other, _)) = taken.iter().find(|(_, p)| port.is_some() && *p == port) {
                return Err(field_error(name, format!("must differ from `{other}`")));
            }
            taken.push((name, port));
        }
        let contract_version = f.string_or_number("contract_version")?.unwrap_or(defaults.contract_version);
        if contract_version.is_empty() || contract_version.len() > 64 || contract_version.chars().any(char::is_control)
        {
            return Err(field_error("contract_version", "must be 1 to 64 printable characters"));
        }
        let metrics_port = f.port("metrics_port")?;
        if let Some((other, _)) = taken.iter().find(|(_, p)| metrics_port.is_some() && *p == metrics_port) {
            return Err(field_error("metrics_port", format!("must differ from `{other}`")));
        }
        let roundtime_ms = f.number("roundtime", 1, 3_600_000)?.unwrap_or(defaults.roundtime_ms);
        let pubmaxsize = f.number("pubmaxsize", 1, 256 * 1024 * 1024)?.unwrap_or(defaults.pubmaxsize);
        let pubmaxcpm = f.number("pubmaxcpm", 0, u32::MAX as u64)?.unwrap_or(defaults.pubmaxcpm);
        let stdinfmt = match f.string("stdinfmt")?.as_deref() {
            None | Some("text") => StdinFormat::Text,
            Some("json") => StdinFormat::Json,
            Some("hotpocket") => StdinFormat::Hotpocket,
            Some(other) => {
                return Err(field_error("stdinfmt", format!("`{other}` is not one of text, json, hotpocket")));
            }
        };
        let contract_timeout_ms =
            f.number("contract_timeout_ms", 100, 24 * 3_600_000)?.unwrap_or(defaults.contract_timeout_ms);
        let contract_gets_secret_key =
            f.boolean("contract_gets_secret_key")?.unwrap_or(defaults.contract_gets_secret_key);
        let npl_output_bytes =
            f.number("npl_output_bytes", 1024, MAX_NPL_OUTPUT_BYTES)?.unwrap_or(defaults.npl_output_bytes);
        let npl_messages_per_round =
            f.number("npl_messages_per_round", 1, 65_536)?.unwrap_or(defaults.npl_messages_per_round);
        let threshold = f.fraction("threshold")?.unwrap_or(defaults.threshold);
        check_threshold(threshold, unl.len())?;
        let max_connections = f.number("max_connections", 1, 1_000_000)?.unwrap_or(defaults.max_connections);
        let max_connections_per_ip =
            f.number("max_connections_per_ip", 1, 1_000_000)?.unwrap_or(defaults.max_connections_per_ip);
        let max_unauth_connections =
            f.number("max_unauth_connections", 1, 1_000_000)?.unwrap_or(defaults.max_unauth_connections);
        let max_unauth_per_ip = f.number("max_unauth_per_ip", 1, 1_000_000)?.unwrap_or(defaults.max_unauth_per_ip);
        let handshake_timeout_ms =
            f.number("handshake_timeout_ms", 100, 600_000)?.unwrap_or(defaults.handshake_timeout_ms);
        let max_ledger_input_bytes =
            f.number("max_ledger_input_bytes", 1024, 1024 * 1024 * 1024)?.unwrap_or(defaults.max_ledger_input_bytes);
        let max_ledger_users =
            f.number("max_ledger_users", 1, MAX_LEDGER_USERS_LIMIT)?.unwrap_or(defaults.max_ledger_users);
        let max_ledger_inputs =
            f.number("max_ledger_inputs", 1, MAX_LEDGER_INPUTS_LIMIT)?.unwrap_or(defaults.max_ledger_inputs);
        let max_pending_input_bytes = f
            .number("max_pending_input_bytes", 64 * 1024, 64 * 1024 * 1024 * 1024)?
            .unwrap_or(defaults.max_pending_input_bytes);
        let max_input_ledger_offset =
            f.number("max_input_ledger_offset", 1, 100_000)?.unwrap_or(defaults.max_input_ledger_offset);
        let contract_user = f.string("contract_user")?.filter(|u| !u.trim().is_empty());
        if let Some(user) = &contract_user {
            validate_contract_user(user).map_err(|p| field_error("contract_user", p))?;
        }
        let d = defaults.contract_limits;
        let contract_limits = ContractLimits {
            memory_mb: f.number("contract_memory_mb", 16, 16 * 1024 * 1024)?.unwrap_or(d.memory_mb),
            processes: f.number("contract_processes", 1, 1_000_000)?.unwrap_or(d.processes),
            open_files: f.number("contract_open_files", 16, 1_048_576)?.unwrap_or(d.open_files),
            file_size_mb: f.number("contract_file_size_mb", 1, 1024 * 1024 * 1024)?.unwrap_or(d.file_size_mb),
            cpu_seconds: f.number("contract_cpu_seconds", 1, 7 * 24 * 3600)?.unwrap_or(d.cpu_seconds),
        };
        let sandbox = f.boolean("sandbox")?.unwrap_or(defaults.sandbox);
        let allowed = f.string_list("sandbox_allow_missing")?.unwrap_or_default();
        let mut sandbox_allow_missing = Vec::with_capacity(allowed.len());
        for (i, name) in allowed.iter().enumerate() {
            let protection = Protection::ALL.into_iter().find(|p| p.name() == name).ok_or_else(|| {
                let names: Vec<&str> = Protection::ALL.iter().map(|p| p.name()).collect();
                field_error(
                    &format!("sandbox_allow_missing[{i}]"),
                    format!("`{name}` is not one of {}", names.join(", ")),
                )
            })?;
            if !sandbox_allow_missing.contains(&protection) {
                sandbox_allow_missing.push(protection);
            }
        }
        let sandbox_read_paths: Vec<PathBuf> =
            f.string_list("sandbox_read_paths")?.unwrap_or_default().into_iter().map(PathBuf::from).collect();
        if let Some(i) = sandbox_read_paths.iter().position(|p| !p.is_absolute()) {
            return Err(field_error(&format!("sandbox_read_paths[{i}]"), "must be an absolute path"));
        }
        let loglevel = f.string("loglevel")?.unwrap_or(defaults.loglevel);
        let logformat = match f.string("logformat")?.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(field_error("logformat", format!("`{other}` is not one of text, json"))),
        };
        if let Some(unknown) = map.keys().next() {
            return Err(field_error(unknown, "is not a known config field"));
        }
        Ok(Self {
            hotpocket,
            contract_id,
            key,
            binary,
            binargs,
            peers,
            unl,
            observers,
            ip,
            peerport,
            pubport,
            hpport,
            hpport_plain,
            contract_version,
            metrics_port,
            metrics_ip,
            roundtime_ms,
            pubmaxsize,
            pubmaxcpm,
            stdinfmt,
            contract_timeout_ms,
            contract_gets_secret_key,
            npl_output_bytes,
            npl_messages_per_round,
            threshold,
            max_connections,
            max_connections_per_ip,
            max_unauth_connections,
            max_unauth_per_ip,
            handshake_timeout_ms,
            max_ledger_input_bytes,
            max_ledger_users,
            max_ledger_inputs,
            max_pending_input_bytes,
            max_input_ledger_offset,
            contract_user,
            contract_limits,
            sandbox,
            sandbox_allow_missing,
            sandbox_read_paths,
            loglevel,
            logformat,
        })
    }

    /// The config as JSON, in the prototype's field names.
    pub fn to_json(&self) -> Value {
        let mut value = self.base_json();
        let sandbox = json!({
            "contract_user": self.contract_user,
            "contract_memory_mb": self.contract_limits.memory_mb,
            "contract_processes": self.contract_limits.processes,
            "contract_open_files": self.contract_limits.open_files,
            "contract_file_size_mb": self.contract_limits.file_size_mb,
            "contract_cpu_seconds": self.contract_limits.cpu_seconds,
            "sandbox": self.sandbox,
            "sandbox_allow_missing": self.sandbox_allow_missing.iter().map(|p| p.name()).collect::<Vec<_>>(),
            "sandbox_read_paths": self.sandbox_read_paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        });
        if let (Value::Object(map), Value::Object(extra)) = (&mut value, sandbox) {
            map.extend(extra);
        }
        value
    }

    /// Every field but the sandbox's (one `json!` for all would pass the macro's recursion limit).
    fn base_json(&self) -> Value {
        json!({
            "hotpocket": self.hotpocket,
            "contract_id": self.contract_id,
            "pubkey": self.key.public_hex(),
            "seckey": self.key.secret_hex(),
            "keytype": "ed25519",
            "binary": self.binary,
            "binargs": self.binargs.join(" "),
            "peers": self.peers,
            "unl": self.unl.iter().map(hex::encode).collect::<Vec<_>>(),
            "observers": self.observers.iter().map(hex::encode).collect::<Vec<_>>(),
            "ip": self.ip.map(|ip| ip.to_string()).unwrap_or_else(|| "localhost".into()),
            "peerport": self.peerport,
            "pubport": self.pubport,
            "hpport": self.hpport,
            "hpport_plain": self.hpport_plain,
            "contract_version": self.contract_version,
            "metrics_port": self.metrics_port,
            "metrics_ip": self.metrics_ip.map(|ip| ip.to_string()).unwrap_or_else(|| "localhost".into()),
            "roundtime": self.roundtime_ms,
            "pubmaxsize": self.pubmaxsize,
            "pubmaxcpm": self.pubmaxcpm,
            "stdinfmt": self.stdinfmt.as_str(),
            "contract_timeout_ms": self.contract_timeout_ms,
            "contract_gets_secret_key": self.contract_gets_secret_key,
            "npl_output_bytes": self.npl_output_bytes,
            "npl_messages_per_round": self.npl_messages_per_round,
            "threshold": self.threshold,
            "max_connections": self.max_connections,
            "max_connections_per_ip": self.max_connections_per_ip,
            "max_unauth_connections": self.max_unauth_connections,
            "max_unauth_per_ip": self.max_unauth_per_ip,
            "handshake_timeout_ms": self.handshake_timeout_ms,
            "max_ledger_input_bytes": self.max_ledger_input_bytes,
            "max_ledger_users": self.max_ledger_users,
            "max_ledger_inputs": self.max_ledger_inputs,
            "max_pending_input_bytes": self.max_pending_input_bytes,
            "max_input_ledger_offset": self.max_input_ledger_offset,
            "loglevel": self.loglevel,
            "logformat": match self.logformat { LogFormat::Text => "text", LogFormat::Json => "json" },
        })
    }

    /// Writes the config atomically (temporary file, fsync, rename) with mode 0600: it holds
    /// the node's secret key.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let write_err = |source| ConfigError::Write { path: path.to_path_buf(), source };
        let mut text = serde_json::to_string_pretty(&self.to_json()).map_err(|e| ConfigError::Json(e.to_string()))?;
        text.push('\n');
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(write_err)?;
        }
        let tmp = path.with_extension("cfg.tmp");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let _ = fs::remove_file(&tmp);
            let mut file =
                fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(write_err)?;
            file.write_all(text.as_bytes()).map_err(write_err)?;
            file.sync_all().map_err(write_err)?;
        }
        fs::rename(&tmp, path).map_err(write_err)?;
        Ok(())
    }

    /// The number of UNL signatures that close a ledger: `ceil(threshold × n)`, never below a
    /// strict majority (docs/consensus.md, quorum arithmetic).
    pub fn quorum(&self) -> usize {
        quorum(self.threshold, self.unl.len())
    }

    /// The network id: SHA-256 over a domain tag and `contract_id`. Every peer handshake and
    /// every signed message carries it, so votes, proofs and inputs of one network cannot be
    /// replayed on another that happens to share keys.
    pub fn network_id(&self) -> [u8; 32] {
        network_id(&self.contract_id)
    }

    /// This node's index in the UNL; `None` for an observer.
    pub fn my_index(&self) -> Option<usize> {
        let me = self.key.public_bytes();
        self.unl.iter().position(|k| *k == me)
    }

    /// The keys this node accepts peer links from: the UNL, then the observers, this node's
    /// own included (a link's index is its key's place here).
    pub fn peer_keys(&self) -> Vec<[u8; 32]> {
        self.unl.iter().chain(&self.observers).copied().collect()
    }
}

/// The network id of a contract id (see [`Config::network_id`]).
pub fn network_id(contract_id: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"hotpocket/network-id/v1\0");
    h.update(contract_id.as_bytes());
    h.finalize().into()
}

/// A fresh contract id for a new network: a random UUID (version 4), as HotPocket writes them.
pub fn new_contract_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The contract id of a config that names none: derived from its UNL (sorted), so the nodes of
/// one hand-written network agree on it without being told.
fn contract_id_of_unl(unl: &[[u8; 32]]) -> String {
    use sha2::{Digest, Sha256};
    let mut keys = unl.to_vec();
    keys.sort_unstable();
    let mut h = Sha256::new();
    h.update(b"hotpocket/contract-id-of-unl/v1\0");
    for k in &keys {
        h.update(k);
    }
    format!("unl-{}", hex::encode(&h.finalize()[..16]))
}

/// The most bytes a contract id may have.
pub const MAX_CONTRACT_ID_BYTES: usize = 128;

fn validate_contract_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("is empty".into());
    }
    if id.len() > MAX_CONTRACT_ID_BYTES {
        return Err(format!("is {} bytes, at most {MAX_CONTRACT_ID_BYTES} are allowed", id.len()));
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(format!("`{id}` may hold only letters, digits, '-', '_' and '.'"));
    }
    Ok(())
}

/// The quorum for `threshold` of `n` nodes: `ceil(threshold × n)`, at least a strict majority,
/// as the consensus core's [`hp_consensus::quorum_for`] (the one formula) computes it. Where
/// that refuses (an empty UNL, a threshold outside (0, 1], both refused when a config loads) it
/// is `n`: all nodes.
pub fn quorum(threshold: f64, n: usize) -> usize {
    hp_consensus::quorum_for(n, threshold).unwrap_or(n)
}

fn check_threshold(threshold: f64, n: usize) -> Result<(), ConfigError> {
    hp_consensus::quorum_for(n, threshold).map(drop).map_err(|e| field_error("threshold", e.to_string()))
}

/// A user name (as `useradd` allows), `uid` or `uid:gid`; root (0) is refused.
fn validate_contract_user(user: &str) -> Result<(), String> {
    let numbers: Option<Vec<u32>> = user.split(':').map(|p| p.parse::<u32>().ok()).collect();
    match numbers.as_deref() {
        Some([0, ..]) | Some([_, 0]) => Err("must not be root (uid or gid 0)".into()),
        Some([_]) | Some([_, _]) => Ok(()),
        Some(_) => Err(format!("`{user}` is not a name, `uid` or `uid:gid`")),
        None if user == "root" => Err("must not be root".into()),
        None if !user.is_empty()
            && user.len() <= 32
            && user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && !user.starts_with('-') =>
        {
            Ok(())
        }
        None => Err(format!("`{user}` is not a name, `uid` or `uid:gid`")),
    }
}

/// Checks a `host:port` peer address (`peers`, a contract's `peer_changeset`).
pub fn validate_peer_address(peer: &str) -> Result<(), String> {
    let Some((host, port)) = peer.rsplit_once(':') else {
        return Err(format!("`{peer}` is not host:port"));
    };
    if host.is_empty() {
        return Err(format!("`{peer}` has no host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("`{peer}` has no valid port")),
    }
}

/// Takes fields out of the JSON object one by one, so that what remains are unknown fields.
struct Fields<'a> {
    map: &'a mut Map<String, Value>,
}

impl Fields<'_> {
    fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name)
    }

    fn string(&mut self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.take(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(field_error(name, format!("must be a string, found {}", kind(&other)))),
        }
    }

    fn string_or_number(&mut self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.take(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(field_error(name, format!("must be a string, found {}", kind(&other)))),
        }
    }

    fn string_list(&mut self, name: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.take(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s),
                    other => {
                        Err(field_error(&format!("{name}[{i}]"), format!("must be a string, found {}", kind(&other))))
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(field_error(name, format!("must be a list of strings, found {}", kind(&other)))),
        }
    }

    /// A whole number given as a number or a string, within `min..=max`.
    fn number(&mut self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
        let value = match self.take(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or_else(|| field_error(name, format!("must be a whole number from {min} to {max}, found {n}")))?,
            Some(Value::String(s)) => s
                .trim()
                .parse::<u64>()
                .map_err(|_| field_error(name, format!("must be a whole number from {min} to {max}, found \"{s}\"")))?,
            Some(other) => return Err(field_error(name, format!("must be a number, found {}", kind(&other)))),
        };
        if value < min || value > max {
            return Err(field_error(name, format!("must be from {min} to {max}, found {value}")));
        }
        Ok(Some(value))
    }

    fn boolean(&mut self, name: &str) -> Result<Option<bool>, ConfigError> {
        match self.take(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(field_error(name, format!("must be true or false, found {}", kind(&other)))),
        }
    }

    /// An IP address; absent, `""` or `"localhost"` mean localhost (`None`).
    fn ip(&mut self, name: &str) -> Result<Option<IpAddr>, ConfigError> {
        match self.string(name)? {
            None => Ok(None),
            Some(s) if s.is_empty() || s == "localhost" => Ok(None),
            Some(s) => {
                s.parse::<IpAddr>().map(Some).map_err(|_| field_error(name, format!("`{s}` is not an IP address")))
            }
        }
    }

    fn port(&mut self, name: &str) -> Result<Option<u16>, ConfigError> {
        Ok(self.number(name, 1, 65535)?.map(|p| p as u16))
    }

    /// A fraction in (0, 1], or a percentage in (1, 100], as a number or a string.
    fn fraction(&mut self, name: &str) -> Result<Option<f64>, ConfigError> {
        let value = match self.take(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            Some(Value::String(s)) => s.trim().trim_end_matches('%').parse::<f64>().unwrap_or(f64::NAN),
            Some(other) => return Err(field_error(name, format!("must be a number, found {}", kind(&other)))),
        };
        let fraction = if value > 1.0 { value / 100.0 } else { value };
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(field_error(name, "must be a fraction from 0 to 1 (or a percentage up to 100)"));
        }
        Ok(Some(fraction))
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sample() -> Value {
        Config::new_single(NodeKey::generate()).to_json()
    }

    fn parse_with(edit: impl FnOnce(&mut Map<String, Value>)) -> Result<Config, ConfigError> {
        let mut value = sample();
        if let Value::Object(map) = &mut value {
            edit(map);
        }
        Config::parse(&value.to_string())
    }

    fn error_text(edit: impl FnOnce(&mut Map<String, Value>)) -> String {
        parse_with(edit).unwrap_err().to_string()
    }

    #[test]
    fn a_missing_contract_id_is_derived_from_the_unl_in_any_order() {
        let (a, b) = (NodeKey::generate(), NodeKey::generate());
        let unl = |keys: &[&NodeKey]| json!(keys.iter().map(|k| k.public_hex()).collect::<Vec<_>>());
        let of = |me: &NodeKey, order: &[&NodeKey]| {
            let mut value = Config::new_single(me.clone()).to_json();
            value["unl"] = unl(order);
            value.as_object_mut().unwrap().remove("contract_id");
            Config::parse(&value.to_string()).unwrap()
        };
        let (x, y) = (of(&a, &[&a, &b]), of(&b, &[&b, &a]));
        assert!(x.contract_id.starts_with("unl-"), "{}", x.contract_id);
        assert_eq!(x.network_id(), y.network_id());
        assert_ne!(x.network_id(), Config::new_single(a.clone()).network_id(), "a new network differs");
    }

    #[test]
    fn a_bad_contract_id_is_refused_with_its_field() {
        for bad in [json!(""), json!("has space"), json!("x".repeat(129)), json!(7)] {
            let text = error_text(|m| {
                m.insert("contract_id".into(), bad.clone());
            });
            assert!(text.contains("contract_id"), "{bad}: {text}");
        }
    }

    #[test]
    fn written_config_parses_back() {
        let cfg = parse_with(|_| {}).unwrap();
        assert_eq!(cfg.roundtime_ms, 1000);
        assert_eq!(cfg.pubport, Some(8080));
        assert_eq!(cfg.unl.len(), 1);
        assert_eq!(cfg.quorum(), 1);
    }

    #[test]
    fn numbers_may_be_strings() {
        let cfg = parse_with(|m| {
            m.insert("roundtime".into(), json!("250"));
            m.insert("pubport".into(), json!("9000"));
        })
        .unwrap();
        assert_eq!(cfg.roundtime_ms, 250);
        assert_eq!(cfg.pubport, Some(9000));
    }

    #[test]
    fn prototype_config_is_accepted() {
        let key = NodeKey::generate();
        let text = format!(
            r#"{{"hotpocket":"0.1","pubkey":"{}","seckey":"{}","keytype":"ed25519","binary":"contract",
            "binargs":"-v  --x","peers":[],"unl":["{}"],"ip":"0.0.0.0","peerport":"22860","pubport":8080,
            "roundtime":1000,"pubmaxsize":"65536","pubmaxcpm":100}}"#,
            key.public_hex(),
            key.secret_hex(),
            key.public_hex()
        );
        let cfg = Config::parse(&text).unwrap();
        assert_eq!(cfg.binargs, vec!["-v", "--x"]);
        assert_eq!(cfg.pubmaxsize, 65536);
        assert_eq!(cfg.ip, Some("0.0.0.0".parse().unwrap()));
    }

    #[test]
    fn a_null_port_is_not_served_and_written_back_as_null() {
        let cfg = parse_with(|m| {
            m.insert("pubport".into(), Value::Null);
            m.insert("hpport".into(), Value::Null);
        })
        .unwrap();
        assert_eq!((cfg.pubport, cfg.hpport, cfg.hpport_plain), (None, None, None));
        let again = Config::parse(&cfg.to_json().to_string()).unwrap();
        assert_eq!((again.pubport, again.hpport), (None, None));
    }

    #[test]
    fn the_hotpocket_ports_must_differ_from_the_others() {
        let err = parse_with(|m| {
            m.insert("hpport".into(), json!(8080));
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("`hpport`") && err.contains("`pubport`"), "{err}");
        let err = parse_with(|m| {
            m.insert("hpport".into(), json!(9443));
            m.insert("hpport_plain".into(), json!(9443));
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("`hpport_plain`") && err.contains("`hpport`"), "{err}");
    }

    #[test]
    fn no_pubport_means_validator_only() {
        let cfg = parse_with(|m| {
            m.remove("pubport");
        })
        .unwrap();
        assert_eq!(cfg.pubport, None);
    }

    #[test]
    fn errors_name_the_field_and_the_problem() {
        type Edit = Box<dyn FnOnce(&mut Map<String, Value>)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "`roundtime`",
                Box::new(|m| {
                    m.insert("roundtime".into(), json!("fast"));
                }),
            ),
            (
                "`roundtime`",
                Box::new(|m| {
                    m.insert("roundtime".into(), json!(0));
                }),
            ),
            (
                "`pubport`",
                Box::new(|m| {
                    m.insert("pubport".into(), json!(70000));
                }),
            ),
            (
                "`max_pending_input_bytes`",
                Box::new(|m| {
                    m.insert("max_pending_input_bytes".into(), json!(1000));
                }),
            ),
            (
                "`peerport`",
                Box::new(|m| {
                    m.insert("peerport".into(), json!(-1));
                }),
            ),
            (
                "`max_ledger_users`",
                Box::new(|m| {
                    m.insert("max_ledger_users".into(), json!(0));
                }),
            ),
            (
                "`max_ledger_users`",
                Box::new(|m| {
                    m.insert("max_ledger_users".into(), json!(MAX_LEDGER_USERS_LIMIT + 1));
                }),
            ),
            (
                "`max_ledger_inputs`",
                Box::new(|m| {
                    m.insert("max_ledger_inputs".into(), json!(0));
                }),
            ),
            (
                "`max_ledger_inputs`",
                Box::new(|m| {
                    m.insert("max_ledger_inputs".into(), json!("many"));
                }),
            ),
            (
                "`seckey`",
                Box::new(|m| {
                    m.remove("seckey");
                }),
            ),
            (
                "`seckey`",
                Box::new(|m| {
                    m.insert("seckey".into(), json!("abcd"));
                }),
            ),
            (
                "`pubkey`",
                Box::new(|m| {
                    m.insert("pubkey".into(), json!(NodeKey::generate().public_hex()));
                }),
            ),
            (
                "`unl[1]`",
                Box::new(|m| {
                    m.insert("unl".into(), json!([m["pubkey"].clone(), "zz"]));
                }),
            ),
            (
                "`unl`",
                Box::new(|m| {
                    m.insert("unl".into(), json!([NodeKey::generate().public_hex()]));
                }),
            ),
            (
                "`peers[0]`",
                Box::new(|m| {
                    m.insert("peers".into(), json!(["nohost"]));
                }),
            ),
            (
                "`peers`",
                Box::new(|m| {
                    m.insert("peers".into(), json!("a:1"));
                }),
            ),
            (
                "`stdinfmt`",
                Box::new(|m| {
                    m.insert("stdinfmt".into(), json!("xml"));
                }),
            ),
            (
                "`threshold`",
                Box::new(|m| {
                    m.insert("threshold".into(), json!(1.5e3));
                }),
            ),
            (
                "`rountime`",
                Box::new(|m| {
                    m.insert("rountime".into(), json!(5));
                }),
            ),
            (
                "`keytype`",
                Box::new(|m| {
                    m.insert("keytype".into(), json!("rsa"));
                }),
            ),
            (
                "`binary`",
                Box::new(|m| {
                    m.insert("binary".into(), json!(5));
                }),
            ),
        ];
        for (field, edit) in cases {
            let text = error_text(edit);
            assert!(text.contains(field), "error `{text}` should name {field}");
        }
    }

    #[test]
    fn broken_json_and_non_objects_are_refused() {
        assert!(matches!(Config::parse("{"), Err(ConfigError::Json(_))));
        assert!(matches!(Config::parse("[1]"), Err(ConfigError::NotAnObject)));
    }

    #[test]
    fn quorum_arithmetic_matches_consensus_md() {
        assert_eq!(quorum(0.8, 1), 1);
        assert_eq!(quorum(0.8, 3), 3);
        assert_eq!(quorum(0.8, 5), 4);
        assert_eq!(quorum(0.8, 7), 6);
        assert_eq!(quorum(0.5, 4), 3);
        assert_eq!(quorum(0.1, 4), 3);
    }

    #[test]
    fn save_writes_mode_0600_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg/hp.cfg");
        let cfg = Config::new_single(NodeKey::generate());
        cfg.save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = Config::load(&path).unwrap();
        assert_eq!(back.key.public_bytes(), cfg.key.public_bytes());
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = Config::load(Path::new("/nonexistent/hp.cfg")).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/hp.cfg"), "{err}");
    }

    #[test]
    fn a_config_open_to_group_or_others_is_refused_naming_file_mode_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg/hp.cfg");
        Config::new_single(NodeKey::generate()).save(&path).unwrap();
        for (mode, who) in
            [(0o640, "its group"), (0o604, "others"), (0o644, "its group and others"), (0o620, "its group")]
        {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = Config::load(&path).unwrap_err();
            assert!(matches!(err, ConfigError::ReadableByOthers { .. }), "{mode:o}: {err}");
            let text = err.to_string();
            let shown = path.display().to_string();
            assert!(text.contains(&shown) && text.contains(&format!("{mode:04o}")) && text.contains(who), "{text}");
            assert!(text.contains(&format!("chmod 600 {shown}")), "{text}");
        }
        for mode in [0o600, 0o400] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            assert!(Config::load(&path).is_ok(), "mode {mode:o} must load");
        }
    }
}
