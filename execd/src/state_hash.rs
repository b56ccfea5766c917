//! The state hash (docs/contract-interface.md): a Merkle root over every entry under `state/`, kept up to date
//! incrementally so that a round that changed one of 10,000 files re-reads only that file.
//!
//! # Byte layout (version 1) — outside verifiers depend on it
//!
//! **Entries.** Every regular file, directory and symbolic link below the state root (the root
//! itself is not an entry), found without following symbolic links. Other kinds (FIFOs, sockets,
//! devices) are not part of the state: they are skipped, and removed whenever `state/` is
//! restored. Only the owner-execute bit (`0o100`) of a file counts; no other mode bit, no owner,
//! no time stamp.
//!
//! **Path.** Relative to the root, components joined by `/`, the raw bytes of the Linux file
//! names, no leading or trailing `/`. Entries are sorted by path bytes (plain byte-wise
//! comparison, a prefix before its extensions: `a` < `a.txt` < `a/b`).
//!
//! **Leaf.** For each entry, with `u32be`/`u64be` big-endian integers and `||` concatenation:
//!
//! ```text
//! leaf = SHA-256( "hotpocket/state/leaf/v1"        23 ASCII bytes, no terminator
//!              || u32be(len(path)) || path
//!              || kind                              1 byte: 1 file, 2 directory, 3 symlink
//!              || exec                              1 byte: 1 if a file has mode bit 0o100, else 0
//!              || u64be(size)                       file: its length; symlink: length of its
//!                                                   target text; directory: 0
//!              || content )                         32 bytes: file: SHA-256 of its bytes;
//!                                                   symlink: SHA-256 of its target text (never
//!                                                   followed); directory: 32 zero bytes
//! ```
//!
//! **Root.** Level 0 is the list of leaves in path order. Each next level hashes neighbours left
//! to right, `node = SHA-256("hotpocket/state/node/v1" || left || right)` (23-byte tag); an odd
//! hash at the end of a level is carried up unchanged. The root is the one hash left. An empty
//! state (no entries) has the fixed root `SHA-256("hotpocket/state/empty/v1")`.
//!
//! The hash therefore depends only on the paths, kinds, executable bits and contents: not on
//! creation order, time stamps, inode numbers or other mode bits.
//!
//! # Incremental hashing
//!
//! A [`StateHasher`] caches, per file, `(size, mtime_ns, ctime_ns, inode, mode)` and the content
//! hash. A scan is a stat walk; a file whose stat matches its cache entry is not read again. A
//! file whose change time is not older than the scan's start (on the coarse clock the kernel
//! stamps files with) is not cached, because a later write within the same clock tick could leave
//! its stat unchanged (git's "racily clean" problem). Time stamps must have nanosecond
//! granularity (ext4, xfs, btrfs, tmpfs, overlayfs do).

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

const LEAF_TAG: &[u8] = b"hotpocket/state/leaf/v1";
const NODE_TAG: &[u8] = b"hotpocket/state/node/v1";
const EMPTY_TAG: &[u8] = b"hotpocket/state/empty/v1";

/// Files are read in blocks of this size: large enough for throughput, small enough to keep
/// memory flat whatever the file size.
const READ_BLOCK: usize = 256 * 1024;

/// Why a directory tree could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("cannot read {path} while hashing the state: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} changed while the state was being hashed")]
    Changed { path: PathBuf },
}

/// The kind of a state entry, with its byte in the leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    File = 1,
    Dir = 2,
    Symlink = 3,
}

/// One entry of the state, with its hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path, '/'-separated raw bytes.
    pub path: Vec<u8>,
    pub kind: Kind,
    /// The owner-execute bit of a file (always false for directories and symlinks).
    pub exec: bool,
    pub size: u64,
    /// SHA-256 of the file's bytes or the symlink's target; zeros for a directory.
    pub content: Hash,
    pub leaf: Hash,
}

