//! Crash safety of the state (docs/ARCHITECTURE.md): the committed copy, the small files that say what
//! it holds, and making one directory tree equal to another by touching only what differs.
//!
//! The contract runs in `state/` directly. execd keeps, under `hist/exec/`:
//!
//! | file | role |
//! |---|---|
//! | `committed/` | a copy of the state as of the last executed ledger (or the genesis state) |
//! | `record` | what `committed/` holds and the recorded reply of its seq (layout below); replaced atomically (tmp + fsync + rename) |
//! | `pending` | journal, same layout: the `record` to be, written (and its folder fsynced) before `committed/` is changed |
//! | `running` | in-progress marker: empty when idle, `{"seq":N,"boot_id":"…","sid":P}` while a contract runs; rewritten in place (it only speeds up recovery, the state hash check is what decides) |
//! | `staging/`, `incoming/` | state sync: chunks from peers, and the target tree being built |
//!
//! Record layout: the 8 bytes `HPEXEC1\n`, one JSON line
//! `{"seq":N or null,"state_hash":"<hex>","reply_len":L or null}\n`, then `L` bytes: the
//! recorded `ExecuteReply` protobuf (none for the genesis state or a state applied from peers;
//! [`crate::recorded_result`] owns those bytes).
//!
//! A round: marker → run → hash `state/` → if the state changed: `pending`, copy the changed
//! entries into `committed/` (fsync), rename `pending` → `record`; else write `record` → clear
//! the marker. An empty round costs one fsync. A crash anywhere leaves either the old committed
//! state (restored into `state/` at start) or a journal that recovery finishes
//! (`Engine::open`).

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
    pub record: PathBuf,
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
            record: data.join("record"),
            marker: data.join("running"),
            pending: data.join("pending"),
            staging: data.join("staging"),
            incoming: data.join("incoming"),
            data,
        }
    }
}

/// What the committed copy holds and the recorded reply of its seq: the `record` file (and the
/// `pending` journal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The last executed (or applied) ledger; `None` for the genesis state.
    pub seq: Option<u64>,
    pub state_hash: Hash,
    /// The recorded `ExecuteReply` protobuf of `seq`; `None` when none is (genesis, state sync).
    pub reply: Option<Vec<u8>>,
}

const RECORD_MAGIC: &[u8] = b"HPEXEC1\n";

#[derive(Serialize, Deserialize)]
struct RecordHead {
    seq: Option<u64>,
    state_hash: String,
    reply_len: Option<u64>,
}

impl Record {
    pub fn load(path: &Path) -> Result<Option<Self>, SnapshotError> {
        let Some(bytes) = read_optional(path)? else { return Ok(None) };
        let corrupt = |why: String| SnapshotError::Corrupt { path: path.to_path_buf(), why };
        let body = bytes.strip_prefix(RECORD_MAGIC).ok_or_else(|| corrupt("unknown format".into()))?;
        let line_end = body.iter().position(|b| *b == b'\n').ok_or_else(|| corrupt("no header line".into()))?;
        let head: RecordHead = serde_json::from_slice(&body[..line_end]).map_err(|e| corrupt(e.to_string()))?;
        let state_hash = parse_hash(&head.state_hash).map_err(|e| corrupt(format!("state_hash: {e}")))?;
        let rest = &body[line_end + 1..];
        let reply = match head.reply_len {
            Some(len) if len == rest.len() as u64 => Some(rest.to_vec()),
            None if rest.is_empty() => None,
            _ => return Err(corrupt(format!("reply_len {:?} but {} bytes follow", head.reply_len, rest.len()))),
        };
        Ok(Some(Self { seq: head.seq, state_hash, reply }))
    }

