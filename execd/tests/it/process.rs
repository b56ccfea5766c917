//! Timeouts, crashes and exit codes are deterministic results; nothing is left running.

use crate::support::*;
use hp_execd::EngineError;
use hp_execd::process::{ProcField, processes_where};
use hp_ledger::ExitKind;
use std::path::Path;
use std::time::Duration;

#[test]
fn an_infinite_loop_that_forked_is_killed_at_the_timeout_with_its_child_and_reaped() {
    let node = Node::with("forkloop", |c| c.contract_timeout_ms = 300);
    let mut engine = node.engine();
    let started = std::time::Instant::now();
    let result = execute(&mut engine, one(1, ""));
    assert_eq!(result.exit, ExitKind::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(10), "the timeout was not enforced");
    assert!(result.run_micros >= 300_000, "killed before the timeout: {} µs", result.run_micros);
    let text = String::from_utf8(output_of(&result, key(1))).unwrap();
    let pids: Vec<i32> = text.split_whitespace().map(|p| p.parse().unwrap()).collect();
    let (main, child) = (pids[0], pids[1]);
    for pid in [main, child] {
        assert!(
            wait_until(Duration::from_secs(5), || !Path::new(&format!("/proc/{pid}")).exists()),
            "process {pid} is still there (alive or a zombie)"
        );
    }
    assert!(processes_where(ProcField::Pgrp, main).is_empty(), "the contract's group is not empty");
    // The timed-out round is a result like any other: the next round runs.
    assert_eq!(execute(&mut engine, one(2, "")).exit, ExitKind::TimedOut);
}

#[test]
fn a_descendant_that_escaped_the_group_holding_a_pipe_cannot_hang_the_round() {
    let node = Node::new("escape");
    let mut engine = node.engine();
    let started = std::time::Instant::now();
    let result = execute(&mut engine, one(1, ""));
    let took = started.elapsed();
    let escaped: i32 = String::from_utf8(output_of(&result, key(1))).unwrap().parse().unwrap();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(escaped), nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(escaped), None);
    assert_eq!(result.exit, ExitKind::Code(0));
    assert!(took < Duration::from_secs(5), "the round waited {took:?} for a process holding its pipe");
}

#[test]
fn crashes_and_exit_codes_are_recorded() {
    for (args, exit) in [
        ("segv", ExitKind::Signal(libc::SIGSEGV)),
        ("abort", ExitKind::Signal(libc::SIGABRT)),
        ("exit 7", ExitKind::Code(7)),
        ("exit 0", ExitKind::Code(0)),
    ] {
        let node = Node::new(args);
        let mut engine = node.engine();
        let result = execute(&mut engine, one(1, "x"));
        assert_eq!(result.exit, exit, "{args}");
        assert_eq!(execute(&mut engine, one(2, "x")).exit, exit, "{args}: next round");
    }
}

#[test]
fn a_missing_binary_is_a_spawn_error_result() {
    let node = Node::with("", |c| c.binary = "bin/nope".into());
    let mut engine = node.engine();
    let result = execute(&mut engine, one(1, "x"));
    assert_eq!(result.exit, ExitKind::SpawnError);
    assert!(result.spawn_error.as_deref().is_some_and(|e| e.contains("bin/nope")), "{:?}", result.spawn_error);
}

#[test]
fn execute_is_idempotent_per_seq_and_in_order() {
    let node = Node::new("script");
    let mut engine = node.engine();
    let first = execute(&mut engine, one(10, "append log x\nout done"));
    let again = execute(&mut engine, one(10, "append log x\nout done"));
    assert_eq!(first, again, "the recorded result comes back");
    assert_eq!(std::fs::read(node.state().join("log")).unwrap(), b"x", "the contract did not run twice");
    let err = engine.execute(one(12, ""), &hp_daemon::CancellationToken::new()).unwrap_err();
    assert!(matches!(err, EngineError::OutOfOrder { requested: 12, last: 10 }));
    let text = err.to_string();
    assert!(text.contains("12") && text.contains("10") && text.contains("11"), "{text}");
    execute(&mut engine, one(11, "append log y"));
    assert_eq!(std::fs::read(node.state().join("log")).unwrap(), b"xy");
    // A new engine on the same directory (a restart) returns the recorded result too.
    drop(engine);
    let mut engine = node.engine();
    assert_eq!(engine.state_info().unwrap().seq, Some(11));
    assert!(matches!(
        engine.execute(one(10, ""), &hp_daemon::CancellationToken::new()),
        Err(EngineError::OutOfOrder { .. })
    ));
    let replay = execute(&mut engine, one(11, "append log y"));
    assert_eq!(replay.seq, 11);
    assert_eq!(std::fs::read(node.state().join("log")).unwrap(), b"xy");
}