impl Entry {
    /// Builds an entry and computes its leaf hash.
    pub fn new(path: Vec<u8>, kind: Kind, exec: bool, size: u64, content: Hash) -> Self {
        let exec = exec && kind == Kind::File;
        let leaf = leaf_hash(&path, kind, exec, size, &content);
        Self { path, kind, exec, size, content, leaf }
    }

    /// Whether two entries describe the same thing (path aside).
    pub fn same_content(&self, other: &Entry) -> bool {
        self.kind == other.kind && self.exec == other.exec && self.size == other.size && self.content == other.content
    }
}

/// What a scan cost: the test of incremental hashing reads these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashStats {
    /// Files whose content was read and hashed.
    pub files_hashed: u64,
    /// Bytes read to hash contents.
    pub bytes_hashed: u64,
    /// Entries visited by the stat walk.
    pub entries: u64,
}

/// The result of hashing a tree: its entries in path order and the root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub entries: Vec<Entry>,
    pub root: Hash,
    /// Paths of FIFOs, sockets and devices that were skipped (not part of the state).
    pub skipped: Vec<Vec<u8>>,
    pub stats: HashStats,
}

impl Scan {
    /// The scan of an empty tree.
    pub fn empty() -> Self {
        Self { entries: Vec::new(), root: empty_state_hash(), skipped: Vec::new(), stats: HashStats::default() }
    }

    /// Builds a scan from entries (sorted here) and computes its root.
    pub fn from_entries(mut entries: Vec<Entry>) -> Self {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let leaves: Vec<Hash> = entries.iter().map(|e| e.leaf).collect();
        Self { root: merkle_root(&leaves), entries, skipped: Vec::new(), stats: HashStats::default() }
    }

    /// The entry at `path`, if any.
    pub fn get(&self, path: &[u8]) -> Option<&Entry> {
        self.entries.binary_search_by(|e| e.path.as_slice().cmp(path)).ok().map(|i| &self.entries[i])
    }
}

/// The root hash of an empty state.
pub fn empty_state_hash() -> Hash {
    Sha256::digest(EMPTY_TAG).into()
}

/// The leaf hash of one entry (see the module doc for the layout).
pub fn leaf_hash(path: &[u8], kind: Kind, exec: bool, size: u64, content: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(LEAF_TAG);
    h.update((path.len() as u32).to_be_bytes());
    h.update(path);
    h.update([kind as u8, u8::from(exec)]);
    h.update(size.to_be_bytes());
    h.update(content);
    h.finalize().into()
}

/// The Merkle root over leaves in order (see the module doc).
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return empty_state_hash();
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => {
                    let mut h = Sha256::new();
                    h.update(NODE_TAG);
                    h.update(left);
                    h.update(right);
                    h.finalize().into()
                }
                [single] => *single,
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect();
    }
    level[0]
}

/// What the cache remembers about a file to decide that it has not changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
    mode: u32,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Self {
        Self {
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
            mode: meta.mode(),
        }
    }
}

/// Hashes one directory tree, remembering file hashes between scans.
#[derive(Debug)]
pub struct StateHasher {
    root: PathBuf,
    /// path → the stamp it had when hashed, and its content hash.
    cache: HashMap<Vec<u8>, (Stamp, Hash)>,
}

