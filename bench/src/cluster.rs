//! The benchmark's cluster: how many nodes, how many of them are left down, and what the
//! benchmark changes in their configs (large inputs, every user from 127.0.0.1 at once). The
//! cluster itself — folders, ports, processes, stopping them always — is hp-localnet's
//! [`Cluster`](hp_localnet::Cluster).

use crate::BenchError;
use hp_cfg::{Config, NodeKey};
use hp_localnet::ClusterOptions;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the supervisors get to stop their daemons after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(15);
/// `max_input_ledger_offset` of a HotPocket benchmark, and how far ahead its users set
/// `max_ledger_seq_no`: under load ledgers close many times a second, and a user learns the
/// last closed ledger only from its own statuses and outputs, so the default of 10 would let
/// inputs expire while they wait in a full window.
pub const HOTPOCKET_OFFSET: u64 = 1000;

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
    /// The contract sandbox (`false`: `"sandbox": false`, to measure what it costs).
    pub sandbox: bool,
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

    /// The cluster in `root` (kept: hp-bench owns the folder), with the binaries of `bin_dir`,
    /// stopped cleanly also when dropped (errors, Ctrl-C).
    pub fn options(&self, root: &Path, bin_dir: &Path, hotpocket: bool) -> ClusterOptions {
        let (pubmaxsize, users, loglevel) = (self.pubmaxsize, self.users.max(1), self.loglevel.clone());
        let sandbox = self.sandbox;
        ClusterOptions {
            nodes: self.nodes,
            contract: Some(self.contract.clone()),
            roundtime_ms: self.roundtime_ms,
            edit: Some(Box::new(move |_, cfg: &mut Config| {
                cfg.pubmaxsize = cfg.pubmaxsize.max(pubmaxsize);
                // Every user comes from 127.0.0.1 and they connect at once.
                cfg.max_connections = cfg.max_connections.max(users);
                cfg.max_connections_per_ip = cfg.max_connections;
                cfg.max_unauth_connections = cfg.max_unauth_connections.max(users);
                cfg.max_unauth_per_ip = cfg.max_unauth_connections;
                cfg.loglevel = loglevel.clone();
                cfg.max_input_ledger_offset = HOTPOCKET_OFFSET;
                cfg.sandbox = sandbox;
            })),
            hosts: None,
            root: Some(root.to_path_buf()),
            bin_dir: Some(bin_dir.to_path_buf()),
            drop_grace: Some(STOP_GRACE),
            hotpocket,
        }
    }
}
