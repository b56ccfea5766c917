//! No sockets for the contract, with a seccomp filter: `socket(2)` fails with `EACCES` for
//! every family, and so does `io_uring_setup(2)` (io_uring could open sockets past the
//! filter). That is no network at all (a determinism hazard besides a security one) and no
//! connecting to the node's unix sockets in `run/`, which a network namespace would not stop
//! (path sockets belong to the file system) and landlock (before Linux 7.x) does not control.
//! `socketpair(2)` stays allowed: a contract's processes may talk among themselves, and the fds
//! execd hands it are not touched. A filter costs microseconds per run; a fresh network
//! namespace per run costs milliseconds (docs/contract-interface.md, "The sandbox").

use super::SandboxError;
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};
use std::collections::BTreeMap;

/// x32 system calls on x86_64 carry this bit and pass the architecture check: block those too.
#[cfg(target_arch = "x86_64")]
const X32_BIT: i64 = 0x4000_0000;

/// The compiled filter, made once at start and installed in every contract process.
#[derive(Debug)]
pub struct Filter {
    program: BpfProgram,
}

fn blocked() -> Vec<i64> {
    let mut calls = vec![libc::SYS_socket, libc::SYS_io_uring_setup];
    #[cfg(target_arch = "x86_64")]
    {
        let x32: Vec<i64> = calls.iter().map(|nr| nr | X32_BIT).collect();
        calls.extend(x32);
    }
    calls
}

impl Filter {
    pub fn build() -> Result<Self, SandboxError> {
        let err = |e: &dyn std::fmt::Display| SandboxError::Seccomp(e.to_string());
        let arch: TargetArch = std::env::consts::ARCH.try_into().map_err(|e| err(&e))?;
        let rules: BTreeMap<i64, Vec<SeccompRule>> = blocked().into_iter().map(|nr| (nr, Vec::new())).collect();
        let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EACCES as u32), arch)
            .map_err(|e| err(&e))?;
        let program: BpfProgram = filter.try_into().map_err(|e: seccompiler::BackendError| err(&e))?;
        Ok(Self { program })
    }

    /// Installs the filter on the calling process (in the child before `exec`: no allocation;
    /// on failure the error is the system call's errno).
    pub fn apply(&self) -> std::io::Result<()> {
        seccompiler::apply_filter(&self.program).map_err(|_| std::io::Error::last_os_error())
    }
}

/// Whether the kernel has seccomp (its line in `/proc/self/status`).
pub fn supported() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
}
