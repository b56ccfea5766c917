//! Clean starts of the daemons: where their executables are, the allow-listed environment, a
//! process group of their own, no stdin, logs on our stderr, and a pid file per process so a
//! later start can clean up after a supervisor that was killed.

use super::component::Component;
use hp_cfg::{ContractDir, LogFormat};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::{Child, Command};

/// The environment variable naming the folder with the daemons' executables (tests, packaging).
pub const BIN_DIR_ENV: &str = "HP_BIN_DIR";
/// Tells a daemon that it runs under the supervisor: it then dies with its parent
/// (PR_SET_PDEATHSIG), so a killed supervisor leaves no orphans behind.
pub const SUPERVISED_ENV: &str = "HP_SUPERVISED";
/// The log format the daemons use, so the node's log reads as one stream.
pub const LOG_FORMAT_ENV: &str = "HP_LOG_FORMAT";
/// The variables a daemon inherits from the supervisor; everything else is dropped.
pub const INHERITED_ENV: [&str; 2] = ["PATH", "RUST_LOG"];
/// PATH for the daemons (and the contract after them) when the supervisor has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why a daemon could not be found or started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{component}: executable {path} not found (build the workspace, or set {BIN_DIR_ENV})")]
    Missing { component: Component, path: PathBuf },
    #[error("{component}: {path} is not an executable file")]
    NotExecutable { component: Component, path: PathBuf },
    #[error("{component}: cannot start {path}: {source}")]
    Start { component: Component, path: PathBuf, source: std::io::Error },
    #[error("{component}: started but has no pid (it exited at once)")]
    NoPid { component: Component },
}

/// The folder holding the daemons: `$HP_BIN_DIR`, else the folder of the running executable.
pub fn default_bin_dir() -> std::io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe()?;
    exe.parent().map(Path::to_path_buf).ok_or_else(|| std::io::Error::other("current executable has no folder"))
}

/// Where the executables of all three daemons are; checked once at start so that a missing
/// binary is one clear error instead of a crash loop.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// Checks that every daemon's executable is in `dir`.
    pub fn locate(dir: &Path) -> Result<Self, SpawnError> {
        for component in Component::START_ORDER {
            let path = dir.join(component.binary());
            let meta = fs::metadata(&path).map_err(|_| SpawnError::Missing { component, path: path.clone() })?;
            if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
                return Err(SpawnError::NotExecutable { component, path });
            }
        }
        Ok(Self { dir: dir.to_path_buf() })
    }

    pub fn path(&self, component: Component) -> PathBuf {
        self.dir.join(component.binary())
    }
}

/// The environment of a daemon: only [`INHERITED_ENV`] from ours, plus the supervision flags.
pub fn child_env(log_format: LogFormat) -> Vec<(OsString, OsString)> {
    let mut env = Vec::new();
    for name in INHERITED_ENV {
        if let Some(value) = std::env::var_os(name) {
            env.push((name.into(), value));
        } else if name == "PATH" {
            env.push((name.into(), DEFAULT_PATH.into()));
        }
    }
    let format = match log_format {
        LogFormat::Json => "json",
        LogFormat::Text => "text",
    };
    env.push((LOG_FORMAT_ENV.into(), format.into()));
    env.push((SUPERVISED_ENV.into(), "1".into()));
    env
}

/// Starts one daemon as `<binary> <dir>` in a process group of its own (pgid = pid), with the
/// allow-listed environment, stdin from /dev/null and stdout/stderr shared with the supervisor.
///
/// Descriptors: everything the supervisor opens is close-on-exec (Rust's and tokio's default),
/// and [`crate::fds::mark_inherited_cloexec`] covers what our own parent left open, so the child
/// gets exactly stdin, stdout and stderr.
pub fn start(
    binaries: &Binaries,
    component: Component,
    dir: &ContractDir,
    env: &[(OsString, OsString)],
) -> Result<(Child, u32), SpawnError> {
    let path = binaries.path(component);
    let mut cmd = Command::new(&path);
    cmd.arg(dir.root())
        .current_dir(dir.root())
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .process_group(0)
        // The supervisor reaps and, on shutdown, stops every child itself; dropping a handle
        // must not kill behind its back.
        .kill_on_drop(false);
    let child = cmd.spawn().map_err(|source| SpawnError::Start { component, path: path.clone(), source })?;
    let pid = child.id().ok_or(SpawnError::NoPid { component })?;
    Ok((child, pid))
}

/// `run/<component>.pid`.
pub fn pid_file(dir: &ContractDir, component: Component) -> PathBuf {
    dir.run().join(format!("{}.pid", component.name()))
}

/// Records a child's pid so that the next start can find it if this supervisor is SIGKILLed.
pub fn write_pid_file(dir: &ContractDir, component: Component, pid: u32) {
    let path = pid_file(dir, component);
    if let Err(error) = fs::write(&path, format!("{pid}\n")) {
        tracing::warn!(component = component.name(), path = %path.display(), %error, "cannot write pid file");
    }
}

pub fn remove_pid_file(dir: &ContractDir, component: Component) {
    let _ = fs::remove_file(pid_file(dir, component));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn env_is_allow_listed_and_marks_supervision() {
        let env = child_env(LogFormat::Json);
        let names: Vec<_> = env.iter().map(|(k, _)| k.to_string_lossy().into_owned()).collect();
        for name in &names {
            assert!(
                ["PATH", "RUST_LOG", LOG_FORMAT_ENV, SUPERVISED_ENV].contains(&name.as_str()),
                "unexpected variable {name}"
            );
        }
        assert!(names.contains(&"PATH".to_string()));
        assert!(env.contains(&(LOG_FORMAT_ENV.into(), "json".into())));
        assert!(env.contains(&(SUPERVISED_ENV.into(), "1".into())));
    }

    #[test]
    fn locate_names_the_missing_daemon() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Binaries::locate(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("hp-execd"), "{err}");
        for c in Component::START_ORDER {
            let p = tmp.path().join(c.binary());
            fs::write(&p, "#!/bin/sh\n").unwrap();
        }
        let err = Binaries::locate(tmp.path()).unwrap_err();
        assert!(matches!(err, SpawnError::NotExecutable { .. }), "{err}");
        for c in Component::START_ORDER {
            fs::set_permissions(tmp.path().join(c.binary()), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let bins = Binaries::locate(tmp.path()).unwrap();
        assert_eq!(bins.path(Component::Userd), tmp.path().join("hp-userd"));
    }
}
