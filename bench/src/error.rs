//! Why a benchmark run failed.

use std::path::PathBuf;

/// One variant per failed step, carrying what is needed to act on it.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("--down {down} of {nodes} nodes leaves {running} running, fewer than the quorum of {quorum}")]
    NoQuorum { down: usize, nodes: usize, running: usize, quorum: usize },
    /// Options that make sense alone but not together.
    #[error("{0}")]
    Options(&'static str),
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    /// Finding the binaries, compiling the contract, the cluster and the users.
    #[error(transparent)]
    Localnet(#[from] hp_localnet::LocalnetError),
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
}

impl BenchError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }
}
