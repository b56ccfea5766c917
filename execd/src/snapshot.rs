//! Crash safety of the state (DESIGN.md §7): the committed copy, the small files that say what
//! it holds, and making one directory tree equal to another by touching only what differs.
//!
//! The contract runs in `state/` directly. execd keeps, under `hist/exec/`:
//!
//! | file | role |
//! |---|---|
//! | `committed/` | a copy of the state as of the last executed ledger (or the genesis state) |
//! | `meta.json` | `{"format":1,"seq":N or null,"state_hash":"hex","reply_sha256":"hex" or null}`: what `committed/` holds and the digest of the recorded reply; written atomically (tmp + fsync + rename + fsync of the folder) |
//! | `reply-<seq>.pb` | the recorded `ExecuteReply` of `seq` (protobuf), written before `meta.json` names it |
//! | `running` | in-progress marker, written before each run: `{"seq":N,"boot_id":"…","sid":P}` |
//! | `pending.json` | journal, written before `committed/` is changed: the `meta.json` to be |
//! | `staging/`, `incoming/` | state sync: chunks from peers, and the target tree being built |
//!
//! A round: marker → run → hash `state/` → reply file → `pending.json` (if the state changed)
//! → copy the changed entries into `committed/` (fsync) → `meta.json` → remove journal, marker
//! and the previous reply. A crash anywhere leaves either the old committed state (restored into
//! `state/` at start) or a journal that recovery finishes (see `Engine::open`).

use crate::state_hash::{self, Entry, Hash, HashError, Kind, Scan};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

/// Why the committed copy or its bookkeeping could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: io::Error },
    #[error("{path} is corrupt: {why}")]
    Corrupt { path: PathBuf, why: String },
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl SnapshotError {
    pub fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SnapshotError + 'a {
        move |source| SnapshotError::Io { what, path: path.to_path_buf(), source }
    }
}

/// Where execd keeps its files (absolute paths).
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub state: PathBuf,
    pub data: PathBuf,
    pub committed: PathBuf,
    pub meta: PathBuf,
    pub marker: PathBuf,
    pub pending: PathBuf,
    pub staging: PathBuf,
    pub incoming: PathBuf,
}

impl Paths {
    pub fn new(dir: &hp_cfg::ContractDir) -> Self {
        let data = dir.exec_data();
        Self {
            root: dir.root().to_path_buf(),
            state: dir.state(),
            committed: data.join("committed"),
            meta: data.join("meta.json"),
            marker: data.join("running"),
            pending: data.join("pending.json"),
            staging: data.join("staging"),
            incoming: data.join("incoming"),
            data,
        }
    }

    pub fn reply(&self, seq: u64) -> PathBuf {
        self.data.join(format!("reply-{seq}.pb"))
    }
}

/// What the committed copy holds: the content of `meta.json` (and of `pending.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The last executed (or applied) ledger; `None` for the genesis state.
    pub seq: Option<u64>,
    pub state_hash: Hash,
    /// SHA-256 of `reply-<seq>.pb`; `None` when no reply is recorded (genesis, state sync).
    pub reply_sha256: Option<Hash>,
}

#[derive(Serialize, Deserialize)]
struct MetaFile {
    format: u32,
    seq: Option<u64>,
    state_hash: String,
    reply_sha256: Option<String>,
}

impl Meta {
    pub fn load(path: &Path) -> Result<Option<Self>, SnapshotError> {
        let Some(text) = read_optional(path)? else { return Ok(None) };
        let corrupt = |why: String| SnapshotError::Corrupt { path: path.to_path_buf(), why };
        let file: MetaFile = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        if file.format != 1 {
            return Err(corrupt(format!("unknown format {}", file.format)));
        }
        let state_hash = parse_hash(&file.state_hash).map_err(|e| corrupt(format!("state_hash: {e}")))?;
        let reply_sha256 = match file.reply_sha256 {
            Some(h) => Some(parse_hash(&h).map_err(|e| corrupt(format!("reply_sha256: {e}")))?),
            None => None,
        };
        Ok(Some(Self { seq: file.seq, state_hash, reply_sha256 }))
    }

    pub fn save(&self, path: &Path) -> Result<(), SnapshotError> {
        let file = MetaFile {
            format: 1,
            seq: self.seq,
            state_hash: hex::encode(self.state_hash),
            reply_sha256: self.reply_sha256.map(hex::encode),
        };
        let text = serde_json::to_vec(&file).map_err(|e| SnapshotError::Corrupt { path: path.to_path_buf(), why: e.to_string() })?;
        write_atomic(path, &text, true)
    }
}

