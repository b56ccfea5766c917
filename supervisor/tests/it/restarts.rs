//! A daemon that dies is restarted alone; `hotpocket restart` restarts one on request.

use crate::kit::{COMPONENTS, Supervisor, TestDir, alive, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

#[test]
fn kill_9_of_each_daemon_restarts_it_alone_within_2_seconds() {
    let t = TestDir::new();
    let mut node = t.run();
    let mut status = node.wait_running(Duration::from_secs(20));
    for (i, victim) in COMPONENTS.iter().enumerate() {
        let before = Supervisor::pids(&status);
        kill(Pid::from_raw(before[i] as i32), Signal::SIGKILL).unwrap();
        let killed_at = Instant::now();
        let restarted = wait_for(Duration::from_secs(2), || {
            let s = node.status()?;
            let pid = s["components"][victim]["pid"].as_u64()? as u32;
            (pid != 0 && pid != before[i]).then_some(s)
        });
        let Some(s) = restarted else {
            panic!("{victim} not restarted within 2 s: {:?}\n{}", node.status(), node.log_text())
        };
        assert_eq!(s["components"][victim]["restarts"], 1, "{victim} counted once: {s}");
        let after = Supervisor::pids(&s);
        for (j, other) in COMPONENTS.iter().enumerate() {
            if j != i {
                assert_eq!(after[j], before[j], "{other} kept its process when {victim} died");
                let was = &status["components"][other]["restarts"];
                assert_eq!(&s["components"][other]["restarts"], was, "{other} not restarted: {s}");
            }
        }
        eprintln!("{victim} restarted after {:?}", killed_at.elapsed());
        status = node.wait_running(Duration::from_secs(20));
        assert_eq!(Supervisor::pids(&status)[i], after[i], "{victim} stayed up once back");
    }
}

#[test]
fn restart_command_restarts_exactly_one_daemon() {
    let t = TestDir::new();
    let mut node = t.run();
    let before = node.wait_running(Duration::from_secs(20));
    let old = Supervisor::pids(&before);
    let out = t.hotpocket(&["restart", t.root().to_str().unwrap(), "consensusd"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("consensusd restarted"));
    let s = node.wait_running(Duration::from_secs(20));
    let new = Supervisor::pids(&s);
    assert_ne!(new[1], old[1], "consensusd has a new process");
    assert!(!alive(old[1]), "the old consensusd is gone");
    assert_eq!(s["components"]["consensusd"]["restarts"], 1);
    assert_eq!((new[0], new[2]), (old[0], old[2]), "userd and execd untouched");
    assert_eq!(s["components"]["userd"]["restarts"], 0);
    assert_eq!(s["components"]["execd"]["restarts"], 0);
}
