//! State sync from peers (docs/consensus.md, catch-up): strict paths, the staging area, and building
//! the target tree from staged files plus unchanged committed ones.
//!
//! On the wire a [`StateEntry`](hp_proto::v1::StateEntry)'s `mode` carries the file type bits
//! of `st_mode` (`0o100000` file, `0o040000` directory, `0o120000` symlink) and, for a file, the
//! executable bit `0o100` — the only permission bit that is part of the state. Files are sent as
//! `0o100755`/`0o100644`, directories as `0o040755`, symlinks as `0o120777`. A symlink's
//! "content" (read with `ReadStateChunk`, staged like a file) is its target text.

use crate::snapshot::{self, SnapshotError};
use crate::state_hash::{self, Entry, Hash, Kind, Scan};
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

/// The longest path accepted from a peer, bytes (Linux's PATH_MAX).
const MAX_PATH: usize = 4096;
/// The largest file a peer may stage: far above any sane state file, it only stops an offset
/// that would make a sparse file of absurd size.
const MAX_STAGED_FILE: u64 = 1 << 40;
/// The longest symlink target accepted.
const MAX_LINK_TARGET: u64 = 4096;

/// Why a state-sync request was refused.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("state path `{path}` refused: {why}")]
    BadPath { path: String, why: &'static str },
    #[error("state path `{path}` would pass through the symlink `{link}`")]
    ThroughSymlink { path: String, link: String },
    #[error("manifest entry `{path}`: {why}")]
    BadEntry { path: String, why: String },
    #[error("`{path}` is neither staged nor in the committed state with hash {content}")]
    NotStaged { path: String, content: String },
    #[error("staged `{path}` has {staged} bytes, the manifest says {expected}")]
    WrongSize { path: String, staged: u64, expected: u64 },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// Checks a relative state path from a peer: not empty, not absolute, no empty, `.` or `..`
/// components, no NUL, at most [`MAX_PATH`] bytes.
pub fn validate_path(path: &str) -> Result<(), SyncError> {
    let bad = |why| Err(SyncError::BadPath { path: path.to_string(), why });
    if path.is_empty() {
        return bad("it is empty");
    }
    if path.len() > MAX_PATH {
        return bad("it is too long");
    }
    if path.starts_with('/') {
        return bad("it is absolute");
    }
    if path.contains('\0') {
        return bad("it contains NUL");
    }
    for component in path.split('/') {
        match component {
            "" => return bad("it has an empty component"),
            "." | ".." => return bad("it has a `.` or `..` component"),
            _ => {}
        }
    }
    Ok(())
}

/// The proper prefixes (parent folders) of a validated path.
fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// An entry's `mode` on the wire (see the module doc).
pub fn wire_mode(entry: &Entry) -> u32 {
    match entry.kind {
        Kind::File => S_IFREG | if entry.exec { 0o755 } else { 0o644 },
        Kind::Dir => S_IFDIR | 0o755,
        Kind::Symlink => S_IFLNK | 0o777,
    }
}

/// One entry of a target manifest, as received.
#[derive(Debug, Clone)]
pub struct WireEntry {
    pub path: String,
    pub is_dir: bool,
    pub mode: u32,
    pub size: u64,
    pub content_hash: Vec<u8>,
}

/// Turns a peer's manifest into checked entries in path order: valid unique paths, every parent
/// a directory of the manifest, 32-byte content hashes.
pub fn parse_manifest(entries: Vec<WireEntry>) -> Result<Vec<Entry>, SyncError> {
    let mut out = Vec::with_capacity(entries.len());
    for w in entries {
        validate_path(&w.path)?;
        let bad = |why: String| SyncError::BadEntry { path: w.path.clone(), why };
        let kind = match (w.mode & S_IFMT, w.is_dir) {
            (S_IFDIR, _) | (0, true) => Kind::Dir,
            (S_IFREG, false) | (0, false) => Kind::File,
            (S_IFLNK, false) => Kind::Symlink,
            (other, is_dir) => return Err(bad(format!("type bits {other:o} with is_dir={is_dir}"))),
        };
        let content: Hash = match kind {
            Kind::Dir => [0; 32],
            _ => w.content_hash.as_slice().try_into().map_err(|_| bad("content_hash is not 32 bytes".into()))?,
        };
        let size = if kind == Kind::Dir { 0 } else { w.size };
        if kind == Kind::Symlink && size > MAX_LINK_TARGET {
            return Err(bad(format!("symlink target of {size} bytes")));
        }
        out.push(Entry::new(w.path.into_bytes(), kind, w.mode & 0o100 != 0, size, content));
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    for pair in out.windows(2) {
        if pair[0].path == pair[1].path {
            return Err(SyncError::BadEntry { path: lossy(&pair[0].path), why: "listed twice".into() });
        }
    }
    let dirs: std::collections::HashSet<&[u8]> =
        out.iter().filter(|e| e.kind == Kind::Dir).map(|e| e.path.as_slice()).collect();
    for e in &out {
        let path = lossy(&e.path);
        if let Some(parent) = parents(&path).last()
            && !dirs.contains(parent.as_bytes())
        {
            return Err(SyncError::BadEntry {
                path: path.clone(),
                why: format!("its folder `{parent}` is not a directory of the manifest"),
            });
        }
    }
    Ok(out)
}

fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// Writes one chunk from a peer into the staging area. `reset` empties the area first (an
/// empty `path` with `reset` only does that). Refuses paths that are not strictly relative, and
/// paths through a symlink of the committed state or of the staging area.
pub fn stage_chunk(
    staging: &Path,
    committed: &Scan,
    path: &str,
    offset: u64,
    data: &[u8],
    reset: bool,
) -> Result<(), SyncError> {
    if reset {
        snapshot::remove_any(staging).map_err(SnapshotError::io("cannot reset", staging))?;
    }
    fs::create_dir_all(staging).map_err(SnapshotError::io("cannot create", staging))?;
    if path.is_empty() && reset {
        return Ok(());
    }
    validate_path(path)?;
    let through = |link: &str| SyncError::ThroughSymlink { path: path.to_string(), link: link.to_string() };
    for parent in parents(path) {
        if committed.get(parent.as_bytes()).is_some_and(|e| e.kind == Kind::Symlink) {
            return Err(through(parent));
        }
    }
    if offset.checked_add(data.len() as u64).is_none_or(|end| end > MAX_STAGED_FILE) {
        return Err(SyncError::BadPath {
            path: path.to_string(),
            why: "the chunk ends past the largest stageable file",
        });
    }
    for parent in parents(path) {
        let dir = staging.join(parent);
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(through(parent)),
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(SyncError::BadPath { path: path.to_string(), why: "a parent is a staged file" }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&dir).map_err(SnapshotError::io("cannot create", &dir))?;
            }
            Err(source) => return Err(SnapshotError::Io { what: "cannot inspect", path: dir, source }.into()),
        }
    }
    let file_path = staging.join(path);
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&file_path);
    let file = match file {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(through(path)),
        Err(source) => return Err(SnapshotError::Io { what: "cannot stage", path: file_path, source }.into()),
    };
    if !file.metadata().map_err(SnapshotError::io("cannot inspect", &file_path))?.is_file() {
        return Err(SyncError::BadPath { path: path.to_string(), why: "it is a staged folder" });
    }
    file.write_all_at(data, offset).map_err(SnapshotError::io("cannot stage", &file_path))?;
    Ok(())
}

