//! Why a benchmark run failed.

use std::path::PathBuf;

/// One variant per failed step, carrying what is needed to act on it.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("--down {down} of {nodes} nodes leaves {running} running, fewer than the quorum of {quorum}")]
    NoQuorum { down: usize, nodes: usize, running: usize, quorum: usize },
    #[error("{path} is missing: build the binaries first (cargo build --release --workspace --bins) or set HP_BIN_DIR")]
    MissingBinary { path: PathBuf },
    #[error("cannot find the folder of the hp-bench executable: {0}")]
    NoExeDir(std::io::Error),
    #[error(
        "a C compiler is needed to build the echo contract: `{cc}` was not found (install gcc or clang, or set CC)"
    )]
    NoCompiler { cc: String },
    #[error("compiling {source_path} failed:\n{stderr}")]
    Compile { source_path: PathBuf, stderr: String },
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("creating the folders of node {node}: {source}")]
    Folders { node: usize, source: hp_cfg::create::CreateError },
    #[error("writing the config of node {node}: {source}")]
    Config { node: usize, source: hp_cfg::ConfigError },
    #[error("no free port on 127.0.0.1: {0}")]
    Ports(std::io::Error),
    #[error("starting node {node} (hotpocket run): {source}")]
    Spawn { node: usize, source: std::io::Error },
    #[error("node {node} exited ({status}) while starting; the end of its log {log}:\n{tail}")]
    NodeExited { node: usize, status: String, log: PathBuf, tail: String },
    #[error("timed out after {secs} s waiting for {what}; the end of node {node}'s log {log}:\n{tail}")]
    Timeout { what: String, secs: u64, node: usize, log: PathBuf, tail: String },
    #[error("user {client} cannot connect to {url}: {reason}")]
    Connect { client: usize, url: String, reason: String },
    #[error("user {client}'s first input was not answered correctly: {reason}")]
    Prime { client: usize, reason: String },
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
}

impl BenchError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }
}
