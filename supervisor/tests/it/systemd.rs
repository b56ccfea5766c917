//! The systemd notify protocol, against a NOTIFY_SOCKET the test binds itself.

use crate::kit::{COMPONENTS, TestDir, require_daemons};
use nix::sys::signal::Signal;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Collects notify datagrams until one contains `wanted` or `timeout` passes.
fn receive_until(socket: &UnixDatagram, wanted: &str, timeout: Duration, seen: &mut Vec<String>) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        if let Ok(n) = socket.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let hit = msg.lines().any(|l| l == wanted);
            seen.push(msg);
            if hit {
                return true;
            }
        }
    }
    false
}

#[test]
fn ready_status_watchdog_and_stopping_reach_systemd() {
    let t = TestDir::new();
    let notify_path = t.tmp.path().join("notify.sock");
    let socket = UnixDatagram::bind(&notify_path).unwrap();
    let hotpocket = crate::kit::hotpocket();
    let bins = require_daemons();
    // systemd sets WATCHDOG_PID to the service's main pid; `exec` keeps the shell's pid.
    let mut sh = std::process::Command::new("/bin/sh");
    sh.arg("-c")
        .arg("WATCHDOG_PID=$$; export WATCHDOG_PID; exec \"$0\" run \"$1\"")
        .arg(&hotpocket)
        .arg(t.root())
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "400000");
    let mut node = t.spawn(bins, sh);
    let mut seen = Vec::new();
    assert!(
        receive_until(&socket, "READY=1", Duration::from_secs(20), &mut seen),
        "no READY=1; got {seen:?}\n{}",
        node.log_text()
    );
    let status = node.status().expect("answers once ready");
    for c in COMPONENTS {
        assert_eq!(status["components"][c]["state"], "running", "READY=1 only once all run: {status}");
    }
    let ready_msg = seen.iter().find(|m| m.lines().any(|l| l == "READY=1")).unwrap();
    assert!(ready_msg.contains("STATUS=userd running"), "{ready_msg}");
    assert!(seen.iter().any(|m| m.contains("STATUS=") && m.contains("starting")), "{seen:?}");
    // Pings at half of WATCHDOG_USEC (200 ms): several within a second.
    let mut pings = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1000) {
        receive_until(&socket, "WATCHDOG=1", Duration::from_millis(1000), &mut pings);
    }
    let count = pings.iter().filter(|m| m.lines().any(|l| l == "WATCHDOG=1")).count();
    assert!((3..=8).contains(&count), "{count} watchdog pings in 1 s: {pings:?}");
    assert_eq!(seen.iter().filter(|m| m.contains("READY=1")).count(), 1, "READY=1 once");

    node.signal(Signal::SIGTERM);
    let mut tail = Vec::new();
    assert!(receive_until(&socket, "STOPPING=1", Duration::from_secs(5), &mut tail), "no STOPPING=1: {tail:?}");
    assert_eq!(node.wait_exit(Duration::from_secs(5)).and_then(|s| s.code()), Some(0));
}

#[test]
fn without_notify_socket_nothing_is_sent_and_the_node_runs() {
    // The kit removes NOTIFY_SOCKET; the node must run all the same (covered by every other
    // test) — here we only check the daemons never see systemd's variables.
    let t = TestDir::new();
    let mut node = t.run();
    let s = node.wait_running(Duration::from_secs(20));
    for pid in crate::kit::Supervisor::pids(&s) {
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        assert!(!String::from_utf8_lossy(&env).contains("NOTIFY_SOCKET"));
    }
}
