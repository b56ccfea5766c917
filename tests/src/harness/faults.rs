//! Faults done to a node from outside, as an operator or the OS would: `kill -9` of one
//! component or of the whole node, SIGSTOP/SIGCONT of the whole node, wiping its data while it is stopped.

use crate::Node;
use crate::cluster::pids_mentioning;
use crate::wait_until;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::Duration;

/// `kill -9` of one component (`userd`, `consensusd`, `execd`); returns once the supervisor
/// shows a new process of it running.
pub fn kill_component(node: &Node, component: &str) {
    let old = wait_until(&format!("node {} {component} pid", node.index + 1), Duration::from_secs(20), || {
        node.component_pid(component)
    });
    kill(Pid::from_raw(old), Signal::SIGKILL).unwrap_or_else(|e| panic!("kill -9 {component} ({old}): {e}"));
    wait_until(
        &format!("node {} to restart {component} after kill -9\n{}", node.index + 1, node.log_tail(30)),
        Duration::from_secs(30),
        || {
            let s = node.status()?;
            let c = &s["components"][component];
            let pid = c["pid"].as_i64()? as i32;
            (pid != old && c["state"] == "running").then_some(())
        },
    );
}

/// Sends `signal` to every process of the node: supervisor, daemons, contract.
pub fn signal_node(node: &Node, signal: Signal) {
    let mut pids = pids_mentioning(&node.dir.to_string_lossy());
    if let Some(sup) = node.supervisor_pid() {
        pids.retain(|p| *p != sup);
        pids.insert(0, sup);
    }
    for pid in pids {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// `kill -9` of all four processes of the node at once — supervisor and daemons (and the
/// contract) — so that no daemon gets the supervisor's parting SIGTERM and shuts down cleanly.
/// The supervisor is frozen first so it cannot restart anything in between.
pub fn kill_9_node(node: &mut Node) {
    if let Some(sup) = node.supervisor_pid() {
        let _ = kill(Pid::from_raw(sup), Signal::SIGSTOP);
        for pid in pids_mentioning(&node.dir.to_string_lossy()).into_iter().filter(|p| *p != sup) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    node.kill();
}

/// SIGSTOP of the whole node: it stops answering anything, its sockets stay open.
pub fn pause(node: &Node) {
    signal_node(node, Signal::SIGSTOP);
}

/// SIGCONT of the whole node.
pub fn resume(node: &Node) {
    signal_node(node, Signal::SIGCONT);
}

/// Removes everything in `hist/` and `state/` (the ledger store, execd's copies, the contract's
/// state), keeping `cfg/` and `bin/`. The node must not be running.
pub fn wipe(node: &Node) {
    assert!(!node.is_running(), "wipe a stopped node only");
    for sub in ["hist", "state"] {
        let dir = node.dir.join(sub);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            let removed = if path.is_dir() && !path.is_symlink() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
        }
    }
}

/// `kill -9` of the contract while it runs on this node (found by its working folder, the
/// node's `state/`); returns whether one was caught within `within`.
pub fn kill_contract(node: &Node, within: Duration) -> bool {
    let state = node.dir.join("state");
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        let Ok(entries) = std::fs::read_dir("/proc") else { return false };
        for pid in entries.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok())) {
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"));
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cwd.is_ok_and(|c| c == state) && String::from_utf8_lossy(&cmd).contains("fault-contract") {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}
