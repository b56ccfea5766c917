//! One benchmark run: find the binaries, compile the echo contract, write and start the
//! cluster, wait until it agrees, connect and prime the users, run the load while sampling
//! memory, read CPU and ledgers, stop the cluster. The cluster is stopped on every path out
//! of [`run`] — also when its future is dropped (Ctrl-C) — by [`Cluster`]'s drop.

use crate::cluster::{self, ClusterSpec, STOP_GRACE};
use crate::load::{self, LoadSpec};
use crate::procstat::{self, MemorySampler};
use crate::report::{Comparison, Latency, Report, Round, round2};
use crate::{BenchError, Options, contract};
use hp_localnet::{Cluster, Node};
use std::path::PathBuf;
use std::time::Duration;

/// How long a cluster may take to start and close its first ledger.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a run keeps its files: a temporary folder, or a kept one (`--keep`).
enum WorkDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl WorkDir {
    fn new(keep: bool) -> Result<Self, BenchError> {
        let tmp = tempfile::Builder::new()
            .prefix("hp-bench-")
            .tempdir()
            .map_err(BenchError::io("cannot create a folder in", std::env::temp_dir()))?;
        // The contract may run as a user of its own (the sandbox), which must reach its `bin/`.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(BenchError::io("cannot open up", tmp.path()))?;
        Ok(if keep { Self::Kept(tmp.keep()) } else { Self::Temp(tmp) })
    }

    fn path(&self) -> PathBuf {
        match self {
            Self::Temp(t) => t.path().to_path_buf(),
            Self::Kept(p) => p.clone(),
        }
    }
}

/// The user protocols a run can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Seed,
    HotPocket,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Seed => "seed",
            Protocol::HotPocket => "hotpocket",
        }
    }
}

/// A started cluster and what it needs to stay up: its folder outlives its processes.
struct Running {
    // Declared before the folder, so dropped before it: the processes die before their folder.
    cluster: Cluster,
    _work: WorkDir,
}

/// Runs the benchmark `options` describes with `--protocol seed` or `hotpocket`; `progress`
/// receives one line per step.
pub async fn run(options: &Options, progress: impl Fn(&str)) -> Result<Report, BenchError> {
    let protocol = if options.protocol == "hotpocket" { Protocol::HotPocket } else { Protocol::Seed };
    let mut running = start(options, protocol == Protocol::HotPocket, &progress).await?;
    let measured = measure(&running.cluster, options, protocol, &progress).await;
    progress("stopping the cluster");
    running.cluster.stop(STOP_GRACE);
    let (report, samples) = measured?;
    if let (Some(path), Some(mut data)) = (&options.plot, samples) {
        data.title = plot_title(&report);
        crate::plot::write_svg(path, &data)?;
        progress(&format!("drew {}", path.display()));
    }
    Ok(report)
}

/// `--protocol both`: one cluster, serving both protocols, measured with seed users and with
/// HotPocket users in turn, `--rounds` times (seed first in odd rounds, HotPocket first in even
/// ones), so that both see the same machine: a drift in its speed during the sitting falls on
/// both alike.
pub async fn compare(options: &Options, progress: impl Fn(&str)) -> Result<Comparison, BenchError> {
    if options.plot.is_some() {
        return Err(BenchError::Options("--plot draws one load; give it with --protocol seed or hotpocket"));
    }
    let mut running = start(options, true, &progress).await?;
    let mut rounds = Vec::new();
    let outcome: Result<(), BenchError> = async {
        for round in 0..options.rounds {
            let load = async |protocol: Protocol| {
                progress(&format!("round {} of {}: {}", round + 1, options.rounds, protocol.name()));
                measure(&running.cluster, options, protocol, &progress).await.map(|(report, _)| report)
            };
            let (seed, hotpocket) = if round % 2 == 0 {
                (load(Protocol::Seed).await?, load(Protocol::HotPocket).await?)
            } else {
                let hotpocket = load(Protocol::HotPocket).await?;
                (load(Protocol::Seed).await?, hotpocket)
            };
            rounds.push(Round::new(seed, hotpocket));
        }
        Ok(())
    }
    .await;
    progress("stopping the cluster");
    running.cluster.stop(STOP_GRACE);
    outcome?;
    Ok(Comparison::new(rounds))
}

/// Builds the echo contract, writes the cluster (with the HotPocket port when `hotpocket`) and
/// starts it; returns once every running node serves.
async fn start(options: &Options, hotpocket: bool, progress: &impl Fn(&str)) -> Result<Running, BenchError> {
    let mut spec = ClusterSpec {
        nodes: options.nodes as usize,
        down: options.down as usize,
        contract: PathBuf::new(),
        roundtime_ms: options.roundtime,
        pubmaxsize: options.size,
        loglevel: options.loglevel.clone(),
        users: options.clients,
        sandbox: !options.no_sandbox,
    };
    let running = spec.running()?;
    let bin_dir = hp_localnet::bins::find(options.bin_dir.as_deref())?;
    let work = WorkDir::new(options.keep)?;
    let root = work.path();
    if options.keep {
        progress(&format!("cluster folder (kept): {}", root.display()));
    }
    spec.contract = contract::build_echo(&root)?;
    let mut cluster = Cluster::create(spec.options(&root, &bin_dir, hotpocket))?;
    progress(&format!(
        "starting {} of {} nodes from {} in {}",
        spec.nodes - spec.down,
        spec.nodes,
        bin_dir.display(),
        root.display()
    ));
    for node in &mut cluster.nodes[..running] {
        node.start()?;
    }
    cluster.wait_serving(READY_TIMEOUT).await?;
    Ok(Running { cluster, _work: work })
}

