//! Crash safety with the real `hp-execd` (docs/ARCHITECTURE.md), repair of a tampered state/, and the
//! binary's own surface (config errors, shutdown).

use crate::support::*;
use hp_execd::process::{ProcField, is_gone_or_zombie, processes_where};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::Code;

async fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_restores_the_committed_state_and_the_round_runs_again() {
    let node = Node::new("script");
    let state = node.state();
    let mut execd = Execd::start(&node.root);
    let mut client = execd.client();
    let r1 = client.execute(proto_request(1, "put a round1\nmkdir d\nput d/f one")).await.unwrap().into_inner();
    let committed: [u8; 32] = r1.state_hash.as_ref().try_into().unwrap();
    assert_eq!(hash_of(&state), committed);

    // Round 2 changes half of the state, then sleeps: execd is killed in the middle.
    let mut c2 = client.clone();
    let inflight = tokio::spawn(async move {
        c2.execute(proto_request(2, "put a round2\ndel d/f\nput new x\nput HALF x\nsleep 60")).await
    });
    assert!(wait_for(Duration::from_secs(20), || state.join("HALF").exists()).await, "round 2 never got going");
    let marker: serde_json::Value =
        serde_json::from_slice(&fs::read(node.dir().exec_data().join("running")).unwrap()).unwrap();
    let sid = marker["sid"].as_i64().unwrap() as i32;
    execd.kill9();
    assert!(inflight.await.unwrap().is_err(), "the call in flight fails with execd");
    // The contract died with execd (its death signal). This test process is a subreaper (see
    // `support::init`), so it inherits the corpse and reaps it.
    let dead = || processes_where(ProcField::Session, sid).into_iter().all(is_gone_or_zombie);
    assert!(wait_for(Duration::from_secs(10), dead).await, "the contract outlived execd");
    for pid in processes_where(ProcField::Session, sid) {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    }
    assert_ne!(hash_of(&state), committed, "the half-written state is on disk");

    let mut execd = Execd::start(&node.root);
    let mut client = execd.client();
    assert_eq!(hash_of(&state), committed, "state/ is back to the committed state of seq 1");
    assert_eq!(fs::read(state.join("a")).unwrap(), b"round1");
    assert!(!state.join("HALF").exists() && state.join("d/f").exists());
    let info = client.state_info(hp_proto::v1::StateInfoRequest {}).await.unwrap().into_inner();
    assert_eq!((info.seq, info.has_seq, info.state_hash.as_ref()), (1, true, &committed[..]));

    // The same seq runs again, then is idempotent; a gap is refused naming both seqs.
    let r2 = client.execute(proto_request(2, "put a round2\nout done")).await.unwrap().into_inner();
    assert_eq!(fs::read(state.join("a")).unwrap(), b"round2");
    let again = client.execute(proto_request(2, "put a other")).await.unwrap().into_inner();
    assert_eq!(again, r2);
    let err = client.execute(proto_request(5, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains('5') && err.message().contains('2'), "{}", err.message());

    // SIGTERM: a prompt clean exit that removes the socket.
    let status = execd.terminate(Duration::from_secs(10)).expect("hp-execd did not stop on SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(!execd.socket.exists(), "the socket was left behind");
}

/// A node stopped longer than the contract's timeout (SIGSTOP of execd and the contract, as a
/// paused VM would be) must not report a timeout for a contract that got the time it needed:
/// whether a contract timed out is part of the result every node must compute alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_past_the_timeout_does_not_time_out_a_contract_that_had_time() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let node = Node::with("script", |c| c.contract_timeout_ms = 3_000);
    let state = node.state();
    let execd = Execd::start(&node.root);
    let mut client = execd.client();
    let inflight =
        tokio::spawn(async move { client.execute(proto_request(1, "put STARTED x\nsleep 1\nout done")).await });
    assert!(wait_for(Duration::from_secs(20), || state.join("STARTED").exists()).await, "the round never got going");
    let marker: serde_json::Value =
        serde_json::from_slice(&fs::read(node.dir().exec_data().join("running")).unwrap()).unwrap();
    let contract = processes_where(ProcField::Session, marker["sid"].as_i64().unwrap() as i32);
    assert!(!contract.is_empty(), "no contract process is running");
    let execd_pid = Pid::from_raw(execd.pid());
    kill(execd_pid, Signal::SIGSTOP).unwrap();
    for pid in &contract {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGSTOP);
    }
    // The fault itself: stopped for longer than the timeout.
    tokio::time::sleep(Duration::from_secs(4)).await;
    // execd first: its overdue timer gets to run before the contract does.
    kill(execd_pid, Signal::SIGCONT).unwrap();
    for pid in &contract {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGCONT);
    }
    let reply = inflight.await.unwrap().expect("the round completes").into_inner();
    let result = hp_execd::convert::reply_from_proto(reply).unwrap();
    assert_eq!(result.exit, hp_ledger::ExitKind::Code(0), "the stop counted against the contract's timeout");
    assert_eq!(output_of(&result, key(1)), b"done");
}

#[test]
fn a_corrupt_committed_copy_answers_data_loss() {
    let node = Node::new("script");
    let mut engine = node.engine();
    execute(&mut engine, one(1, "put a x"));
    drop(engine);
    fs::write(node.dir().exec_data().join("committed/a"), b"bit rot").unwrap();
    let execd = Execd::start(&node.root);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let err = rt.block_on(async { execd.client().execute(proto_request(2, "")).await.unwrap_err() });
    assert_eq!(err.code(), Code::DataLoss, "{err:?}");
}

#[test]
fn tampering_with_state_between_rounds_is_repaired_before_the_next_execution() {
    let node = Node::new("script");
    let state = node.state();
    let mut engine = node.engine();
    execute(&mut engine, one(1, "put a committed\nmkdir d\nput d/keep k"));
    let committed = engine.state_info().unwrap().state_hash;
    fs::write(state.join("a"), b"tampered").unwrap();
    fs::write(state.join("junk"), b"x").unwrap();
    fs::remove_file(state.join("d/keep")).unwrap();
    fs::create_dir(state.join("d/extra")).unwrap();
    std::os::unix::fs::symlink("/etc", state.join("d/link")).unwrap();
    nix::unistd::mkfifo(&state.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let result = execute(&mut engine, one(2, "cat a\ncat d/keep\ncat junk"));
    assert_eq!(output_of(&result, key(1)), b"committedk<missing>");
    assert_eq!(result.state_hash, committed, "the round saw exactly the committed state");
    assert!(!state.join("fifo").exists() && !state.join("d/link").exists() && !state.join("d/extra").exists());
    // A restart finds the same and repairs it too.
    fs::write(state.join("a"), b"tampered again").unwrap();
    drop(engine);
    let engine = node.engine();
    assert_eq!(hash_of(&state), committed);
    assert!(matches!(engine.state_info(), Ok(info) if info.seq == Some(2)));
}

#[test]
fn a_bad_config_exits_with_the_config_code_naming_the_field() {
    let node = Node::new("script");
    let path = node.dir().config_file();
    let text = fs::read_to_string(&path).unwrap().replace("\"roundtime\": 1000", "\"roundtime\": \"fast\"");
    fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hp-execd")).arg(&node.root).output().unwrap();
    assert_eq!(out.status.code(), Some(hp_daemon::exit::CONFIG));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("roundtime"), "{stderr}");
    assert!(!Path::new(&node.dir().socket("execd")).exists());
}