/// The in-progress marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub seq: u64,
    /// `/proc/sys/kernel/random/boot_id`: a session id from another boot means nothing.
    pub boot_id: String,
    /// The contract's session id (= its pid) once it started.
    pub sid: Option<i32>,
}

impl Marker {
    pub fn load(path: &Path) -> Result<Option<Self>, SnapshotError> {
        let Some(text) = read_optional(path)? else { return Ok(None) };
        // A torn marker still means "a run was in progress"; only the sid is lost.
        Ok(Some(serde_json::from_slice(&text).unwrap_or(Marker { seq: 0, boot_id: String::new(), sid: None })))
    }

    /// Written without fsync: after a power loss the hash check at start catches the same.
    pub fn save(&self, path: &Path) -> Result<(), SnapshotError> {
        let text = serde_json::to_vec(self).map_err(|e| SnapshotError::Corrupt { path: path.to_path_buf(), why: e.to_string() })?;
        write_atomic(path, &text, false)
    }
}

/// This boot's id, to tell whether a recorded pid can still be ours.
pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

fn parse_hash(text: &str) -> Result<Hash, String> {
    let bytes = hex::decode(text).map_err(|e| e.to_string())?;
    bytes.try_into().map_err(|_| "not 32 bytes".to_string())
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, SnapshotError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SnapshotError::Io { what: "cannot read", path: path.to_path_buf(), source }),
    }
}

/// Writes a file atomically: a temporary file beside it, fsync (when `durable`), rename, fsync
/// of the folder (when `durable`).
pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<(), SnapshotError> {
    let err = SnapshotError::io("cannot write", path);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durable && let Some(parent) = path.parent() {
            fsync_dir(parent)?;
        }
        Ok(())
    })();
    result.map_err(err)
}

/// Makes a folder's entries (creations, renames, removals) durable.
pub fn fsync_dir(path: &Path) -> io::Result<()> {
    fs::File::open(path)?.sync_all()
}

/// Removes a file or a whole tree; absent is fine.
pub fn remove_any(path: &Path) -> io::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Up to this many written entries [`sync_tree`] fsyncs each file and folder; past it one
/// `syncfs` of the whole file system is cheaper (a genesis state of 10,000 files would otherwise
/// cost 10,000 fsyncs).
const FSYNC_EACH_UP_TO: u64 = 64;

/// Flushes the whole file system that holds `path` (cheaper than many fsyncs).
pub fn syncfs(path: &Path) -> Result<(), SnapshotError> {
    let dir = fs::File::open(path).map_err(SnapshotError::io("cannot open", path))?;
    nix::unistd::syncfs(&dir).map_err(|e| SnapshotError::Io { what: "cannot syncfs", path: path.to_path_buf(), source: e.into() })
}

/// What [`sync_tree`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub removed: u64,
    pub written: u64,
    pub bytes_copied: u64,
}

/// The mode execd gives what it writes: only the executable bit is part of the state.
pub fn mode_for(entry: &Entry) -> u32 {
    match entry.kind {
        Kind::Dir => 0o755,
        Kind::File if entry.exec => 0o755,
        _ => 0o644,
    }
}

