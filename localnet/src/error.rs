//! Why a step of starting, running or loading a local cluster failed: one variant per step,
//! carrying what is needed to act on it (the node, its log's last lines).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LocalnetError {
    #[error(
        "{path} is missing: build the binaries first (cargo build --workspace --bins, with --release for a release hp-bench) or set HP_BIN_DIR"
    )]
    MissingBinary { path: PathBuf },
    #[error("cannot find the folder of the running executable: {0}")]
    NoExeDir(std::io::Error),
    #[error("a C compiler is needed to build the contract: `{cc}` was not found (install gcc or clang, or set CC)")]
    NoCompiler { cc: String },
    #[error("compiling {source_path} failed:\n{stderr}")]
    Compile { source_path: PathBuf, stderr: String },
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("creating the folders of node {node}: {source}")]
    Folders { node: usize, source: hp_cfg::create::CreateError },
    #[error("writing the config of node {node}: {source}")]
    Config { node: usize, source: hp_cfg::ConfigError },
    #[error("{hosts} hosts given for {nodes} nodes: one host per node")]
    Hosts { hosts: usize, nodes: usize },
    #[error("no free port found in {low}..={high}")]
    NoFreePort { low: u16, high: u16 },
    #[error("starting node {node} (hotpocket run): {source}")]
    Spawn { node: usize, source: std::io::Error },
    #[error("running `hotpocket {command}` for node {node}: {source}")]
    Command { command: &'static str, node: usize, source: std::io::Error },
    #[error("node {node} exited ({status}) while starting; the end of its log {log}:\n{tail}")]
    NodeExited { node: usize, status: String, log: PathBuf, tail: String },
    #[error("timed out after {secs} s waiting for {what}; the end of node {node}'s log {log}:\n{tail}")]
    Timeout { what: String, secs: u64, node: usize, log: PathBuf, tail: String },
    #[error("user {client} cannot connect to {url}: {reason}")]
    Connect { client: usize, url: String, reason: String },
    #[error("user {client}'s first input was not answered correctly: {reason}")]
    Prime { client: usize, reason: String },
}

impl LocalnetError {
    /// For `map_err`: an I/O error of `what` on `path`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }
}
