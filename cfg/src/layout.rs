//! Where things live inside a contract directory (docs/ARCHITECTURE.md).

use std::path::{Path, PathBuf};

/// A contract directory: `cfg/`, `bin/`, `state/`, `hist/`, `run/`, `log/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractDir {
    root: PathBuf,
}

impl ContractDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn config_file(&self) -> PathBuf {
        self.root.join("cfg").join("hp.cfg")
    }
    /// The TLS certificate of the HotPocket user port (PEM), self-signed by `hotpocket new`
    /// or the operator's own.
    pub fn tls_cert(&self) -> PathBuf {
        self.root.join("cfg").join("tlscert.pem")
    }
    /// The TLS certificate's private key (PEM, mode 0600).
    pub fn tls_key(&self) -> PathBuf {
        self.root.join("cfg").join("tlskey.pem")
    }
    pub fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }
    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }
    pub fn hist(&self) -> PathBuf {
        self.root.join("hist")
    }
    /// execd's private bookkeeping: the committed copy of the state and the last result.
    pub fn exec_data(&self) -> PathBuf {
        self.root.join("hist").join("exec")
    }
    pub fn ledger_db(&self) -> PathBuf {
        self.root.join("hist").join("ledger.sqlite")
    }
    pub fn run(&self) -> PathBuf {
        self.root.join("run")
    }
    pub fn log(&self) -> PathBuf {
        self.root.join("log")
    }
    pub fn socket(&self, component: &str) -> PathBuf {
        self.run().join(format!("{component}.sock"))
    }
}
