//! The contract's sandbox (issue 20; docs/contract-interface.md, "The sandbox"). The contract
//! is arbitrary code; a bug in it must not become a stolen node key, a connection to the node's
//! own sockets, a network connection (a determinism hazard too), or a write outside its state.
//!
//! Every run, main or read-only, goes through [`crate::runner::run`], which applies the sandbox
//! of its [`crate::runner::Contract`] in the forked child with one call ([`Prepared::enter`]).
//! Anything that starts the contract through the runner inherits it.
//!
//! Work is split so that the child, between `fork` and `exec`, only makes system calls on
//! values prepared beforehand and allocates nothing:
//! - at execd start, [`Sandbox::start`] checks what the kernel and the node's user can give,
//!   refuses to start when a protection is missing that `sandbox_allow_missing` does not
//!   allow, resolves `contract_user`, opens the read-only folders and builds the seccomp filter;
//! - before each run, [`Sandbox::prepare`] builds the landlock ruleset for that run's writable
//!   folder (`state/` or a read's copy) and the limits (the open-file limit depends on the
//!   number of users);
//! - in the child, [`Prepared::enter`]: limits, own user, `no_new_privs`, landlock, seccomp.
//!
//! One file per protection: [`fs`] (landlock), [`net`] (seccomp), [`limits`] (rlimits),
//! [`user`] (the contract's own uid/gid, `state/` ownership).

#![allow(unsafe_code)]

pub mod fs;
pub mod limits;
pub mod net;
pub mod user;

use hp_cfg::{Config, ContractDir, Protection};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the sandbox could not be set up. At start each stops execd with its message.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "the contract sandbox lacks {} on this machine ({}); the node refuses to run the contract \
         without it: fix that, or list it in the config's `sandbox_allow_missing` to run anyway \
         (docs/config.md)",
        names(missing),
        reasons.join("; ")
    )]
    Missing { missing: Vec<Protection>, reasons: Vec<String> },
    #[error(
        "the node runs as root but the config names no `contract_user`: the contract would run as \
         root; set `contract_user` (e.g. \"hpcontract\" or \"61184:61184\"; docs/config.md)"
    )]
    RootWithoutUser,
    #[error("`contract_user` is {user}, but only a node running as root can run the contract as another user")]
    UserNeedsRoot { user: String },
    #[error("`contract_user` {user}: {problem}")]
    User { user: String, problem: String },
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("cannot build the landlock ruleset: {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error("cannot build the seccomp filter: {0}")]
    Seccomp(String),
}

/// The refusal for the protections in `missing` (each with why) that `allowed` does not list.
fn refuse_missing(missing: &[(Protection, &str)], allowed: &[Protection]) -> Result<(), SandboxError> {
    let refused: Vec<&(Protection, &str)> = missing.iter().filter(|(p, _)| !allowed.contains(p)).collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(SandboxError::Missing {
        missing: refused.iter().map(|(p, _)| *p).collect(),
        reasons: refused.iter().map(|(p, why)| format!("`{p}`: {why}")).collect(),
    })
}

fn names(list: &[Protection]) -> String {
    list.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
}

/// The sandbox of one node's contract, set up at execd start.
#[derive(Debug)]
pub struct Sandbox {
    /// The contract's own user, when the node runs as root.
    ids: Option<user::Ids>,
    /// Folders and files the contract may read and execute, opened once.
    read: Vec<fs::ReadOnly>,
    /// Files the contract may write besides its folder (issue 14 adds `patch.cfg` here).
    extra_writable: Vec<PathBuf>,
    filter: Option<Arc<net::Filter>>,
    limits: hp_cfg::ContractLimits,
    /// Whether this kernel enforces landlock's file-system rules.
    landlock_fs: bool,
    /// What the node runs without (allowed by the config), for the logs and tests.
    missing: Vec<Protection>,
}

