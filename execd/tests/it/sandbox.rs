//! The contract's sandbox as hp-execd applies it (issue 20): the limits a contract sees and
//! what breaking each gives (a deterministic result, like a timeout), its own user and the
//! ownership of `state/`, read-only runs confined to their copy, and the refusals at start.
//! The 3-node escape test is tests/tests/it/sandbox.rs.

use crate::support::*;
use hp_execd::sandbox::Sandbox;
use hp_ledger::ExitKind;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Parses one limit out of `/proc/self/limits` ("Max open files  1029  1029  files").
fn limit(limits: &str, name: &str) -> String {
    let line = limits.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {limits}"));
    let rest = line[name.len()..].split_whitespace().collect::<Vec<_>>();
    assert_eq!(rest[0], rest[1], "soft and hard differ: {line}");
    rest[0].to_string()
}

#[test]
fn the_contract_sees_its_limits_with_room_for_every_users_fds() {
    let mut node = Node::with("", |c| {
        c.contract_limits.memory_mb = 300;
        c.contract_limits.open_files = 100;
        c.contract_limits.file_size_mb = 7;
        c.contract_limits.cpu_seconds = 5;
        c.contract_limits.processes = 40;
    });
    node.script("cat /proc/self/limits > /proc/self/fd/4");
    let mut engine = node.sandboxed_engine();
    let users = vec![(key(1), vec![b"a".to_vec()]), (key(2), vec![]), (key(3), vec![])];
    let result = execute(&mut engine, request(1, users));
    assert_eq!(result.exit, ExitKind::Code(0), "{:?}", result.spawn_error);
    let limits = String::from_utf8(output_of(&result, key(1))).unwrap();
    assert_eq!(limit(&limits, "Max data size"), (300u64 << 20).to_string());
    // Three users: fds 3..=8 are theirs; 100 more may be opened.
    assert_eq!(limit(&limits, "Max open files"), (3 + 2 * 3 + 100).to_string());
    assert_eq!(limit(&limits, "Max file size"), (7u64 << 20).to_string());
    assert_eq!(limit(&limits, "Max cpu time"), "5");
    if root() {
        assert_eq!(limit(&limits, "Max processes"), "40");
    }
}

/// Issue 19: the agreed config (`patch.cfg`'s `round_limits`) tightens the node's limits from the
/// round after it, and never loosens them.
#[test]
fn the_limits_the_agreed_patch_names_apply_where_stricter_than_the_nodes() {
    let mut node = Node::with("", |c| {
        c.contract_limits.memory_mb = 300;
        c.contract_limits.open_files = 100;
        c.contract_limits.cpu_seconds = 5;
    });
    let patch = patched(&node, |patch| {
        (patch["bin_path"], patch["bin_args"]) = ("bin/contract.sh".into(), "".into()); // as `script` sets
        patch["round_limits"]["proc_mem_bytes"] = (64u64 << 20).into();
        patch["round_limits"]["proc_ofd_count"] = 50.into();
        patch["round_limits"]["proc_cpu_seconds"] = 3600.into(); // looser than the node's: no effect
    });
    node.script(&format!("cat /proc/self/limits > /proc/self/fd/4\ncat > ../patch.cfg <<'PATCH'\n{patch}\nPATCH"));
    let mut engine = node.sandboxed_engine();
    let before = String::from_utf8(output_of(&execute(&mut engine, one(1, "a")), key(1))).unwrap();
    assert_eq!(limit(&before, "Max data size"), (300u64 << 20).to_string(), "the patch's round runs under the old");
    let after = String::from_utf8(output_of(&execute(&mut engine, one(2, "a")), key(1))).unwrap();
    assert_eq!(limit(&after, "Max data size"), (64u64 << 20).to_string());
    assert_eq!(limit(&after, "Max open files"), (3 + 2 + 50).to_string());
    assert_eq!(limit(&after, "Max cpu time"), "5");
}

#[test]
fn a_contract_past_a_limit_gets_a_deterministic_result_and_the_next_round_runs() {
    let cases: [(&str, &str, ExitKind); 3] = [
        // CPU time: SIGKILL at the limit, long before the timeout.
        ("cpu", "while :; do :; done", ExitKind::Signal(libc::SIGKILL)),
        // File size: SIGXFSZ on the write past it.
        ("file size", "exec head -c 3000000 /dev/zero > big", ExitKind::Signal(libc::SIGXFSZ)),
        // Memory: the allocation fails and dd says so with its exit code.
        ("memory", "exec dd if=/dev/zero of=/dev/null bs=600M count=1 2>/dev/null", ExitKind::Code(1)),
    ];
    for (what, script, exit) in cases {
        let mut node = Node::with("", |c| {
            c.contract_timeout_ms = 20_000;
            c.contract_limits.cpu_seconds = 1;
            c.contract_limits.file_size_mb = 1;
            c.contract_limits.memory_mb = 256;
        });
        node.script(script);
        let mut engine = node.sandboxed_engine();
        let started = Instant::now();
        let result = execute(&mut engine, one(1, "x"));
        assert_eq!(result.exit, exit, "{what}: {:?}", result.spawn_error);
        assert!(started.elapsed() < Duration::from_secs(15), "{what}: took {:?}", started.elapsed());
        let next = execute(&mut engine, one(2, "x"));
        assert_eq!(next.exit, exit, "{what}: next round: {:?}", next.spawn_error);
    }
}

