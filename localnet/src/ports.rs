//! Ports that cannot collide between tests or benchmarks, even when their processes run in
//! parallel.
//!
//! A port chosen now is bound by a node only later, so two things could take it meanwhile:
//! another test, and the kernel itself, which hands out ports of its ephemeral range to every
//! outgoing connection and every `bind(0)`. So ports come from below the ephemeral range, where
//! the kernel never hands any out; each is claimed for this process with a lock file naming its
//! pid (another process skips it while this one lives), and remembered here so that it is never
//! handed out twice. A candidate must also be free on 127.0.0.1 (and ::1 where there is IPv6).

use crate::LocalnetError;
use std::collections::HashSet;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Mutex;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Where the claims of all processes on this machine live. (The name is older than this crate;
/// kept so that processes built from older checkouts still see the same claims.)
fn claims_dir() -> PathBuf {
    std::env::temp_dir().join("hp-test-ports")
}

/// The ports to choose from: below the kernel's ephemeral range when there is room there.
fn range() -> (u16, u16) {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse::<u16>().ok()))
        .unwrap_or(32768);
    if low > 12_000 { (10_000, low - 1) } else { (40_000, 60_000) }
}

/// Claims `port` for this process unless a live process holds it.
fn claim(port: u16) -> bool {
    let dir = claims_dir();
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(port.to_string());
    let me = std::process::id();
    for _ in 0..2 {
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                let _ = write!(file, "{me}");
                return true;
            }
            Err(_) => {
                let holder = std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<u32>().ok());
                match holder {
                    Some(pid) if pid == me => return true,
                    Some(pid) if std::path::Path::new(&format!("/proc/{pid}")).exists() => return false,
                    // A claim of a process that is gone (or half written): take it over.
                    _ => {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }
    }
    false
}

/// Removes the claims of processes that are gone, so that the claims folder holds about as many
/// files as there are test processes running, not one per port any run ever used.
fn sweep_dead_claims() {
    let Ok(entries) = std::fs::read_dir(claims_dir()) else { return };
    for entry in entries.flatten() {
        let holder = std::fs::read_to_string(entry.path()).ok().and_then(|s| s.trim().parse::<u32>().ok());
        // A claim being written has no pid yet: leave it to its writer.
        if let Some(pid) = holder
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A free TCP port on 127.0.0.1 (and, as far as can be checked, on ::1), claimed for this
/// process.
pub fn free_port() -> Result<u16, LocalnetError> {
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = handed.get_or_insert_with(|| {
        sweep_dead_claims();
        HashSet::new()
    });
    let (low, high) = range();
    let span = u32::from(high - low) + 1;
    // Start somewhere different in each process, then walk.
    let start = (std::process::id().wrapping_mul(7919) ^ rand::random::<u32>()) % span;
    for step in 0..span {
        let port = low + ((start + step) % span) as u16;
        if handed.contains(&port) || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        if ipv6_available() && TcpListener::bind(("::1", port)).is_err() {
            continue;
        }
        if !claim(port) {
            continue;
        }
        handed.insert(port);
        return Ok(port);
    }
    Err(LocalnetError::NoFreePort { low, high })
}

fn ipv6_available() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_claimed_and_never_handed_out_twice() {
        let ports: Vec<u16> = (0..20).map(|_| free_port().unwrap()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        let (low, high) = range();
        for port in ports {
            assert!((low..=high).contains(&port));
            assert!(claims_dir().join(port.to_string()).exists(), "port {port} is claimed");
            assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
        }
    }
}
