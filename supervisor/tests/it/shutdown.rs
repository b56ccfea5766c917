//! Stopping the node: SIGTERM/SIGINT stop the daemons in order and exit 0 within 5 s; a
//! SIGKILLed supervisor takes its daemons along; with `HP_EXIT_WITH_PARENT=1` the node stops when
//! whatever started it dies.

use crate::kit::{Supervisor, TestDir, alive, bin_dir_with, hotpocket, require_daemons, wait_for};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

fn sockets_left(t: &TestDir) -> Vec<String> {
    std::fs::read_dir(t.dir.run())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sock") || n.ends_with(".pid"))
        .collect()
}

fn stops_cleanly_on(signal: Signal) {
    let t = TestDir::new();
    let mut node = t.run();
    let pids = Supervisor::pids(&node.wait_running(Duration::from_secs(20)));
    let sent = Instant::now();
    node.signal(signal);
    let status = node.wait_exit(Duration::from_secs(5));
    let Some(status) = status else { panic!("still running 5 s after {signal}\n{}", node.log_text()) };
    assert_eq!(status.code(), Some(0), "{}", node.log_text());
    eprintln!("stopped {:?} after {signal}", sent.elapsed());
    for pid in pids {
        assert!(!alive(pid), "daemon {pid} outlived the supervisor");
    }
    assert!(sockets_left(&t).is_empty(), "left behind: {:?}", sockets_left(&t));
    let log = node.log_text();
    let order: Vec<usize> = ["userd", "consensusd", "execd"]
        .iter()
        .map(|c| {
            log.lines()
                .position(|l| l.contains("sending SIGTERM") && l.contains(c))
                .unwrap_or_else(|| panic!("no SIGTERM for {c}:\n{log}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "stop order userd → consensusd → execd:\n{log}");
}

#[test]
fn sigterm_stops_everything_and_exits_0_within_5_seconds() {
    stops_cleanly_on(Signal::SIGTERM);
}

#[test]
fn sigint_stops_everything_too() {
    stops_cleanly_on(Signal::SIGINT);
}

#[test]
fn a_daemon_that_ignores_sigterm_is_killed_in_time() {
    let t = TestDir::new();
    // Ignores SIGTERM, and `exec` keeps it ignored in the process that replaces the shell.
    let bins = bin_dir_with(t.tmp.path(), &[("execd", "trap '' TERM; exec sleep 600")]);
    let mut node = t.run_with(bins, |_| {});
    let stubborn = wait_for(Duration::from_secs(10), || {
        let s = node.status()?;
        s["components"]["execd"]["pid"].as_u64().filter(|p| *p != 0)
    })
    .expect("execd started") as u32;
    // Give the real daemons time to come up so the ordered stop has something to do.
    let _ = wait_for(Duration::from_secs(20), || {
        let s = node.status()?;
        (s["components"]["userd"]["state"] == "running" && s["components"]["consensusd"]["state"] == "running")
            .then_some(())
    });
    node.signal(Signal::SIGTERM);
    let status = node.wait_exit(Duration::from_secs(5)).expect("exited within 5 s despite a stubborn daemon");
    assert_eq!(status.code(), Some(0));
    assert!(!alive(stubborn), "the stubborn daemon was killed");
    assert!(node.log_text().contains("killing"), "{}", node.log_text());
}

#[test]
fn a_sigkilled_supervisor_takes_its_daemons_along() {
    let t = TestDir::new();
    let mut node = t.run();
    let pids = Supervisor::pids(&node.wait_running(Duration::from_secs(20)));
    node.signal(Signal::SIGKILL);
    node.wait_exit(Duration::from_secs(2)).expect("SIGKILL ends the supervisor");
    let gone = wait_for(Duration::from_secs(5), || pids.iter().all(|p| !alive(*p)).then_some(()));
    assert!(gone.is_some(), "daemons still alive after their supervisor was killed: {:?}", pids.map(alive));
}

#[test]
fn a_restarted_node_cleans_up_after_a_killed_supervisor() {
    let t = TestDir::new();
    let mut first = t.run();
    first.wait_running(Duration::from_secs(20));
    first.signal(Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(2)).expect("SIGKILL ends the supervisor");
    // Started again at once: the lock was released with the dead process, leftovers go.
    let mut second = t.run();
    let s = second.wait_running(Duration::from_secs(20));
    for c in crate::kit::COMPONENTS {
        assert_eq!(s["components"][c]["restarts"], 0, "{c}: {s}");
    }
}

#[test]
fn a_new_supervisor_kills_daemons_a_killed_one_left_behind() {
    let t = TestDir::new();
    // A daemon that does not die with its parent: no PR_SET_PDEATHSIG, SIGTERM ignored.
    let bins = bin_dir_with(t.tmp.path(), &[("execd", "trap '' TERM; while true; do sleep 0.2; done")]);
    let mut first = t.run_with(bins.clone(), |_| {});
    let orphan = wait_for(Duration::from_secs(10), || {
        first.status()?["components"]["execd"]["pid"].as_u64().filter(|p| *p != 0)
    })
    .expect("execd started") as u32;
    first.signal(Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(2)).expect("SIGKILL ends the supervisor");
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(orphan), "the set-up needs a daemon that outlives its supervisor");
    let mut second = t.run_with(bins, |_| {});
    let gone = wait_for(Duration::from_secs(5), || (!alive(orphan)).then_some(()));
    assert!(gone.is_some(), "the leftover daemon {orphan} still runs\n{}", second.log_text());
    assert!(second.log_text().contains("left over"), "{}", second.log_text());
    let s = second.status().expect("the new supervisor answers");
    assert_ne!(s["components"]["execd"]["pid"].as_u64(), Some(u64::from(orphan)));
}

#[test]
fn with_exit_with_parent_a_node_stops_cleanly_when_its_launcher_is_killed() {
    let t = TestDir::new();
    let pid_file = t.tmp.path().join("hotpocket.pid");
    // A launcher that is not the test: a shell that starts the node and waits for it.
    let mut launcher = std::process::Command::new("sh");
    launcher
        .arg("-c")
        .arg(r#"HP_EXIT_WITH_PARENT=1 "$0" run "$1" & echo $! > "$2"; wait"#)
        .arg(hotpocket())
        .arg(t.root())
        .arg(&pid_file);
    let mut node = t.spawn(require_daemons(), launcher);
    let daemons = Supervisor::pids(&node.wait_running(Duration::from_secs(20)));
    let supervisor: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    // Only the launcher: the node shares its process group, and that is not signalled.
    node.signal(Signal::SIGKILL);
    node.wait_exit(Duration::from_secs(2)).expect("SIGKILL ends the launcher");
    let gone =
        wait_for(Duration::from_secs(5), || (!alive(supervisor) && daemons.iter().all(|p| !alive(*p))).then_some(()));
    assert!(
        gone.is_some(),
        "the node outlived its launcher: supervisor alive {}, daemons {:?}\n{}",
        alive(supervisor),
        daemons.map(alive),
        node.log_text()
    );
    let log = node.log_text();
    assert!(log.contains("supervisor stopped"), "stopped in order, as on SIGTERM:\n{log}");
}
