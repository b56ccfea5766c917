//! Resource limits of a contract run (`setrlimit`, inherited by everything it starts): memory
//! (`RLIMIT_DATA`: writable private memory, what `malloc` and `mmap` take; address-space
//! reservations such as V8's do not count until written), processes and threads
//! (`RLIMIT_NPROC`, counted per uid: only set when the contract has a uid of its own), open
//! files (`RLIMIT_NOFILE`, above the fds execd hands it), file size (`RLIMIT_FSIZE`) and CPU
//! time (`RLIMIT_CPU`, soft = hard, so the kernel sends `SIGKILL`). A contract past a limit is
//! killed or sees a call fail, and its exit is recorded like any other.

use crate::header::FIRST_USER_FD;
use hp_cfg::ContractLimits;
use nix::sys::resource::{Resource, getrlimit, setrlimit};

const MIB: u64 = 1024 * 1024;

/// What the agreed config allows (`patch.cfg`'s `round_limits`: `proc_mem_bytes`,
/// `proc_cpu_seconds`, `proc_ofd_count`), 0 being no limit. A run gets the stricter of these
/// and the node's own (`contract_memory_mb`, `contract_cpu_seconds`, `contract_open_files`):
/// the network may tighten what an operator allows, never loosen it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgreedLimits {
    pub mem_bytes: u64,
    pub cpu_seconds: u64,
    pub open_files: u64,
}

/// The stricter of the node's `own` and an agreed limit (0: none).
fn stricter(own: u64, agreed: u64) -> u64 {
    if agreed == 0 { own } else { own.min(agreed) }
}

/// The limits of one run, computed before `fork`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    items: [(Resource, u64); 5],
    /// How many of `items` apply (the process limit only with an own uid).
    count: usize,
}

impl Limits {
    /// `handed_fds`: the fds execd hands the contract are all below this number (for the user
    /// pipes, 3 + 2 × users).
    pub fn new(cfg: &ContractLimits, agreed: AgreedLimits, handed_fds: u64, own_user: bool) -> Self {
        let fds = handed_fds.max(FIRST_USER_FD as u64);
        let mut items = [
            (Resource::RLIMIT_DATA, stricter(cfg.memory_mb.saturating_mul(MIB), agreed.mem_bytes)),
            (Resource::RLIMIT_NOFILE, fds.saturating_add(stricter(cfg.open_files, agreed.open_files))),
            (Resource::RLIMIT_FSIZE, cfg.file_size_mb.saturating_mul(MIB)),
            (Resource::RLIMIT_CPU, stricter(cfg.cpu_seconds, agreed.cpu_seconds)),
            (Resource::RLIMIT_NPROC, cfg.processes),
        ];
        // Never above what execd itself may have: lowering is always allowed, raising is not.
        for (resource, value) in &mut items {
            if let Ok((_, hard)) = getrlimit(*resource) {
                *value = (*value).min(hard);
            }
        }
        Self { items, count: if own_user { 5 } else { 4 } }
    }

    /// The value set for `resource`, if any.
    pub fn get(&self, resource: Resource) -> Option<u64> {
        self.items[..self.count].iter().find(|(r, _)| *r == resource).map(|(_, v)| *v)
    }

    /// Sets soft and hard limits of the calling process (in the child before `exec`).
    pub fn apply(&self) -> std::io::Result<()> {
        for (resource, value) in &self.items[..self.count] {
            setrlimit(*resource, *value, *value)?;
        }
        Ok(())
    }
}
