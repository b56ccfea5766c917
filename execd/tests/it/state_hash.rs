//! The state hash: deterministic, sensitive to what counts, and incremental.

use crate::support::*;
use hp_execd::state_hash::StateHasher;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime};

fn build(root: &Path, order: &[usize], base: SystemTime) {
    let steps: Vec<Box<dyn Fn()>> = vec![
        Box::new(|| fs::write(root.join("b.txt"), b"bee").unwrap()),
        Box::new(|| {
            fs::create_dir_all(root.join("dir/sub")).unwrap();
            fs::write(root.join("dir/sub/deep"), b"deep").unwrap();
        }),
        Box::new(|| fs::write(root.join("a"), b"").unwrap()),
        Box::new(|| symlink("dir/sub", root.join("link")).unwrap()),
    ];
    for i in order {
        steps[*i]();
    }
    for (i, p) in ["b.txt", "a", "dir/sub/deep"].iter().enumerate() {
        let f = fs::File::options().write(true).open(root.join(p)).unwrap();
        f.set_modified(base + Duration::from_secs(i as u64 * 1000)).unwrap();
    }
}

#[test]
fn the_same_files_created_in_another_order_with_other_mtimes_hash_the_same() {
    let (x, y) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build(x.path(), &[0, 1, 2, 3], SystemTime::UNIX_EPOCH);
    build(y.path(), &[3, 2, 1, 0], SystemTime::now());
    assert_eq!(hash_of(x.path()), hash_of(y.path()));
}

#[test]
fn nested_dirs_empty_files_and_the_exec_bit_change_the_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut seen = vec![hash_of(root)];
    let changed = |what: &str, seen: &mut Vec<[u8; 32]>| {
        let h = hash_of(root);
        assert!(!seen.contains(&h), "{what} did not change the hash");
        seen.push(h);
    };
    fs::create_dir(root.join("d")).unwrap();
    changed("an empty directory", &mut seen);
    fs::create_dir(root.join("d/e")).unwrap();
    changed("a nested directory", &mut seen);
    fs::write(root.join("d/e/f"), b"").unwrap();
    changed("an empty file", &mut seen);
    fs::set_permissions(root.join("d/e/f"), fs::Permissions::from_mode(0o755)).unwrap();
    changed("the exec bit", &mut seen);
    fs::set_permissions(root.join("d/e/f"), fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(hash_of(root), seen[seen.len() - 1], "other mode bits do not count");
    fs::rename(root.join("d/e/f"), root.join("d/f")).unwrap();
    changed("a move", &mut seen);
}

#[test]
fn rehashing_after_one_of_10000_files_changed_reads_only_that_file() {
    let tmp = fast_tempdir();
    for d in 0..100 {
        let dir = tmp.path().join(format!("d{d:03}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..100 {
            fs::write(dir.join(format!("f{f:03}")), format!("file {d} {f}")).unwrap();
        }
    }
    let mut hasher = StateHasher::new(tmp.path());
    let first = hasher.scan().unwrap();
    assert_eq!(first.stats.files_hashed, 10_000);
    hasher.scan().unwrap(); // settles files written within the clock tick of the first scan
    fs::write(tmp.path().join("d042/f042"), b"changed!").unwrap();
    let third = hasher.scan().unwrap();
    assert_eq!((third.stats.files_hashed, third.stats.bytes_hashed), (1, 8));
    assert_eq!(third.stats.entries, 10_100);
    assert_ne!(third.root, first.root);
    assert_eq!(third.root, hash_of(tmp.path()), "incremental and full hashes agree");
}

#[test]
fn a_round_that_changes_one_of_10000_files_rehashes_only_that_file() {
    let node = Node::on_tmpfs("script");
    for d in 0..100 {
        let dir = node.state().join(format!("d{d:03}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..100 {
            fs::write(dir.join(format!("f{f:03}")), format!("file {d} {f}")).unwrap();
        }
    }
    let mut engine = node.engine();
    execute(&mut engine, one(1, "put d007/f007 new"));
    let stats = engine.last_scan_stats();
    assert_eq!((stats.files_hashed, stats.bytes_hashed), (1, 3), "{stats:?}");
    assert_eq!(engine.state_info().unwrap().state_hash, hash_of(&node.state()));
    assert_eq!(hash_of(&node.state()), hash_of(&node.dir().exec_data().join("committed")));
}