/// One measured load on a serving cluster: fresh users of `protocol` connect, keep their
/// windows full for the run's time, and leave. With `--plot`, also the samples to draw.
async fn measure(
    cluster: &Cluster,
    options: &Options,
    protocol: Protocol,
    progress: &impl Fn(&str),
) -> Result<(Report, Option<crate::plot::PlotData>), BenchError> {
    let (urls, dial) = match protocol {
        Protocol::HotPocket => {
            let urls = cluster.running().filter_map(|n| n.hotpocket_urls()).map(|(_, plain)| plain).collect();
            let unl: Vec<[u8; 32]> = cluster
                .nodes
                .iter()
                .filter_map(|n| <[u8; 32]>::try_from(hex::decode(&n.pubkey).unwrap_or_default().as_slice()).ok())
                .collect();
            (urls, hp_client::Dial::HotPocket { trusted: Some(unl), max_ledger_offset: cluster::HOTPOCKET_OFFSET })
        }
        Protocol::Seed => (cluster.urls(), hp_client::Dial::Seed),
    };
    let load_spec = LoadSpec {
        urls,
        dial,
        clients: options.clients as usize,
        window: options.window as usize,
        size: options.size as usize,
        duration: options.duration(),
    };
    progress(&format!("connecting {} users", load_spec.clients));
    let users = load::connect_all(&load_spec).await?;

    progress(&format!("running for {} s", options.seconds));
    let supervisors: Vec<i32> = cluster.running().filter_map(Node::supervisor_pid).collect();
    let seq_before = lcl_seq(&cluster.nodes[0]).await.unwrap_or(0);
    let cpu_before = procstat::snapshot();
    let sampler = MemorySampler::start(supervisors.clone());
    let mut result = load::drive(users, &load_spec).await;
    let memory = sampler.finish().await;
    let cpu_after = procstat::snapshot();
    let seq_after = lcl_seq(&cluster.nodes[0]).await.unwrap_or(seq_before);

    let mut cpu_seconds = procstat::cpu_between(&cpu_before, &cpu_after, &supervisors);
    cpu_seconds.insert("hp-bench".into(), procstat::own_cpu(&cpu_before, &cpu_after));
    cpu_seconds.values_mut().for_each(|s| *s = round2(*s));
    let inputs = result.latencies_us.len() as u64;
    let secs = result.elapsed.as_secs_f64().max(f64::EPSILON);
    let ledgers = seq_after.saturating_sub(seq_before);
    let samples = options.plot.as_ref().map(|_| crate::plot::PlotData {
        title: String::new(),
        latencies_us: result.latencies_us.clone(),
        answered_at_s: std::mem::take(&mut result.answered_at_s),
    });
    let report = Report {
        nodes: options.nodes,
        clients: options.clients,
        seconds: options.seconds,
        size: options.size,
        inputs,
        inputs_per_sec: round2(inputs as f64 / secs),
        latency_ms: Latency::from_micros(&mut result.latencies_us),
        ledgers,
        errors: result.errors,
        window: options.window,
        roundtime_ms: options.roundtime,
        down: options.down,
        ledgers_per_sec: round2(ledgers as f64 / secs),
        inputs_per_ledger: round2(if ledgers == 0 { 0.0 } else { inputs as f64 / ledgers as f64 }),
        peak_rss_mib: round2(memory.max_node_mib()),
        peak_rss_mib_per_node: memory.per_node_mib.iter().map(|m| round2(*m)).collect(),
        peak_rss_mib_by_process: memory.per_process_mib.iter().map(|(k, v)| (k.clone(), round2(*v))).collect(),
        cpu_seconds,
        error_frames: result.error_frames,
        error_samples: result.error_samples,
        protocol: protocol.name().into(),
    };
    Ok((report, samples))
}

/// The picture's title: what ran and what came of it.
fn plot_title(r: &Report) -> String {
    let down = if r.down > 0 { format!(" ({} down)", r.down) } else { String::new() };
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "hp-bench: {}{down}, {} × window {}, {}-byte inputs, {} s — {:.0} inputs/s, p50 {:.1} ms, p99 {:.1} ms",
        plural(r.nodes, "node", "nodes"),
        plural(r.clients, "user", "users"),
        r.window,
        r.size,
        r.seconds,
        r.inputs_per_sec,
        r.latency_ms.p50,
        r.latency_ms.p99
    )
}

/// The last closed ledger of `node`, `None` when it does not answer.
async fn lcl_seq(node: &Node) -> Option<u64> {
    node.status_async().await.and_then(|s| s["lcl_seq"].as_u64())
}
