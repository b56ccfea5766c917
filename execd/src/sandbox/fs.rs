//! The contract's file-system view, with landlock: it may read and execute the system's
//! folders, its own `bin/` and its binary, use a few devices, and write only its folder
//! (`state/`, or a read's copy of it). Everything else (`cfg/` with the node's key, `run/` with
//! the node's sockets, `hist/`, `log/`, other nodes' folders, `/tmp`) cannot be opened at all.
//! Landlock checks the path a name resolves to, so a symlink out of `state/` leads nowhere the
//! contract could not go by name. The same ruleset also denies TCP bind and connect (ABI 4)
//! and scopes signals and abstract unix sockets to the contract's own processes (ABI 6).

use super::SandboxError;
use hp_cfg::ContractDir;
use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope,
};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// The ABI whose file-system rights the sandbox needs: 3 (Linux 6.2) controls truncation too.
const FS_ABI: ABI = ABI::V3;
/// The rights handled per run, as far as the kernel knows them (ioctl on devices: ABI 5).
const HANDLED_ABI: ABI = ABI::V5;

/// System folders the contract may read and execute (those that exist).
pub const SYSTEM_READ: [&str; 9] = ["/bin", "/sbin", "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/proc"];
/// Devices the contract may read and write.
pub const DEVICES: [&str; 5] = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"];

/// A folder or file the contract may read (and execute), opened once at start.
#[derive(Debug)]
pub struct ReadOnly {
    pub path: PathBuf,
    fd: PathFd,
    access: BitFlags<AccessFs>,
}

/// Whether this kernel enforces landlock's file-system rights of [`FS_ABI`].
pub fn supported() -> bool {
    Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(FS_ABI))
        .and_then(|r| r.create())
        .is_ok()
}

/// Whether this kernel has landlock's scopes (signals, abstract unix sockets; Linux 6.12).
pub fn scopes_supported() -> bool {
    Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .scope(Scope::from_all(ABI::V6))
        .and_then(|r| r.create())
        .is_ok()
}

fn open(path: &Path, access: BitFlags<AccessFs>) -> Result<ReadOnly, SandboxError> {
    let fd = PathFd::new(path).map_err(|e| SandboxError::Io {
        what: "cannot open for the sandbox",
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let access = if path.is_dir() { access } else { access & AccessFs::from_file(HANDLED_ABI) };
    Ok(ReadOnly { path: path.to_path_buf(), fd, access })
}

/// Opens what the contract may read: the system folders, the devices, the contract's `bin/`,
/// its binary (wherever it is) and the operator's `sandbox_read_paths`. Refuses when one of
/// them holds the contract directory: its `cfg/` would be readable.
pub fn read_only_paths(dir: &ContractDir, program: &Path, extra: &[PathBuf]) -> Result<Vec<ReadOnly>, SandboxError> {
    let read = AccessFs::from_read(HANDLED_ABI);
    let device = AccessFs::ReadFile | AccessFs::WriteFile;
    let root = std::fs::canonicalize(dir.root()).unwrap_or_else(|_| dir.root().to_path_buf());
    let mut out = Vec::new();
    let mut add = |path: &Path, access: BitFlags<AccessFs>, required: bool, holder_check: bool| {
        if !required && !path.exists() {
            return Ok(());
        }
        if holder_check {
            let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            if root.starts_with(&real) {
                return Err(SandboxError::Io {
                    what: "the contract may read",
                    path: real,
                    source: std::io::Error::other(format!(
                        "it holds the contract directory {}, whose cfg/ has the node's key: move the directory \
                         or drop that read path",
                        root.display()
                    )),
                });
            }
        }
        out.push(open(path, access)?);
        Ok(())
    };
    for path in SYSTEM_READ {
        // /proc holds no contract directory, but canonicalize would not know; skip the check.
        add(Path::new(path), read, false, path != "/proc")?;
    }
    for path in DEVICES {
        add(Path::new(path), device, false, false)?;
    }
    add(&dir.bin(), read, false, true)?;
    add(program, read, true, true)?;
    for path in extra {
        add(path, read, true, true)?;
    }
    Ok(out)
}

/// The ruleset of one run: `read` as opened at start, `writable` (a folder) with every right,
/// `extra_files` writable too; TCP bind/connect denied; signals and abstract sockets scoped.
/// `None` when the kernel enforces nothing (then [`supported`] said so at start).
pub fn ruleset(read: &[ReadOnly], writable: &Path, extra_files: &[PathBuf]) -> Result<Option<OwnedFd>, SandboxError> {
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(HANDLED_ABI))?
        .handle_access(AccessNet::from_all(ABI::V4))?
        .scope(Scope::from_all(ABI::V6))?
        .create()?;
    for ro in read {
        ruleset = ruleset.add_rule(PathBeneath::new(&ro.fd, ro.access))?;
    }
    let all = AccessFs::from_all(HANDLED_ABI);
    let dir = open(writable, all)?;
    ruleset = ruleset.add_rule(PathBeneath::new(&dir.fd, dir.access))?;
    for file in extra_files {
        let file = open(file, all)?;
        ruleset = ruleset.add_rule(PathBeneath::new(&file.fd, file.access))?;
    }
    Ok(ruleset.into())
}
