//! The process helpers execd needs around the contract, apart from running it
//! ([`crate::runner`]): killing and reaping process groups and sessions, finding processes in
//! `/proc`, and the process setup `hp-execd` does at start (subreaper, open-file limit, standard
//! fds, dying with the supervisor). Separate so that the runner reads as one run, and so that
//! recovery and `main` need not reach into the runner for them. No `unsafe` here.

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// `SIGKILL` to a process group; a group that is already gone is fine.
pub fn kill_group(pgid: i32) {
    if pgid > 1 {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// Reaps the group's processes that are execd's children (the ones it adopted as subreaper),
/// waiting for killed ones to die, at most `within`.
pub async fn reap_group(pgid: i32, within: Duration) {
    if pgid <= 1 {
        return;
    }
    let deadline = Instant::now() + within;
    loop {
        match waitpid(Pid::from_raw(-pgid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {
                if Instant::now() >= deadline {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

/// Reaps children of this process that are zombies: descendants of a contract that left its
/// process group and were adopted by execd (as subreaper). Only for a process whose every
/// child is a contract, and only between runs.
pub fn reap_adopted_zombies() -> usize {
    // Every child of this process is a contract or one of its adopted descendants, and the
    // round's own contract was already reaped: any child that has exited can be reaped here,
    // without scanning /proc.
    let mut reaped = 0;
    while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if matches!(status, WaitStatus::StillAlive) {
            break;
        }
        reaped += 1;
    }
    reaped
}

/// Makes execd the reaper of its contract's orphaned descendants, so that it can reap them.
pub fn become_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// Raises the soft limit of open files to the hard limit: a round holds four fds per user.
pub fn raise_nofile_limit() -> nix::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard)
}

/// One line of `/proc/<pid>/stat`, the fields execd needs.
struct ProcStat {
    pid: i32,
    pgrp: i32,
    session: i32,
}

/// Every process visible in `/proc`, zombies included.
fn processes() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut out = Vec::new();
    for item in dir.flatten() {
        let Some(pid) = item.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(item.path().join("stat")) else { continue };
        // Fields after the command name, which is in parentheses and may contain anything.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<i32>().ok());
        let (Some(pgrp), Some(session)) = (num(2), num(3)) else {
            continue;
        };
        out.push(ProcStat { pid, pgrp, session });
    }
    out
}

/// The pids in a process group or session, zombies included (from `/proc`).
pub fn processes_where(field: ProcField, id: i32) -> Vec<i32> {
    let matches = |p: &ProcStat| match field {
        ProcField::Pgrp => p.pgrp == id,
        ProcField::Session => p.session == id,
    };
    processes().into_iter().filter(matches).map(|p| p.pid).collect()
}

/// Which id [`processes_where`] matches.
#[derive(Debug, Clone, Copy)]
pub enum ProcField {
    Pgrp,
    Session,
}

/// Kills every process of a session (a contract left behind by an execd that was killed) and
/// waits, at most `within`, until none is alive. Returns how many were found.
pub fn kill_session(sid: i32, within: Duration) -> usize {
    if sid <= 1 || sid == nix::unistd::getpid().as_raw() {
        return 0;
    }
    let found = processes_where(ProcField::Session, sid);
    for pid in &found {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let alive = processes_where(ProcField::Session, sid).into_iter().any(|pid| !is_gone_or_zombie(pid));
        if !alive {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    found.len()
}

/// Whether a process is a zombie (exited, not yet reaped) or gone.
pub fn is_gone_or_zombie(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()) == Some("Z"),
        Err(_) => true,
    }
}
