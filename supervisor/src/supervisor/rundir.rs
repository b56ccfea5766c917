//! `run/`: the node's private folder of sockets and pid files (docs/ARCHITECTURE.md), recreated at
//! every start. One lock file in it makes sure only one supervisor runs per contract directory.

use super::component::Component;
use super::spawn::pid_file;
use hp_cfg::ContractDir;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The lock a running supervisor holds for its whole life (flock, released by the kernel when
/// the process dies, however it dies).
const LOCK_FILE: &str = "supervisor.lock";

/// Why `run/` could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("cannot prepare {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("a supervisor is already running for {dir} (it holds {lock})")]
    AlreadyRunning { dir: PathBuf, lock: PathBuf },
}

/// Holds `run/` for this supervisor; dropping it releases the lock.
#[derive(Debug)]
pub struct RunDir {
    _lock: Flock<File>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunDirError + '_ {
    move |source| RunDirError::Io { path: path.to_path_buf(), source }
}

/// Creates `run/` with mode 0700, takes the supervisor lock, kills daemons a previous, killed
/// supervisor may have left behind, and removes every other entry (stale sockets, pid files).
pub fn prepare(dir: &ContractDir) -> Result<RunDir, RunDirError> {
    let run = dir.run();
    fs::create_dir_all(&run).map_err(io_err(&run))?;
    fs::set_permissions(&run, fs::Permissions::from_mode(0o700)).map_err(io_err(&run))?;
    let lock_path = run.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, Errno::EWOULDBLOCK)) => {
            return Err(RunDirError::AlreadyRunning { dir: dir.root().to_path_buf(), lock: lock_path });
        }
        Err((_, errno)) => return Err(RunDirError::Io { path: lock_path, source: errno.into() }),
    };
    for component in Component::START_ORDER {
        kill_leftover(dir, component);
    }
    let entries = fs::read_dir(&run).map_err(io_err(&run))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name() == LOCK_FILE {
            continue;
        }
        let removed = if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(io_err(&path))?;
    }
    Ok(RunDir { _lock: lock })
}

/// A daemon still running from a supervisor that was SIGKILLed (normally it died with its
/// parent already; this covers daemons that could not arrange that). Killed only if the pid
/// still runs that daemon's executable on this directory, so a reused pid is left alone.
fn kill_leftover(dir: &ContractDir, component: Component) {
    let Ok(text) = fs::read_to_string(pid_file(dir, component)) else { return };
    let Ok(pid) = text.trim().parse::<i32>() else { return };
    if pid <= 1 || !runs_daemon(pid, component, dir.root()) {
        return;
    }
    tracing::warn!(component = component.name(), pid, "killing a daemon left over from a previous supervisor");
    // The daemon leads its own process group: take whatever it started along.
    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
}

/// Whether `/proc/<pid>/cmdline` holds `<.../hp-<component>> <dir>` (also behind an
/// interpreter, as `/bin/sh .../hp-execd <dir>` for a wrapper script).
fn runs_daemon(pid: i32, component: Component, root: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let args: Vec<&Path> = cmdline.split(|b| *b == 0).map(|a| Path::new(OsStr::from_bytes(a))).collect();
    args.windows(2).any(|w| w[0].ends_with(component.binary()) && w[1] == root)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn prepare_makes_a_private_clean_run_dir_and_refuses_a_second_supervisor() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ContractDir::new(tmp.path());
        fs::create_dir_all(dir.run()).unwrap();
        fs::write(dir.run().join("execd.sock"), "stale").unwrap();
        fs::write(pid_file(&dir, Component::Execd), "1\n").unwrap();
        let held = prepare(&dir).unwrap();
        assert_eq!(fs::metadata(dir.run()).unwrap().permissions().mode() & 0o777, 0o700);
        let left: Vec<_> = fs::read_dir(dir.run()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from(LOCK_FILE)]);
        let err = prepare(&dir).unwrap_err();
        assert!(matches!(err, RunDirError::AlreadyRunning { .. }), "{err}");
        drop(held);
        prepare(&dir).unwrap();
    }

    #[test]
    fn a_pid_that_runs_something_else_is_not_a_leftover() {
        let me = std::process::id() as i32;
        assert!(!runs_daemon(me, Component::Execd, Path::new("/nonexistent")));
    }
}
