//! Property tests of the state-sync checks that read a peer's paths and manifests (issue 10):
//! `validate_path` accepts exactly the strictly relative paths; `stage_chunk` never writes
//! outside the staging area, whatever the path, offset or symlinks planted there; and
//! `parse_manifest` never panics and returns only well-formed trees. `HP_FUZZ_CASES` cases each
//! (256 by default).

use hp_execd::state_hash::{Kind, Scan};
use hp_execd::sync::{WireEntry, parse_manifest, stage_chunk, validate_path};
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::fs;
use std::path::Path;

fn config() -> Config {
    let cases = std::env::var("HP_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// Path components a peer might send, the nasty ones well represented.
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just(String::new()),
        Just("link".to_string()),
        Just("dir".to_string()),
        Just("a\0b".to_string()),
        Just("x".repeat(300)),
        "[a-z.]{1,4}",
        "\\PC{1,6}",
    ]
}

fn peer_path() -> impl Strategy<Value = String> {
    (any::<bool>(), proptest::collection::vec(component(), 1..5), any::<bool>()).prop_map(|(lead, parts, trail)| {
        let mut p = parts.join("/");
        if lead {
            p.insert(0, '/');
        }
        if trail {
            p.push('/');
        }
        p
    })
}

/// What a strictly relative path is, written independently of the code under test.
fn strictly_relative(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 4096
        && !p.starts_with('/')
        && !p.contains('\0')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Every file and folder under `root`, relative, sorted.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn validate_path_accepts_exactly_the_strictly_relative_paths(p in prop_oneof![peer_path(), "\\PC{0,20}"]) {
        prop_assert_eq!(validate_path(&p).is_ok(), strictly_relative(&p), "{:?}", p);
    }

    #[test]
    fn staging_never_writes_outside_its_folder(
        p in peer_path(),
        offset in prop_oneof![0u64..4096, Just(u64::MAX), Just(u64::MAX - 3), Just(1u64 << 40)],
        data in proptest::collection::vec(any::<u8>(), 0..64),
        reset in any::<bool>(),
    ) {
        let root = tempfile::tempdir().unwrap();
        let staging = root.path().join("staging");
        let outside = root.path().join("outside");
        fs::create_dir_all(&staging).unwrap();
        fs::create_dir_all(&outside).unwrap();
        // A symlink planted in the staging area, pointing out of it.
        std::os::unix::fs::symlink(&outside, staging.join("link")).unwrap();
        let result = stage_chunk(&staging, &Scan::empty(), &p, offset, &data, reset);
        prop_assert!(tree(&outside).is_empty(), "{:?} wrote outside the staging area", p);
        let top: Vec<String> = tree(root.path()).into_iter().filter(|e| !e.contains('/')).collect();
        prop_assert_eq!(top, vec!["outside".to_string(), "staging".to_string()]);
        if result.is_ok() && !(p.is_empty() && reset) {
            prop_assert!(strictly_relative(&p), "{:?} was staged", p);
            prop_assert!(offset.checked_add(data.len() as u64).is_some_and(|end| end <= 1 << 40));
            let staged = fs::read(staging.join(&p)).unwrap();
            if !data.is_empty() {
                prop_assert_eq!(&staged[offset as usize..], data.as_slice());
            }
        }
    }

    #[test]
    fn manifests_parse_into_well_formed_trees_or_not_at_all(
        entries in proptest::collection::vec(
            (peer_path(), any::<bool>(), prop_oneof![Just(0o100644u32), Just(0o100755), Just(0o040755), Just(0o120777), any::<u32>()],
             0u64..10_000, prop_oneof![Just(vec![0u8; 32]), proptest::collection::vec(any::<u8>(), 0..40)]),
            0..8,
        ),
    ) {
        let wire: Vec<WireEntry> = entries
            .into_iter()
            .map(|(path, is_dir, mode, size, content_hash)| WireEntry { path, is_dir, mode, size, content_hash })
            .collect();
        if let Ok(parsed) = parse_manifest(wire) {
            let paths: Vec<String> = parsed.iter().map(|e| String::from_utf8_lossy(&e.path).into_owned()).collect();
            for (i, e) in parsed.iter().enumerate() {
                let path = &paths[i];
                prop_assert!(strictly_relative(path), "{:?}", path);
                if i > 0 {
                    prop_assert!(parsed[i - 1].path < e.path, "not sorted and distinct");
                }
                if let Some((parent, _)) = path.rsplit_once('/') {
                    let dir = parsed.iter().find(|d| d.path == parent.as_bytes());
                    prop_assert!(dir.is_some_and(|d| d.kind == Kind::Dir), "{:?} has no folder", path);
                }
            }
        }
    }
}
