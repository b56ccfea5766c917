//! Real network hosts for the fault tests: one Linux network namespace per node, each with its
//! own address on a bridge that only the test's hosts (and the test itself, for its clients)
//! are attached to. Faults are made with the kernel's own tools: a host's link taken down (a
//! partition), or the bandwidth of every link limited with `tc tbf` (a slow WAN that queues
//! and drops bursts). (`netem` delay and loss would be the natural tool; this machine's kernel
//! has no `sch_netem`.)
//!
//! Needs root (`ip netns`, `ip link`, `tc` from iproute2). The namespaces have no route but
//! the bridge's subnet, so nothing they send leaves the test's hosts. Everything made here is
//! removed when the [`NetLab`] is dropped, also when the test fails.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Labs made by this process so far: part of every name, so that labs never share one.
static LABS: AtomicU32 = AtomicU32::new(0);

/// N hosts on one bridge.
pub struct NetLab {
    /// A short tag unique to this lab among the running processes.
    tag: String,
    hosts: usize,
    subnet: [u8; 3],
}

/// Runs `ip`/`tc` and panics with its stderr when it fails.
fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    if !out.status.success() {
        panic!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
}

impl NetLab {
    /// Makes `hosts` namespaces on a new bridge. Panics, naming the command that failed, when
    /// the machine does not allow it (not root, no iproute2).
    pub fn new(hosts: usize) -> Self {
        assert!((1..=200).contains(&hosts), "a lab has 1 to 200 hosts");
        let pid = std::process::id();
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        // Interface names have at most 15 bytes: "hv" + 6 hex + host number.
        let tag = format!("{:06x}", (pid.wrapping_mul(31).wrapping_add(n)) & 0xff_ffff);
        let subnet = [10, (pid >> 8) as u8 ^ 0x5a, (pid as u8).wrapping_add(n as u8)];
        let lab = Self { tag, hosts, subnet };
        lab.build();
        lab
    }

    fn bridge(&self) -> String {
        format!("hb{}", self.tag)
    }

    /// The bridge side of host `i`'s link.
    fn port(&self, i: usize) -> String {
        format!("hv{}{i}", self.tag)
    }

    /// Host `i`'s namespace.
    pub fn netns(&self, i: usize) -> String {
        format!("hp{}-{i}", self.tag)
    }

    /// Host `i`'s address.
    pub fn ip(&self, i: usize) -> IpAddr {
        let [a, b, c] = self.subnet;
        IpAddr::V4(Ipv4Addr::new(a, b, c, i as u8 + 1))
    }

    fn build(&self) {
        let [a, b, c] = self.subnet;
        let bridge = self.bridge();
        run("ip", &["link", "add", &bridge, "type", "bridge"]);
        // The test's own clients reach the hosts through the bridge's address.
        run("ip", &["addr", "add", &format!("{a}.{b}.{c}.254/24"), "dev", &bridge]);
        run("ip", &["link", "set", &bridge, "up"]);
        for i in 0..self.hosts {
            let (ns, port, inner) = (self.netns(i), self.port(i), format!("hi{}{i}", self.tag));
            run("ip", &["netns", "add", &ns]);
            run("ip", &["link", "add", &port, "type", "veth", "peer", "name", &inner]);
            run("ip", &["link", "set", &inner, "netns", &ns]);
            run("ip", &["link", "set", &port, "master", &bridge]);
            run("ip", &["link", "set", &port, "up"]);
            run("ip", &["-n", &ns, "link", "set", &inner, "name", "eth0"]);
            run("ip", &["-n", &ns, "addr", "add", &format!("{}/24", self.ip(i)), "dev", "eth0"]);
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
            run("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        }
    }

    /// Cuts host `i` off (its link goes down: nothing in or out, no reset sent) or connects it
    /// again.
    pub fn set_link(&self, i: usize, up: bool) {
        run("ip", &["link", "set", &self.port(i), if up { "up" } else { "down" }]);
    }

    /// Every host's link carries at most `kbit_per_sec` each way, with a queue of at most
    /// `queue_ms` worth of bytes: bursts wait in the kernel's queue, and what does not fit is
    /// dropped (TCP resends it). The kernel's token bucket filter (`tc tbf`) on both ends.
    pub fn limit_all(&self, kbit_per_sec: u32, queue_ms: u32) {
        for i in 0..self.hosts {
            let (rate, latency) = (format!("{kbit_per_sec}kbit"), format!("{queue_ms}ms"));
            let tbf = ["root", "tbf", "rate", rate.as_str(), "burst", "4kb", "latency", latency.as_str()];
            let port = self.port(i);
            run("tc", &[&["qdisc", "replace", "dev", port.as_str()][..], &tbf[..]].concat());
            let ns = self.netns(i);
            run("tc", &[&["-n", ns.as_str(), "qdisc", "replace", "dev", "eth0"][..], &tbf[..]].concat());
        }
    }

    /// Packets the limits of [`Self::limit_all`] held back (`overlimits`) and dropped, over
    /// every link, as `tc -s` counts them.
    pub fn limit_counters(&self) -> (u64, u64) {
        let mut total = (0, 0);
        for i in 0..self.hosts {
            let ns = self.netns(i);
            let outputs = [
                Command::new("tc").args(["-s", "qdisc", "show", "dev", &self.port(i)]).output(),
                Command::new("tc").args(["-n", &ns, "-s", "qdisc", "show", "dev", "eth0"]).output(),
            ];
            for out in outputs.into_iter().flatten() {
                let text = String::from_utf8_lossy(&out.stdout);
                let words: Vec<&str> = text.split([' ', ',', '(', ')', '\n']).filter(|w| !w.is_empty()).collect();
                let after = |key: &str| {
                    words.windows(2).filter(|w| w[0] == key).filter_map(|w| w[1].parse::<u64>().ok()).sum::<u64>()
                };
                total.0 += after("overlimits");
                total.1 += after("dropped");
            }
        }
        total
    }

    /// Removes every impairment.
    pub fn repair_all(&self) {
        for i in 0..self.hosts {
            let _ = Command::new("tc").args(["qdisc", "del", "dev", &self.port(i), "root"]).output();
            let _ = Command::new("tc").args(["-n", &self.netns(i), "qdisc", "del", "dev", "eth0", "root"]).output();
        }
    }

    /// The command prefix that runs a program in host `i`'s namespace.
    pub fn exec_prefix(&self, i: usize) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.netns(i)]
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for i in 0..self.hosts {
            // Deleting a namespace deletes its end of the veth pair, and with it the other end.
            let _ = Command::new("ip").args(["netns", "del", &self.netns(i)]).output();
            let _ = Command::new("ip").args(["link", "del", &self.port(i)]).output();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge()]).output();
    }
}