#[test]
fn within_its_limits_the_same_work_succeeds() {
    let mut node = Node::with("", |c| c.contract_limits.memory_mb = 1024);
    node.script("exec dd if=/dev/zero of=/dev/null bs=600M count=1 2>/dev/null");
    let mut engine = node.sandboxed_engine();
    assert_eq!(execute(&mut engine, one(1, "x")).exit, ExitKind::Code(0));
}

#[test]
fn as_root_the_contract_runs_as_its_own_user_and_owns_what_execd_restores() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut node = Node::new("");
    let ids = hp_execd::sandbox::user::resolve(node.cfg.contract_user.as_deref().unwrap()).unwrap();
    node.script("id -u > /proc/self/fd/4; id -g >> /proc/self/fd/4; echo made > made.txt");
    // A file the operator put there as root before the first start: genesis state.
    std::fs::write(node.state().join("genesis.txt"), "g").unwrap();
    let mut engine = node.sandboxed_engine();
    let result = execute(&mut engine, one(1, "x"));
    assert_eq!(result.exit, ExitKind::Code(0), "{:?}", result.spawn_error);
    assert_eq!(String::from_utf8(output_of(&result, key(1))).unwrap(), format!("{}\n{}\n", ids.uid, ids.gid));
    for name in ["", "made.txt", "genesis.txt"] {
        let meta = std::fs::metadata(node.state().join(name)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (ids.uid, ids.gid), "state/{name}");
    }
    // Changed behind execd's back as root: restored, and the restored file is the contract's.
    std::fs::remove_file(node.state().join("made.txt")).unwrap();
    execute(&mut engine, one(2, "x"));
    let meta = std::fs::metadata(node.state().join("made.txt")).unwrap();
    assert_eq!(meta.uid(), ids.uid);
}

#[test]
fn a_read_only_run_may_write_its_copy_and_nothing_else() {
    let mut node = Node::new("");
    let state = node.state();
    node.script(&format!(
        "echo copy > mine.txt && echo wrote-copy > /proc/self/fd/4; \
         (echo evil > {}/evil.txt) 2>/dev/null && echo wrote-state >> /proc/self/fd/4; true",
        state.display()
    ));
    let engine = node.sandboxed_engine();
    let scratch = tempfile::tempdir_in(node.root.join("hist")).unwrap();
    let dst = scratch.path().join("state");
    let prepared = engine.prepare_read(&dst).unwrap();
    let users = [hp_execd::UserInput { pubkey: key(1), inputs: vec![bytes::Bytes::from_static(b"r")] }];
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let outcome = rt
        .block_on(hp_execd::runner::run(
            &prepared.contract,
            0,
            b"HOTPOCKET 0.1\n".to_vec(),
            &users,
            hp_execd::runner::Abi::Pipes,
            &hp_daemon::CancellationToken::new(),
            &mut |_| {},
        ))
        .unwrap();
    let out: Vec<u8> = outcome.outputs.into_iter().flat_map(|(_, o)| o).collect();
    assert_eq!(String::from_utf8(out).unwrap(), "wrote-copy\n");
    assert!(dst.join("mine.txt").exists());
    assert!(!state.join("evil.txt").exists());
}

#[test]
fn as_root_a_node_without_contract_user_refuses_to_start_naming_the_field() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let node = Node::with("", |c| c.contract_user = None);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hp-execd")).arg(&node.root).output().unwrap();
    assert!(!out.status.success(), "hp-execd started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("contract_user"), "{err}");
}

#[test]
fn as_root_a_binary_the_contract_user_cannot_reach_is_refused_at_start_naming_the_folder() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let node = Node::new("");
    let bin = node.root.join("bin");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o700)).unwrap();
    let cfg = hp_execd::EngineConfig::new(&node.root, &node.cfg).unwrap();
    let err = Sandbox::start(&cfg.dir, &node.cfg, &cfg.contract.program).unwrap_err().to_string();
    assert!(err.contains(&bin.display().to_string()) && err.contains("0700"), "{err}");
}

#[test]
fn with_the_sandbox_off_there_is_none() {
    let node = Node::with("", |c| c.sandbox = false);
    let cfg = hp_execd::EngineConfig::new(&node.root, &node.cfg).unwrap();
    assert!(Sandbox::start(&cfg.dir, &node.cfg, &cfg.contract.program).unwrap().is_none());
}