    /// Writes the record atomically; `durable_dir` also fsyncs the folder (needed for the
    /// journal, whose presence must be on disk before `committed/` changes).
    pub fn save(&self, path: &Path, durable_dir: bool) -> Result<(), SnapshotError> {
        let head = RecordHead {
            seq: self.seq,
            state_hash: hex::encode(self.state_hash),
            reply_len: self.reply.as_ref().map(|r| r.len() as u64),
        };
        let mut bytes = RECORD_MAGIC.to_vec();
        serde_json::to_writer(&mut bytes, &head)
            .map_err(|e| SnapshotError::Corrupt { path: path.to_path_buf(), why: e.to_string() })?;
        bytes.push(b'\n');
        if let Some(reply) = &self.reply {
            bytes.extend_from_slice(reply);
        }
        write_atomic(path, &bytes, if durable_dir { Durability::FileAndFolder } else { Durability::File })
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

/// The marker file, kept open and rewritten in place: a rename per write would cost a flush
/// of the file system on ext4 (its replace-by-rename heuristic), twice per round.
#[derive(Debug)]
pub struct MarkerFile {
    path: PathBuf,
    file: fs::File,
}

impl MarkerFile {
    pub fn open(path: &Path) -> Result<Self, SnapshotError> {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(SnapshotError::io("cannot open", path))?;
        Ok(Self { path: path.to_path_buf(), file })
    }

    /// The marker, if a run was in progress. A torn marker still says so (its sid is lost).
    pub fn read(&self) -> Result<Option<Marker>, SnapshotError> {
        use std::io::Read;
        let mut text = Vec::new();
        (&self.file).read_to_end(&mut text).map_err(SnapshotError::io("cannot read", &self.path))?;
        use std::io::Seek;
        (&self.file).rewind().map_err(SnapshotError::io("cannot read", &self.path))?;
        if text.is_empty() {
            return Ok(None);
        }
        Ok(Some(serde_json::from_slice(&text).unwrap_or(Marker { seq: 0, boot_id: String::new(), sid: None })))
    }

    pub fn set(&self, marker: &Marker) -> Result<(), SnapshotError> {
        use std::os::unix::fs::FileExt;
        let text = serde_json::to_vec(marker)
            .map_err(|e| SnapshotError::Corrupt { path: self.path.clone(), why: e.to_string() })?;
        let result = self.file.set_len(0).and_then(|()| self.file.write_all_at(&text, 0));
        result.map_err(SnapshotError::io("cannot write", &self.path))
    }

    pub fn clear(&self) -> Result<(), SnapshotError> {
        self.file.set_len(0).map_err(SnapshotError::io("cannot clear", &self.path))
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

/// How much of [`write_atomic`] must reach the disk before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Nothing is flushed.
    None,
    /// The file's bytes, before the rename: if the new name survives a crash, so does the content.
    File,
    /// The file and the rename itself (the folder).
    FileAndFolder,
}

/// Writes a file atomically: a temporary file beside it, then a rename over it.
pub fn write_atomic(path: &Path, bytes: &[u8], durability: Durability) -> Result<(), SnapshotError> {
    let err = SnapshotError::io("cannot write", path);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        if durability != Durability::None {
            file.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durability == Durability::FileAndFolder
            && let Some(parent) = path.parent()
        {
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
    nix::unistd::syncfs(&dir).map_err(|e| SnapshotError::Io {
        what: "cannot syncfs",
        path: path.to_path_buf(),
        source: e.into(),
    })
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
                    fs::File::open(&path)
                        .and_then(|f| f.sync_all())
                        .map_err(SnapshotError::io("cannot fsync", &path))?;
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
    fn record_round_trips_and_rejects_garbage() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("record");
        assert_eq!(Record::load(&path).unwrap(), None);
        for record in [
            Record { seq: Some(7), state_hash: [3; 32], reply: Some(b"\n\x00reply".to_vec()) },
            Record { seq: None, state_hash: [4; 32], reply: None },
        ] {
            record.save(&path, true).unwrap();
            assert_eq!(Record::load(&path).unwrap(), Some(record));
        }
        let mut torn = fs::read(&path).unwrap();
        torn.extend_from_slice(b"extra");
        fs::write(&path, &torn).unwrap();
        assert!(matches!(Record::load(&path), Err(SnapshotError::Corrupt { .. })));
        fs::write(&path, b"{").unwrap();
        assert!(matches!(Record::load(&path), Err(SnapshotError::Corrupt { .. })));
    }

    #[test]
    fn marker_is_empty_when_idle() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = MarkerFile::open(&tmp.path().join("running")).unwrap();
        assert_eq!(marker.read().unwrap(), None);
        let m = Marker { seq: 3, boot_id: "b".into(), sid: Some(42) };
        marker.set(&Marker { seq: 3, boot_id: "a much longer boot id".into(), sid: None }).unwrap();
        marker.set(&m).unwrap();
        assert_eq!(MarkerFile::open(&tmp.path().join("running")).unwrap().read().unwrap(), Some(m));
        marker.clear().unwrap();
        assert_eq!(marker.read().unwrap(), None);
    }
}
