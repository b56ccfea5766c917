//! Memory and CPU of each node's processes, read from `/proc`: a node is its supervisor and
//! every descendant (the three daemons and, while it runs, the contract).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::time::Duration;
use tokio::sync::watch;

/// Clock ticks per second in `/proc/<pid>/stat`: USER_HZ, fixed at 100 in Linux's ABI.
const USER_HZ: f64 = 100.0;
/// How often memory is sampled during a run.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// One process as `/proc` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    /// The executable's name (`comm`, at most 15 characters).
    pub name: String,
    /// Resident memory, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// User + system time of the process itself, ticks.
    pub cpu_ticks: u64,
    /// User + system time of its waited-for children (for execd: the contract runs), ticks.
    pub children_ticks: u64,
}

/// Every process of the machine, by pid.
pub fn snapshot() -> HashMap<i32, Proc> {
    let Ok(entries) = fs::read_dir("/proc") else { return HashMap::new() };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter_map(read_proc)
        .map(|p| (p.pid, p))
        .collect()
}

fn read_proc(pid: i32) -> Option<Proc> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut proc = parse_stat(&stat)?;
    // Kernel threads and exited processes have no VmRSS line: zero.
    proc.rss_kib = fs::read_to_string(format!("/proc/{pid}/status")).ok().and_then(|s| parse_vm_rss(&s)).unwrap_or(0);
    Some(proc)
}

/// Parses `/proc/<pid>/stat`: `pid (comm) state ppid ...`; comm may hold spaces and
/// parentheses, so the fields are counted from the last `)`.
pub fn parse_stat(stat: &str) -> Option<Proc> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let pid = stat[..open].trim().parse().ok()?;
    let name = stat[open + 1..close].to_string();
    // After ")": state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<i64>().ok());
    Some(Proc {
        pid,
        ppid: field(4)? as i32,
        name,
        rss_kib: 0,
        cpu_ticks: (field(14)? + field(15)?).max(0) as u64,
        children_ticks: (field(16)? + field(17)?).max(0) as u64,
    })
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `root` and all its descendants in `procs`.
pub fn tree(procs: &HashMap<i32, Proc>, root: i32) -> Vec<&Proc> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in procs.values() {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        if let Some(p) = procs.get(&pid) {
            out.push(p);
        }
        todo.extend(children.get(&pid).into_iter().flatten().copied().filter(|c| *c != pid));
    }
    out
}

/// The peaks seen while sampling.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryPeaks {
    /// Per node (in node order): the highest sum of its processes' RSS, MiB.
    pub per_node_mib: Vec<f64>,
    /// Per executable name: the highest RSS of one such process of any node, MiB.
    pub per_process_mib: BTreeMap<String, f64>,
}

impl MemoryPeaks {
    /// The node that used the most.
    pub fn max_node_mib(&self) -> f64 {
        self.per_node_mib.iter().copied().fold(0.0, f64::max)
    }

    fn record(&mut self, procs: &HashMap<i32, Proc>, supervisors: &[i32]) {
        self.per_node_mib.resize(supervisors.len(), 0.0);
        for (i, root) in supervisors.iter().enumerate() {
            let members = tree(procs, *root);
            let total: u64 = members.iter().map(|p| p.rss_kib).sum();
            self.per_node_mib[i] = self.per_node_mib[i].max(total as f64 / 1024.0);
            for p in members {
                let peak = self.per_process_mib.entry(p.name.clone()).or_insert(0.0);
                *peak = peak.max(p.rss_kib as f64 / 1024.0);
            }
        }
    }
}

/// Samples the nodes' memory every [`SAMPLE_EVERY`] until [`MemorySampler::finish`].
pub struct MemorySampler {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<MemoryPeaks>,
}

impl MemorySampler {
    /// Starts sampling the process trees under the given supervisor pids.
    pub fn start(supervisors: Vec<i32>) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut peaks = MemoryPeaks::default();
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let sups = supervisors.clone();
                        let procs = tokio::task::spawn_blocking(snapshot).await.unwrap_or_default();
                        peaks.record(&procs, &sups);
                    }
                    _ = stopped.changed() => return peaks,
                }
            }
        });
        Self { stop, task }
    }

    /// Stops sampling and returns the peaks.
    pub async fn finish(self) -> MemoryPeaks {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// CPU seconds per executable name over all nodes between two snapshots; the contract's time
/// (counted in execd's children time once execd has waited for it) is listed as `contract`.
pub fn cpu_between(
    before: &HashMap<i32, Proc>,
    after: &HashMap<i32, Proc>,
    supervisors: &[i32],
) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    for root in supervisors {
        for p in tree(after, *root) {
            let (cpu0, child0) = before.get(&p.pid).map(|b| (b.cpu_ticks, b.children_ticks)).unwrap_or((0, 0));
            *out.entry(p.name.clone()).or_insert(0.0) += p.cpu_ticks.saturating_sub(cpu0) as f64 / USER_HZ;
            if p.name.contains("execd") {
                *out.entry("contract".into()).or_insert(0.0) +=
                    p.children_ticks.saturating_sub(child0) as f64 / USER_HZ;
            }
        }
    }
    out
}

/// CPU seconds of this process (the benchmark's users) between two snapshots.
pub fn own_cpu(before: &HashMap<i32, Proc>, after: &HashMap<i32, Proc>) -> f64 {
    let me = std::process::id() as i32;
    let ticks = |s: &HashMap<i32, Proc>| s.get(&me).map(|p| p.cpu_ticks).unwrap_or(0);
    ticks(after).saturating_sub(ticks(before)) as f64 / USER_HZ
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_awkward_names_parse() {
        let line = "4242 (hp (x) d) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 30 7 3 20 0 4 0 1 1 1";
        let p = parse_stat(line).unwrap();
        assert_eq!((p.pid, p.ppid, p.name.as_str()), (4242, 17, "hp (x) d"));
        assert_eq!((p.cpu_ticks, p.children_ticks), (280, 10));
    }

    #[test]
    fn a_tree_holds_the_root_and_its_descendants_only() {
        let mk =
            |pid, ppid| Proc { pid, ppid, name: format!("p{pid}"), rss_kib: 1024, cpu_ticks: 0, children_ticks: 0 };
        let procs: HashMap<i32, Proc> =
            [mk(1, 0), mk(10, 1), mk(11, 10), mk(12, 10), mk(20, 1)].into_iter().map(|p| (p.pid, p)).collect();
        let mut pids: Vec<i32> = tree(&procs, 10).iter().map(|p| p.pid).collect();
        pids.sort();
        assert_eq!(pids, vec![10, 11, 12]);
        let mut peaks = MemoryPeaks::default();
        peaks.record(&procs, &[10, 20]);
        assert_eq!(peaks.per_node_mib, vec![3.0, 1.0]);
        assert_eq!(peaks.max_node_mib(), 3.0);
    }

    #[test]
    fn this_process_is_seen() {
        let me = std::process::id() as i32;
        let procs = snapshot();
        assert!(procs.get(&me).is_some_and(|p| p.rss_kib > 0));
    }
}