/// One run's sandbox, made before `fork`; [`Prepared::enter`] applies it in the child.
#[derive(Debug)]
pub struct Prepared {
    ruleset: Option<OwnedFd>,
    limits: limits::Limits,
    ids: Option<user::Ids>,
    filter: Option<Arc<net::Filter>>,
    parent: libc::pid_t,
}

impl Sandbox {
    /// Checks the machine and sets up the sandbox of `cfg`'s contract; `None` when the config
    /// turns the sandbox off (`sandbox: false`).
    pub fn start(dir: &ContractDir, cfg: &Config, program: &Path) -> Result<Option<Self>, SandboxError> {
        if !cfg.sandbox {
            tracing::warn!(
                "the contract sandbox is OFF (`sandbox: false`): the contract runs as this node's user, \
                 with no limits but its timeout, and can read the node's key"
            );
            return Ok(None);
        }
        let root = nix::unistd::geteuid().is_root();
        let ids = match (root, &cfg.contract_user) {
            (true, Some(name)) => Some(user::resolve(name)?),
            (true, None) => return Err(SandboxError::RootWithoutUser),
            (false, Some(name)) => return Err(SandboxError::UserNeedsRoot { user: name.clone() }),
            (false, None) => None,
        };
        let landlock_fs = fs::supported();
        let scopes = fs::scopes_supported();
        let filter = net::Filter::build()?;
        let seccomp = net::supported();
        let mut missing: Vec<(Protection, &str)> = Vec::new();
        if !landlock_fs {
            missing.push((
                Protection::Filesystem,
                "the kernel has no landlock with ABI 3 (Linux 6.2), or it is not enabled (see lsm= on the kernel command line)",
            ));
        }
        if !seccomp {
            missing.push((Protection::Network, "the kernel has no seccomp filters"));
        }
        if ids.is_none() {
            missing.push((
                Protection::OwnUser,
                "the node does not run as root, so the contract runs as the node's user and `contract_processes` is not enforced",
            ));
            if !scopes {
                missing.push((
                    Protection::Signals,
                    "sharing the node's user, the contract could signal the node's processes: landlock scopes need Linux 6.12",
                ));
            }
        }
        refuse_missing(&missing, &cfg.sandbox_allow_missing)?;
        for (p, why) in &missing {
            tracing::warn!(protection = %p, why, "the contract runs without this protection (allowed by sandbox_allow_missing)");
        }
        let missing: Vec<Protection> = missing.into_iter().map(|(p, _)| p).collect();
        if let Some(ids) = &ids {
            user::check_reachable(program, ids)?;
        }
        let read = fs::read_only_paths(dir, program, &cfg.sandbox_read_paths)?;
        tracing::info!(
            contract_user = ?ids.map(|i| (i.uid, i.gid)),
            landlock_fs,
            landlock_scopes = scopes,
            seccomp,
            read_paths = read.len(),
            missing = %names(&missing),
            "contract sandbox ready"
        );
        Ok(Some(Self {
            ids,
            read,
            extra_writable: Vec::new(),
            filter: seccomp.then(|| Arc::new(filter)),
            limits: cfg.contract_limits,
            landlock_fs,
            missing,
        }))
    }

    /// Lets every run also write `file` (besides its folder): the hook for `patch.cfg` (issue
    /// 14). The file must exist when a run is prepared.
    pub fn allow_writing(&mut self, file: PathBuf) {
        self.extra_writable.push(file);
    }

    /// The protections this node runs without (each allowed by the config).
    pub fn missing(&self) -> &[Protection] {
        &self.missing
    }

    /// The contract's own uid and gid, if it has them.
    pub fn ids(&self) -> Option<user::Ids> {
        self.ids
    }

    /// Gives `dir` (`state/` or a read's copy) to the contract's user, when it has one: files
    /// execd wrote there (a restore, state from peers, a copy) must be the contract's to change.
    pub fn own(&self, dir: &Path) -> Result<(), SandboxError> {
        match &self.ids {
            Some(ids) => user::own_tree(dir, ids),
            None => Ok(()),
        }
    }

