//! Clean daemon starts: allow-listed environment, stdin from /dev/null, a process group of
//! their own, no descriptor leaked from whoever started the supervisor.

use crate::kit::{COMPONENTS, Supervisor, TestDir, require_daemons};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use std::collections::HashMap;
use std::fs;
use std::time::Duration;

fn environ(pid: u32) -> HashMap<String, String> {
    let raw = fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|b| *b == 0)
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn process_group(pid: u32) -> u32 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command: state, ppid, pgrp, ...
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().nth(2).unwrap().parse().unwrap()
}

fn fd_targets(pid: u32) -> Vec<String> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| fs::read_link(e.path()).ok())
                .map(|p| p.to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn daemons_start_with_a_clean_environment_group_and_descriptors() {
    let t = TestDir::new();
    // A descriptor our "parent" leaks to the supervisor: no close-on-exec flag.
    let marker = t.tmp.path().join("leaked-descriptor-marker");
    let leaked = fs::File::create(&marker).unwrap();
    fcntl(&leaked, FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
    let mut node = t.run_with(require_daemons(), |cmd| {
        cmd.arg("--log-format").arg("json").env("SECRET_TOKEN", "must-not-pass").env("RUST_LOG", "info");
    });
    let s = node.wait_running(Duration::from_secs(20));
    drop(leaked);
    let marker = marker.to_string_lossy().into_owned();
    assert!(
        fd_targets(node.pid()).contains(&marker),
        "the supervisor itself did inherit the descriptor (the test set-up works)"
    );
    for (c, pid) in COMPONENTS.iter().zip(Supervisor::pids(&s)) {
        let env = environ(pid);
        let mut names: Vec<_> = env.keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["HP_LOG_FORMAT", "HP_SUPERVISED", "PATH", "RUST_LOG"], "{c}");
        assert_eq!(env["HP_SUPERVISED"], "1", "{c}");
        assert_eq!(env["HP_LOG_FORMAT"], "json", "{c}: --log-format reaches the daemons");
        assert_eq!(process_group(pid), pid, "{c} leads its own process group");
        let fds = fd_targets(pid);
        assert!(!fds.contains(&marker), "{c} inherited the leaked descriptor: {fds:?}");
        assert_eq!(fs::read_link(format!("/proc/{pid}/fd/0")).unwrap().to_string_lossy(), "/dev/null", "{c} stdin");
    }
}