impl StateHasher {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), cache: HashMap::new() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Points the hasher at another directory that holds the very same files (the same inodes,
    /// e.g. after the directory was renamed), keeping the cache.
    pub fn set_root(&mut self, root: impl Into<PathBuf>) {
        self.root = root.into();
    }

    /// Forgets every cached hash: the next scan reads every file.
    pub fn forget(&mut self) {
        self.cache.clear();
    }

    /// Walks the tree and hashes it, reading only files whose stat changed since the last scan.
    /// A missing root is an empty state.
    pub fn scan(&mut self) -> Result<Scan, HashError> {
        let scan_start = coarse_now_ns();
        let mut stats = HashStats::default();
        let mut entries = Vec::new();
        let mut skipped = Vec::new();
        let mut seen = HashMap::with_capacity(self.cache.len());
        match fs::symlink_metadata(&self.root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(HashError::Io {
                    path: self.root.clone(),
                    source: io::Error::other("the state root is not a directory"),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.cache.clear();
                return Ok(Scan::empty());
            }
            Err(source) => return Err(HashError::Io { path: self.root.clone(), source }),
        }
        let mut dirs: Vec<Vec<u8>> = vec![Vec::new()];
        while let Some(rel) = dirs.pop() {
            let dir_path = self.full(&rel);
            for item in read_dir_retrying(&dir_path)? {
                let (name, file_type) = item;
                let mut path = rel.clone();
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(&name);
                stats.entries += 1;
                let full = self.full(&path);
                if file_type.is_dir() {
                    entries.push(Entry::new(path.clone(), Kind::Dir, false, 0, [0; 32]));
                    dirs.push(path);
                } else if file_type.is_symlink() {
                    let target = fs::read_link(&full).map_err(|source| HashError::Io { path: full.clone(), source })?;
                    let target = target.as_os_str().as_bytes();
                    let content: Hash = Sha256::digest(target).into();
                    entries.push(Entry::new(path, Kind::Symlink, false, target.len() as u64, content));
                } else if file_type.is_file() {
                    let meta =
                        fs::symlink_metadata(&full).map_err(|source| HashError::Io { path: full.clone(), source })?;
                    let stamp = Stamp::of(&meta);
                    let content = match self.cache.get(&path) {
                        Some((cached, hash)) if *cached == stamp => *hash,
                        _ => {
                            let (hash, len) = hash_file(&full, stamp)?;
                            stats.files_hashed += 1;
                            stats.bytes_hashed += len;
                            hash
                        }
                    };
                    if stamp.ctime_ns < scan_start {
                        seen.insert(path.clone(), (stamp, content));
                    }
                    entries.push(Entry::new(path, Kind::File, stamp.mode & 0o100 != 0, stamp.size, content));
                } else {
                    skipped.push(path);
                }
            }
        }
        self.cache = seen;
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        skipped.sort();
        let leaves: Vec<Hash> = entries.iter().map(|e| e.leaf).collect();
        Ok(Scan { root: merkle_root(&leaves), entries, skipped, stats })
    }

    fn full(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() { self.root.clone() } else { self.root.join(std::ffi::OsStr::from_bytes(rel)) }
    }
}

/// Joins a relative state path to a root.
pub fn join(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(std::ffi::OsStr::from_bytes(rel))
}

/// The kernel's coarse real-time clock, which stamps file times, in nanoseconds.
fn coarse_now_ns() -> i128 {
    use nix::time::{ClockId, clock_gettime};
    match clock_gettime(ClockId::CLOCK_REALTIME_COARSE) {
        Ok(ts) => i128::from(ts.tv_sec()) * 1_000_000_000 + i128::from(ts.tv_nsec()),
        // Without the clock nothing is cached: correct, only slower.
        Err(_) => i128::MIN,
    }
}

/// Lists a directory as (name, type), giving the owner read/search rights once if the contract
/// took them away (mode bits other than the executable bit are not part of the state).
fn read_dir_retrying(dir: &Path) -> Result<Vec<(Vec<u8>, fs::FileType)>, HashError> {
    let io_err = |source| HashError::Io { path: dir.to_path_buf(), source };
    let reader = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let mode = fs::symlink_metadata(dir).map_err(io_err)?.mode();
            fs::set_permissions(dir, fs::Permissions::from_mode((mode | 0o700) & 0o7777)).map_err(io_err)?;
            fs::read_dir(dir).map_err(io_err)?
        }
        other => other.map_err(io_err)?,
    };
    let mut items = Vec::new();
    for item in reader {
        let item = item.map_err(io_err)?;
        let file_type = item.file_type().map_err(io_err)?;
        items.push((item.file_name().as_bytes().to_vec(), file_type));
    }
    Ok(items)
}

