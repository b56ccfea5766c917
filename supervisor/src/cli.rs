//! The `hotpocket` command line (docs/command-line.md).

use crate::supervisor::Component;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The default first peer port of `cluster new`; user ports start 100 above.
pub const DEFAULT_BASE_PORT: u16 = 22860;

/// Hot Pocket: runs a program on a small network of nodes that agree on its inputs, state and
/// outputs.
#[derive(Debug, Parser)]
#[command(name = "hotpocket", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a contract directory: fresh keys, default config, empty state and ledger.
    New(NewArgs),
    /// Give the node a new key pair (its UNL entry follows).
    Rekey(DirArgs),
    /// Run the node in the foreground: start, watch and restart its daemons (systemd Type=notify).
    Run(RunArgs),
    /// Show the running node: last closed ledger, state hash, peers, users and each component.
    Status(StatusArgs),
    /// Print the stored ledgers, one a line.
    Ledger(LedgerArgs),
    /// Check the whole stored chain offline; exit 1 on any fault.
    Verify(DirArgs),
    /// Restart one daemon of the running node.
    Restart(RestartArgs),
    /// Multi-node helpers.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[derive(Debug, Args)]
pub struct DirArgs {
    /// The contract directory.
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The contract directory to create (must not exist or be empty).
    pub dir: PathBuf,
    /// The contract binary to copy into bin/ (default: a small upper-casing shell contract).
    #[arg(long, value_name = "PATH")]
    pub contract: Option<PathBuf>,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

impl From<LogFormatArg> for hp_cfg::LogFormat {
    fn from(f: LogFormatArg) -> Self {
        match f {
            LogFormatArg::Text => hp_cfg::LogFormat::Text,
            LogFormatArg::Json => hp_cfg::LogFormat::Json,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The contract directory.
    pub dir: PathBuf,
    /// Log format of the supervisor and the daemons (default: the config's `logformat`).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The contract directory.
    pub dir: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LedgerArgs {
    /// The contract directory.
    pub dir: PathBuf,
    /// The first sequence number to print.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub from: u64,
    /// One JSON object a line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// The contract directory.
    pub dir: PathBuf,
    /// The daemon to restart.
    #[arg(value_enum)]
    pub component: Component,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create N contract directories <dir>/node1..N with peers and UNL wired together.
    New(ClusterNewArgs),
}

#[derive(Debug, Args)]
pub struct ClusterNewArgs {
    /// The folder to hold node1..N (must not exist or be empty).
    pub dir: PathBuf,
    /// How many nodes.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub nodes: u16,
    /// How many observers besides: nodes that follow the chain and serve users but do not
    /// vote (node N+1.., not in the UNL).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub observers: u16,
    /// The contract binary to copy into each node's bin/.
    #[arg(long, value_name = "PATH")]
    pub contract: Option<PathBuf>,
    /// The first peer port; node i gets P+i-1, and P+100+i-1 as its user port.
    #[arg(long, value_name = "P", default_value_t = DEFAULT_BASE_PORT)]
    pub base_port: u16,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_design_surface() {
        let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("hotpocket").chain(args.iter().copied()));
        assert!(matches!(
            parse(&["status", "d", "--json"]).unwrap().command,
            Command::Status(StatusArgs { json: true, .. })
        ));
        let Command::Restart(r) = parse(&["restart", "d", "execd"]).unwrap().command else { panic!() };
        assert_eq!(r.component, Component::Execd);
        assert!(parse(&["restart", "d", "supervisor"]).is_err());
        let Command::Cluster(ClusterCommand::New(c)) = parse(&["cluster", "new", "d", "--nodes", "3"]).unwrap().command
        else {
            panic!()
        };
        assert_eq!((c.nodes, c.base_port), (3, DEFAULT_BASE_PORT));
        let Command::Ledger(l) = parse(&["ledger", "d", "--from", "5", "--json"]).unwrap().command else { panic!() };
        assert_eq!((l.from, l.json), (5, true));
        let Command::Run(r) = parse(&["run", "d", "--log-format", "json"]).unwrap().command else { panic!() };
        assert_eq!(r.log_format, Some(LogFormatArg::Json));
    }
}
