//! State sync: strict staging paths, all-or-nothing apply, a fresh node catching up.

use crate::support::*;
use hp_execd::EngineError;
use hp_execd::convert;
use hp_execd::sync::SyncError;
use std::fs;

#[test]
fn staging_refuses_escaping_absolute_and_symlink_paths() {
    // The genesis state holds a symlink to a folder.
    let fresh = Node::new("script");
    fs::create_dir(fresh.state().join("real")).unwrap();
    std::os::unix::fs::symlink("real", fresh.state().join("link")).unwrap();
    let mut engine = fresh.engine();
    let engine = &mut engine;
    for bad in ["../x", "/abs", "a/../../x", "a//b", "", "./a"] {
        let err = engine.stage_chunk(bad, 0, b"data", false).unwrap_err();
        assert!(matches!(err, EngineError::Sync(SyncError::BadPath { .. })), "{bad:?}: {err}");
    }
    let err = engine.stage_chunk("link/x", 0, b"data", false).unwrap_err();
    assert!(matches!(err, EngineError::Sync(SyncError::ThroughSymlink { .. })), "{err}");
    // A symlink planted in the staging area itself is not followed either.
    let staging = fresh.dir().exec_data().join("staging");
    fs::create_dir_all(&staging).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), staging.join("evil")).unwrap();
    let err = engine.stage_chunk("evil/x", 0, b"data", false).unwrap_err();
    assert!(matches!(err, EngineError::Sync(SyncError::ThroughSymlink { .. })), "{err}");
    std::os::unix::fs::symlink(outside.path().join("target"), staging.join("evil2")).unwrap();
    let err = engine.stage_chunk("evil2", 0, b"data", false).unwrap_err();
    assert!(matches!(err, EngineError::Sync(SyncError::ThroughSymlink { .. })), "{err}");
    assert!(fs::read_dir(outside.path()).unwrap().next().is_none(), "nothing was written outside");
    engine.stage_chunk("ok/nested/file", 3, b"abc", false).unwrap();
    assert_eq!(fs::read(staging.join("ok/nested/file")).unwrap(), b"\0\0\0abc");
    engine.stage_chunk("", 0, b"", true).unwrap();
    assert!(!staging.join("ok").exists(), "reset empties the staging area");
}

fn manifest_of(engine: &hp_execd::Engine) -> Vec<hp_execd::sync::WireEntry> {
    let (_, entries) = engine.manifest(false).unwrap();
    entries.iter().map(|e| convert::wire_entry(convert::entry_to_proto(e).unwrap())).collect()
}

#[test]
fn a_wrong_final_hash_leaves_the_state_untouched() {
    let node = Node::new("script");
    let mut engine = node.engine();
    execute(&mut engine, one(1, "put a one"));
    let before = engine.state_info().unwrap();
    let mut target = manifest_of(&engine);
    engine.stage_chunk("a", 0, b"two", true).unwrap();
    let wrong = [7u8; 32];
    let err = engine.apply_staged(2, wrong, target.clone()).unwrap_err();
    assert!(matches!(err, EngineError::HashMismatch { .. }), "{err}");
    assert_eq!(engine.state_info().unwrap(), before);
    assert_eq!(fs::read(node.state().join("a")).unwrap(), b"one");
    assert_eq!(hash_of(&node.state()), before.state_hash);
    // A manifest naming content nobody staged is refused the same way.
    target[0].content_hash = vec![9; 32];
    engine.stage_chunk("", 0, b"", true).unwrap();
    let err = engine.apply_staged(2, before.state_hash, target).unwrap_err();
    assert!(matches!(err, EngineError::Sync(SyncError::NotStaged { .. })), "{err}");
    assert_eq!(engine.state_info().unwrap(), before);
    // The engine still executes normally afterwards.
    execute(&mut engine, one(2, "append a !"));
    assert_eq!(fs::read(node.state().join("a")).unwrap(), b"one!");
}

#[test]
fn a_fresh_node_copies_the_state_of_another_chunk_by_chunk() {
    let source_node = Node::new("script");
    let mut source = source_node.engine();
    execute(&mut source, one(1, "mkdir d\nput d/x hello\nput big 0123456789\nput same hello\nput exe run\nchmodx exe"));
    // More than two chunks of 1 MiB.
    let big = format!("put large {}", "L".repeat(2_500_000));
    execute(&mut source, one(2, &big));
    let info = source.state_info().unwrap();

    let target_node = Node::new("script");
    let mut target = target_node.engine();
    execute(&mut target, one(1, "put stale old\nput same hello"));
    target.stage_chunk("", 0, b"", true).unwrap();
    let (_, entries) = source.manifest(false).unwrap();
    for e in &entries {
        let p = convert::entry_to_proto(e).unwrap();
        if p.is_dir {
            continue;
        }
        let mut offset = 0;
        loop {
            let (data, eof) = source.read_chunk(&p.path, &p.content_hash, offset, u32::MAX).unwrap();
            assert!(data.len() <= 1024 * 1024, "chunks are capped at 1 MiB");
            target.stage_chunk(&p.path, offset, &data, false).unwrap();
            offset += data.len() as u64;
            if eof {
                break;
            }
        }
    }
    target.apply_staged(2, info.state_hash, manifest_of(&source)).unwrap();
    assert_eq!(target.state_info().unwrap(), info);
    assert_eq!(hash_of(&target_node.state()), info.state_hash);
    assert!(!target_node.state().join("stale").exists());
    // The next round runs on the copied state.
    let result = execute(&mut target, one(3, "cat d/x"));
    assert_eq!(output_of(&result, key(1)), b"hello");
    // A chunk whose content changed is refused.
    let err = source.read_chunk("d/x", &[0; 32], 0, 10).unwrap_err();
    assert!(matches!(err, EngineError::ContentChanged { .. }), "{err}");
}