/// Makes the tree at `dst_root` (whose current content is `dst`) equal to the tree at
/// `src_root` (content `src`), touching only entries that differ, and removing anything that is
/// not part of the state (`dst.skipped`). With `durable`, written files and the folders whose
/// entries changed are fsynced.
pub fn sync_tree(
    src_root: &Path,
    src: &Scan,
    dst_root: &Path,
    dst: &Scan,
    durable: bool,
) -> Result<SyncStats, SnapshotError> {
    let mut stats = SyncStats::default();
    let mut touched_dirs: Vec<PathBuf> = Vec::new();
    fs::create_dir_all(dst_root).map_err(SnapshotError::io("cannot create", dst_root))?;
    let note_parent = |path: &Path, touched: &mut Vec<PathBuf>| {
        if durable && let Some(parent) = path.parent() {
            touched.push(parent.to_path_buf());
        }
    };
    // Removals first, deepest first, so that a kind change (file → folder) finds the path free.
    let mut doomed: Vec<&[u8]> = dst
        .entries
        .iter()
        .filter(|d| src.get(&d.path).is_none_or(|s| s.kind != d.kind))
        .map(|d| d.path.as_slice())
        .chain(dst.skipped.iter().map(Vec::as_slice))
        .collect();
    doomed.sort_unstable_by(|a, b| b.cmp(a));
    for rel in doomed {
        let path = state_hash::join(dst_root, rel);
        remove_any(&path).map_err(SnapshotError::io("cannot remove", &path))?;
        note_parent(&path, &mut touched_dirs);
        stats.removed += 1;
    }
    // Creations and updates in path order: a folder always comes before what it holds.
    for entry in &src.entries {
        let current = dst.get(&entry.path).filter(|d| d.kind == entry.kind);
        let path = state_hash::join(dst_root, &entry.path);
        match (entry.kind, current) {
            (Kind::Dir, Some(_)) => continue,
            (Kind::Dir, None) => {
                fs::create_dir(&path).map_err(SnapshotError::io("cannot create", &path))?;
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                    .map_err(SnapshotError::io("cannot set mode of", &path))?;
            }
            (Kind::File, Some(cur)) if cur.same_content(entry) => continue,
            (Kind::File, Some(cur)) if cur.size == entry.size && cur.content == entry.content => {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode_for(entry)))
                    .map_err(SnapshotError::io("cannot set mode of", &path))?;
            }
            (Kind::File, _) => {
                let from = state_hash::join(src_root, &entry.path);
                // A fresh inode: never write through a hard link the contract may have made.
                remove_any(&path).map_err(SnapshotError::io("cannot replace", &path))?;
                let copied = fs::copy(&from, &path).map_err(SnapshotError::io("cannot copy into", &path))?;
                fs::set_permissions(&path, fs::Permissions::from_mode(mode_for(entry)))
                    .map_err(SnapshotError::io("cannot set mode of", &path))?;
                if durable && stats.written < FSYNC_EACH_UP_TO {
                    fs::File::open(&path).and_then(|f| f.sync_all()).map_err(SnapshotError::io("cannot fsync", &path))?;
                }
                stats.bytes_copied += copied;
            }
            (Kind::Symlink, Some(cur)) if cur.same_content(entry) => continue,
            (Kind::Symlink, _) => {
                let from = state_hash::join(src_root, &entry.path);
                let target = fs::read_link(&from).map_err(SnapshotError::io("cannot read link", &from))?;
                remove_any(&path).map_err(SnapshotError::io("cannot replace", &path))?;
                symlink(&target, &path).map_err(SnapshotError::io("cannot create link", &path))?;
            }
        }
        note_parent(&path, &mut touched_dirs);
        stats.written += 1;
    }
    if durable && stats.written >= FSYNC_EACH_UP_TO {
        syncfs(dst_root)?;
    } else if durable {
        touched_dirs.sort();
        touched_dirs.dedup();
        for dir in touched_dirs {
            fsync_dir(&dir).map_err(SnapshotError::io("cannot fsync", &dir))?;
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::state_hash::StateHasher;

    #[test]
    fn sync_tree_makes_trees_equal_with_kind_changes_links_and_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir_all(a.join("d/e")).unwrap();
        fs::write(a.join("d/e/f"), b"x").unwrap();
        fs::write(a.join("x"), b"exec").unwrap();
        fs::set_permissions(a.join("x"), fs::Permissions::from_mode(0o755)).unwrap();
        symlink("../x", a.join("d/l")).unwrap();
        fs::write(a.join("same"), b"same").unwrap();
        fs::create_dir_all(b.join("x/deep")).unwrap();
        fs::write(b.join("d"), b"was a file").unwrap();
        fs::write(b.join("same"), b"same").unwrap();
        fs::write(b.join("gone"), b"").unwrap();
        nix::unistd::mkfifo(&b.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let (mut ha, mut hb) = (StateHasher::new(&a), StateHasher::new(&b));
        let (sa, sb) = (ha.scan().unwrap(), hb.scan().unwrap());
        assert_ne!(sa.root, sb.root);
        let stats = sync_tree(&a, &sa, &b, &sb, true).unwrap();
        let after = hb.scan().unwrap();
        assert_eq!(after.root, sa.root);
        assert!(after.skipped.is_empty());
        assert_eq!(stats.written, 5, "{stats:?}"); // d, d/e, d/e/f, d/l, x; `same` untouched
        let again = sync_tree(&a, &sa, &b, &after, false).unwrap();
        assert_eq!(again, SyncStats::default());
    }

    #[test]
    fn meta_round_trips_and_rejects_garbage() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("meta.json");
        assert_eq!(Meta::load(&path).unwrap(), None);
        let meta = Meta { seq: Some(7), state_hash: [3; 32], reply_sha256: None };
        meta.save(&path).unwrap();
        assert_eq!(Meta::load(&path).unwrap(), Some(meta));
        fs::write(&path, b"{").unwrap();
        assert!(matches!(Meta::load(&path), Err(SnapshotError::Corrupt { .. })));
    }
}
