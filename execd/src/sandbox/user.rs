//! The contract's own user: when the node runs as root, the contract runs as `contract_user`
//! (a name, `uid` or `uid:gid`) with no supplementary groups, so the node's files (`cfg/hp.cfg`
//! is 0600, `run/` is 0700) and processes are out of its reach by plain Unix permissions, and
//! its process limit counts only its own processes. `state/` is then the contract's: execd gives
//! it what it writes there itself (a restore, state from peers, a read's copy).

use super::SandboxError;
use nix::unistd::{Gid, Uid, User, setgid, setgroups, setuid};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// A uid and gid the contract runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

/// `contract_user` to ids: `uid:gid`, `uid` (gid = uid), or a name from the user database.
pub fn resolve(name: &str) -> Result<Ids, SandboxError> {
    let problem = |p: String| SandboxError::User { user: name.to_string(), problem: p };
    let numbers: Option<Vec<u32>> = name.split(':').map(|p| p.parse::<u32>().ok()).collect();
    let ids = match numbers.as_deref() {
        Some([uid]) => Ids { uid: *uid, gid: *uid },
        Some([uid, gid]) => Ids { uid: *uid, gid: *gid },
        _ => match User::from_name(name) {
            Ok(Some(user)) => Ids { uid: user.uid.as_raw(), gid: user.gid.as_raw() },
            Ok(None) => return Err(problem("no such user (create it, or give `uid:gid`)".into())),
            Err(e) => return Err(problem(format!("cannot look it up: {e}"))),
        },
    };
    if ids.uid == 0 || ids.gid == 0 {
        return Err(problem("is root".into()));
    }
    Ok(ids)
}

impl Ids {
    /// Becomes this user (in the child before `exec`, still root): groups, gid, uid.
    pub fn become_them(&self) -> std::io::Result<()> {
        setgroups(&[Gid::from_raw(self.gid)])?;
        setgid(Gid::from_raw(self.gid))?;
        setuid(Uid::from_raw(self.uid))?;
        Ok(())
    }

    /// Whether this user may search (`x`) an inode with this owner and mode.
    fn may_search(&self, meta: &std::fs::Metadata) -> bool {
        let mode = meta.permissions().mode();
        if meta.uid() == self.uid {
            mode & 0o100 != 0
        } else if meta.gid() == self.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    }
}

/// Refuses, at start, a binary the contract's user cannot reach and execute (by the mode bits
/// of the binary and every folder above it), naming the first obstacle.
pub fn check_reachable(program: &Path, ids: &Ids) -> Result<(), SandboxError> {
    let mut path = std::path::PathBuf::new();
    for part in program.components() {
        path.push(part);
        let meta = std::fs::metadata(&path).map_err(|source| SandboxError::Io {
            what: "cannot look at",
            path: path.clone(),
            source,
        })?;
        if !ids.may_search(&meta) {
            let what = if meta.is_dir() { "search (x) the folder" } else { "execute" };
            return Err(SandboxError::User {
                user: format!("{}:{}", ids.uid, ids.gid),
                problem: format!(
                    "cannot {what} {} (mode {:04o}, owner {}:{}) on the way to the contract {}; \
                     e.g. `chmod o+x {}`",
                    path.display(),
                    meta.permissions().mode() & 0o7777,
                    meta.uid(),
                    meta.gid(),
                    program.display(),
                    path.display()
                ),
            });
        }
    }
    Ok(())
}

/// Gives the folder and what it holds to `ids`: folders and regular files with one link
/// (a file with more links could be a link to something outside, so it is left alone;
/// symlinks are never followed and left as they are).
pub fn own_tree(dir: &Path, ids: &Ids) -> Result<(), SandboxError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| SandboxError::Io { what, path, source }
    };
    let meta = std::fs::symlink_metadata(dir).map_err(io("cannot look at", dir))?;
    if meta.is_symlink() {
        return Ok(());
    }
    let mine = meta.uid() == ids.uid && meta.gid() == ids.gid;
    if meta.is_dir() {
        if !mine {
            std::os::unix::fs::lchown(dir, Some(ids.uid), Some(ids.gid)).map_err(io("cannot chown", dir))?;
        }
        for entry in std::fs::read_dir(dir).map_err(io("cannot list", dir))? {
            let entry = entry.map_err(io("cannot list", dir))?;
            own_tree(&entry.path(), ids)?;
        }
    } else if meta.is_file() && !mine {
        if meta.nlink() == 1 {
            std::os::unix::fs::lchown(dir, Some(ids.uid), Some(ids.gid)).map_err(io("cannot chown", dir))?;
        } else {
            tracing::warn!(path = %dir.display(), links = meta.nlink(), "not giving a hard-linked file to the contract's user");
        }
    }
    Ok(())
}