/// Opens a regular file for reading without following a symlink or blocking on a FIFO that
/// replaced it.
pub fn open_regular(path: &Path) -> io::Result<fs::File> {
    let open = || fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path);
    let file = match open() {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let mode = fs::symlink_metadata(path)?.mode();
            fs::set_permissions(path, fs::Permissions::from_mode((mode | 0o600) & 0o7777))?;
            open()?
        }
        other => other?,
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// SHA-256 of a file's bytes and their count; fails if the file is not what was stat'ed.
fn hash_file(path: &Path, stamp: Stamp) -> Result<(Hash, u64), HashError> {
    let io_err = |source| HashError::Io { path: path.to_path_buf(), source };
    let mut file = open_regular(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.ino() != stamp.ino || meta.size() != stamp.size {
        return Err(HashError::Changed { path: path.to_path_buf() });
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; READ_BLOCK.min(stamp.size as usize + 1).max(1)];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    if total != stamp.size {
        return Err(HashError::Changed { path: path.to_path_buf() });
    }
    Ok((hasher.finalize().into(), total))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::symlink;

    fn scan(dir: &Path) -> Scan {
        StateHasher::new(dir).scan().unwrap()
    }

    #[test]
    fn empty_and_missing_trees_have_the_fixed_empty_hash() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(scan(tmp.path()).root, empty_state_hash());
        assert_eq!(scan(&tmp.path().join("missing")).root, empty_state_hash());
        assert_eq!(hex::encode(empty_state_hash()), hex::encode(Sha256::digest(b"hotpocket/state/empty/v1")));
    }

    #[test]
    fn one_file_root_is_its_leaf_with_the_documented_layout() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("a"), b"hi").unwrap();
        fs::set_permissions(tmp.path().join("a"), fs::Permissions::from_mode(0o644)).unwrap();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"hotpocket/state/leaf/v1");
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.extend_from_slice(b"a");
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&2u64.to_be_bytes());
        bytes.extend_from_slice(&Sha256::digest(b"hi"));
        let expected: Hash = Sha256::digest(&bytes).into();
        assert_eq!(scan(tmp.path()).root, expected);
    }

    #[test]
    fn tree_of_three_pairs_then_carries_the_odd_leaf() {
        let l = [[1u8; 32], [2u8; 32], [3u8; 32]];
        let node = |a: &Hash, b: &Hash| -> Hash {
            let mut h = Sha256::new();
            h.update(b"hotpocket/state/node/v1");
            h.update(a);
            h.update(b);
            h.finalize().into()
        };
        assert_eq!(merkle_root(&l), node(&node(&l[0], &l[1]), &l[2]));
        assert_eq!(merkle_root(&l[..1]), l[0]);
    }

    #[test]
    fn symlinks_are_hashed_as_their_target_and_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        symlink("/etc/passwd", tmp.path().join("l")).unwrap();
        let s = scan(tmp.path());
        assert_eq!(s.entries.len(), 1);
        assert_eq!(s.entries[0].kind, Kind::Symlink);
        assert_eq!(s.entries[0].size, "/etc/passwd".len() as u64);
        assert_eq!(s.entries[0].content, <Hash>::from(Sha256::digest(b"/etc/passwd")));
    }

    #[test]
    fn fifos_are_skipped_not_opened() {
        let tmp = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&tmp.path().join("p"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let s = scan(tmp.path());
        assert!(s.entries.is_empty());
        assert_eq!(s.skipped, vec![b"p".to_vec()]);
    }

    #[test]
    fn sort_order_is_by_path_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("a")).unwrap();
        fs::write(tmp.path().join("a/b"), b"").unwrap();
        fs::write(tmp.path().join("a.txt"), b"").unwrap();
        let paths: Vec<_> = scan(tmp.path()).entries.into_iter().map(|e| e.path).collect();
        assert_eq!(paths, vec![b"a".to_vec(), b"a.txt".to_vec(), b"a/b".to_vec()]);
    }
}