/// Builds the target tree in `incoming` from staged files and unchanged committed ones (found
/// by path, or by content anywhere in the committed state), flushed to disk. The caller verifies its
/// hash before using it.
pub fn build_incoming(
    incoming: &Path,
    staging: &Path,
    committed_root: &Path,
    committed: &Scan,
    target: &[Entry],
) -> Result<(), SyncError> {
    snapshot::remove_any(incoming).map_err(SnapshotError::io("cannot clear", incoming))?;
    fs::create_dir_all(incoming).map_err(SnapshotError::io("cannot create", incoming))?;
    let by_content: HashMap<(Kind, Hash), &Entry> =
        committed.entries.iter().filter(|e| e.kind != Kind::Dir).map(|e| ((e.kind, e.content), e)).collect();
    for entry in target {
        let dst = state_hash::join(incoming, &entry.path);
        let path = lossy(&entry.path);
        let staged = staging.join(std::ffi::OsStr::from_bytes(&entry.path));
        let staged = fs::symlink_metadata(&staged).ok().filter(|m| m.is_file()).map(|m| (staged, m.len()));
        let committed_source = || -> Option<PathBuf> {
            let same = committed.get(&entry.path).filter(|c| c.kind == entry.kind && c.content == entry.content);
            same.or_else(|| by_content.get(&(entry.kind, entry.content)).copied())
                .map(|c| state_hash::join(committed_root, &c.path))
        };
        let not_staged = || SyncError::NotStaged { path: path.clone(), content: hex::encode(entry.content) };
        match entry.kind {
            Kind::Dir => {
                fs::create_dir(&dst).map_err(SnapshotError::io("cannot create", &dst))?;
            }
            Kind::File => {
                let from = match staged {
                    Some((from, len)) if len == entry.size => from,
                    Some((_, len)) => return Err(SyncError::WrongSize { path, staged: len, expected: entry.size }),
                    None => committed_source().ok_or_else(not_staged)?,
                };
                fs::copy(&from, &dst).map_err(SnapshotError::io("cannot copy into", &dst))?;
                fs::set_permissions(&dst, fs::Permissions::from_mode(snapshot::mode_for(entry)))
                    .map_err(SnapshotError::io("cannot set mode of", &dst))?;
            }
            Kind::Symlink => {
                let target_text = match staged {
                    Some((from, len)) if len == entry.size => {
                        fs::read(&from).map_err(SnapshotError::io("cannot read", &from))?
                    }
                    Some((_, len)) => return Err(SyncError::WrongSize { path, staged: len, expected: entry.size }),
                    None => {
                        let from = committed_source().ok_or_else(not_staged)?;
                        let link = fs::read_link(&from).map_err(SnapshotError::io("cannot read link", &from))?;
                        link.as_os_str().as_bytes().to_vec()
                    }
                };
                symlink(std::ffi::OsStr::from_bytes(&target_text), &dst)
                    .map_err(SnapshotError::io("cannot create link", &dst))?;
            }
        }
    }
    // One flush of the file system instead of one fsync per file and folder.
    snapshot::syncfs(incoming)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths_are_strictly_relative() {
        for ok in ["a", "a/b", "a.b/.c", "..a", "a/b..c"] {
            validate_path(ok).unwrap();
        }
        for bad in ["", "/abs", "../x", "a/../b", "a//b", "a/", "./a", "a/.", "a\0b"] {
            assert!(validate_path(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn manifest_needs_parents_and_unique_paths() {
        let file = |p: &str| WireEntry {
            path: p.into(),
            is_dir: false,
            mode: S_IFREG | 0o644,
            size: 0,
            content_hash: vec![0; 32],
        };
        let dir =
            |p: &str| WireEntry { path: p.into(), is_dir: true, mode: S_IFDIR | 0o755, size: 0, content_hash: vec![] };
        assert!(parse_manifest(vec![dir("a"), file("a/b")]).is_ok());
        assert!(matches!(parse_manifest(vec![file("a/b")]), Err(SyncError::BadEntry { .. })));
        assert!(matches!(parse_manifest(vec![file("a"), file("a/b")]), Err(SyncError::BadEntry { .. })));
        assert!(matches!(parse_manifest(vec![file("a"), file("a")]), Err(SyncError::BadEntry { .. })));
        assert!(matches!(parse_manifest(vec![file("../a")]), Err(SyncError::BadPath { .. })));
    }
}
