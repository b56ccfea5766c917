//! The command line of `hp-bench` (docs/command-line.md).

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// Starts a real local cluster of N nodes (hotpocket run, real sockets, free ports, a temporary
/// folder) with an echo contract, drives C websocket users spread over the nodes, each keeping
/// a window of inputs in flight, and measures for every input the time from sending it to
/// receiving its output. Stops the cluster it started, always (also on Ctrl-C or error).
///
/// The binaries are taken from --bin-dir, else $HP_BIN_DIR, else the folder of hp-bench.
#[derive(Debug, Clone, Parser)]
#[command(name = "hp-bench", version)]
pub struct Options {
    /// Nodes in the cluster (all in the UNL).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub nodes: u64,
    /// Nodes of the UNL that are not started (the last ones): the network runs degraded, as
    /// with nodes down for maintenance. The others must still make a quorum.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=63))]
    pub down: u64,
    /// Websocket users, spread round-robin over the running nodes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub clients: u64,
    /// How long the users keep sending; then the inputs still in flight are awaited.
    #[arg(long, default_value_t = 10.0, value_parser = parse_seconds)]
    pub seconds: f64,
    /// Bytes per input (at least 16: each input carries its user and sequence number).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    pub size: u64,
    /// Inputs in flight per user: a user sends while fewer of its inputs await their output.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub window: u64,
    /// The nodes' `roundtime` (ms): the heartbeat of an idle network.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub roundtime: u64,
    /// The nodes' `loglevel` (a tracing filter such as info, warn, hp_consensusd=debug,info).
    #[arg(long, default_value = "info")]
    pub loglevel: String,
    /// The user protocol: `seed` (pubport) or `hotpocket` (HotPocket 0.6 on hpport_plain:
    /// signed inputs, outputs verified against the UNL by every user); `both` measures one
    /// cluster with each in turn, `--rounds` times, and compares them.
    #[arg(long, default_value = "seed", value_parser = ["seed", "hotpocket", "both"])]
    pub protocol: String,
    /// With `--protocol both`: how many rounds of one seed load and one HotPocket load.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub rounds: u64,
    /// Run the contract without its sandbox (`"sandbox": false`), to measure what it costs.
    #[arg(long)]
    pub no_sandbox: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Keep the cluster folder (node configs and logs) after the run and print its path.
    #[arg(long)]
    pub keep: bool,
    /// Draw the run to this SVG file: the latency distribution (CDF) and inputs/s over time.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// The folder holding hotpocket, hp-userd, hp-consensusd and hp-execd.
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
}

impl Options {
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    let secs: f64 = text.parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if secs > 0.0 && secs <= 86_400.0 {
        Ok(secs)
    } else {
        Err(format!("must be more than 0 and at most 86400, found {secs}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_consistent_and_has_the_design_defaults() {
        Options::command().debug_assert();
        let o = Options::try_parse_from(["hp-bench"]).unwrap();
        assert_eq!((o.nodes, o.down, o.clients, o.size, o.window, o.json), (3, 0, 1, 100, 8, false));
        let o = Options::try_parse_from(["hp-bench", "--nodes", "5", "--clients", "32", "--seconds", "2.5", "--json"])
            .unwrap();
        assert_eq!((o.nodes, o.clients, o.seconds, o.json), (5, 32, 2.5, true));
        assert!(Options::try_parse_from(["hp-bench", "--size", "8"]).is_err());
        assert!(Options::try_parse_from(["hp-bench", "--seconds", "0"]).is_err());
        let o = Options::try_parse_from(["hp-bench", "--protocol", "both"]).unwrap();
        assert_eq!((o.protocol.as_str(), o.rounds), ("both", 3));
        assert!(Options::try_parse_from(["hp-bench", "--protocol", "both", "--rounds", "0"]).is_err());
    }
}
