//! The `hp-client` command (docs/command-line.md) against the in-process node.

use crate::support::*;
use hp_proto::v1::userd_message::Kind;
use std::process::{Output, Stdio};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hp-client"));
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    command
}

/// Runs the command to its end, killing it if it overruns.
async fn run(mut command: Command) -> Output {
    tokio::time::timeout(PATIENCE, command.output()).await.expect("hp-client did not exit").unwrap()
}

fn stderr_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr).lines().map(str::to_string).collect()
}

#[tokio::test]
async fn sends_in_order_and_prints_each_output_on_a_line() {
    let node = Node::start().await;
    let output = run(command(&[&node.url(), "--send", "one", "--send", "two words", "--wait", "2"])).await;
    assert_eq!(output.status.code(), Some(0), "{:?}", stderr_lines(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "one\ntwo words\n");
}

#[tokio::test]
async fn hex_prints_outputs_as_hex() {
    let node = Node::start().await;
    let output = run(command(&[&node.url(), "--send", "AB", "--hex"])).await;
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "4142\n");
}

#[tokio::test]
async fn stdin_lines_are_sent_until_eof() {
    let node = Node::start().await;
    let mut child = command(&[&node.url()]).stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"first\nsecond\n").await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(output.status.code(), Some(0), "{:?}", stderr_lines(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "first\nsecond\n");
}

#[tokio::test]
async fn the_key_file_sets_the_user() {
    let node = Node::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = hp_client::generate_key();
    let secret = format!("{}{}\n", hex::encode(key.to_bytes()), hex::encode(key.verifying_key().to_bytes()));
    let path = dir.path().join("user.key");
    std::fs::write(&path, secret).unwrap();
    let output = run(command(&[&node.url(), "--key", path.to_str().unwrap(), "--send", "x"])).await;
    assert_eq!(output.status.code(), Some(0), "{:?}", stderr_lines(&output));
    let connected = node
        .fake
        .kinds()
        .into_iter()
        .any(|k| matches!(k, Kind::Connected(c) if c.pubkey.as_ref() == key.verifying_key().to_bytes()));
    assert!(connected);
}

#[tokio::test]
async fn error_frames_go_to_stderr_prefixed() {
    let node = Node::start().await;
    let output = run(command(&[&node.url(), "--send", "refuse:no room"])).await;
    assert_eq!(stderr_lines(&output), vec!["error: input refused: no room".to_string()]);
    assert_ne!(output.status.code(), Some(0));
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn a_refused_connection_is_one_line_and_a_failure() {
    let url = format!("ws://127.0.0.1:{}/", closed_port());
    let output = run(command(&[&url, "--send", "x"])).await;
    assert_eq!(output.status.code(), Some(1));
    let lines = stderr_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("hp-client: cannot connect to"), "{lines:?}");
}

#[tokio::test]
async fn missing_outputs_time_out_with_one_line() {
    let node = Node::start().await;
    node.fake.set_echo(false);
    let output = run(command(&[&node.url(), "--send", "x", "--timeout", "0.3"])).await;
    assert_eq!(output.status.code(), Some(1));
    let lines = stderr_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("timed out"), "{lines:?}");
}

#[tokio::test]
async fn a_bad_key_file_is_one_line_and_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.key");
    std::fs::write(&path, "not a key").unwrap();
    let output = run(command(&["ws://127.0.0.1:1/", "--key", path.to_str().unwrap()])).await;
    assert_eq!(output.status.code(), Some(1));
    let lines = stderr_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("bad.key"), "{lines:?}");
}