    /// Gives the pipes execd hands the contract to its own user, if it has one: a pipe is an
    /// inode owned by its creator (mode 0600), and a contract that reopens its fd by name
    /// (`/proc/self/fd/3`, `/dev/stdin`, as the default contract does) is checked against it.
    fn own_pipes<'a>(&self, fds: impl IntoIterator<Item = std::os::fd::BorrowedFd<'a>>) -> Result<(), SandboxError> {
        let Some(ids) = &self.ids else { return Ok(()) };
        for fd in fds {
            nix::unistd::fchown(
                fd,
                Some(nix::unistd::Uid::from_raw(ids.uid)),
                Some(nix::unistd::Gid::from_raw(ids.gid)),
            )
            .map_err(|e| SandboxError::Io {
                what: "cannot give a pipe to the contract's user",
                path: PathBuf::from("(pipe)"),
                source: e.into(),
            })?;
        }
        Ok(())
    }

    /// The sandbox of one run that may write `writable` (and nothing else but the extra files).
    /// `handed` are the pipe ends (or other fds) the contract gets, which become its user's;
    /// in the contract they are all below `first_free_fd` (the open-file limit leaves room
    /// for them: `contract_open_files` counts only what the contract opens itself).
    pub fn prepare<'a>(
        &self,
        writable: &Path,
        agreed: limits::AgreedLimits,
        first_free_fd: RawFd,
        handed: impl IntoIterator<Item = std::os::fd::BorrowedFd<'a>>,
    ) -> Result<Prepared, SandboxError> {
        self.own_pipes(handed)?;
        let ruleset = if self.landlock_fs {
            fs::ruleset(&self.read, writable, &self.extra_writable)?
        } else {
            // Without landlock's file-system rules the scopes may still apply (they need 6.12,
            // which has those rules too, so in practice this is `None`).
            None
        };
        Ok(Prepared {
            ruleset,
            limits: limits::Limits::new(
                &self.limits,
                agreed,
                u64::try_from(first_free_fd).unwrap_or(0),
                self.ids.is_some(),
            ),
            ids: self.ids,
            filter: self.filter.clone(),
            parent: nix::unistd::getpid().as_raw(),
        })
    }
}

impl Prepared {
    /// Applies the sandbox to the calling process. Only for the forked child before `exec`:
    /// async-signal-safe system calls on prepared values, no allocation. Order matters: limits
    /// while still privileged, then the user (which clears the parent-death signal, so it is
    /// set again), then `no_new_privs`, landlock and seccomp, which the contract cannot undo.
    pub fn enter(&self) -> std::io::Result<()> {
        self.limits.apply()?;
        if let Some(ids) = &self.ids {
            ids.become_them()?;
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            if nix::unistd::getppid().as_raw() != self.parent {
                // execd died while the death signal was unset.
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
        }
        nix::sys::prctl::set_no_new_privs()?;
        if let Some(fd) = &self.ruleset {
            // SAFETY: a plain system call on an fd this process holds; no memory is passed.
            let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd.as_raw_fd(), 0u32) };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        if let Some(filter) = &self.filter {
            filter.apply()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_protection_is_refused_unless_allowed_and_the_message_names_it_and_the_field() {
        let missing = [(Protection::Filesystem, "no landlock"), (Protection::OwnUser, "not root")];
        let Err(err) = refuse_missing(&missing, &[Protection::OwnUser]) else {
            panic!("a missing `filesystem` was not refused");
        };
        let text = err.to_string();
        assert!(text.contains("`filesystem`") && text.contains("no landlock"), "{text}");
        assert!(!text.contains("own_user"), "an allowed protection is not a reason: {text}");
        assert!(text.contains("sandbox_allow_missing"), "{text}");
        assert!(refuse_missing(&missing, &[Protection::OwnUser, Protection::Filesystem]).is_ok());
        assert!(refuse_missing(&[], &[]).is_ok());
    }
}
