//! The `hp-userd` binary: config errors and a clean stop on SIGTERM.

use crate::support::*;
use hp_cfg::{Config, ContractDir, NodeKey};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child when the test ends, however it ends.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "hp-userd did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_bad_config_names_the_field_and_exits_with_the_config_code() {
    let dir = tempfile::tempdir().unwrap();
    let contract = ContractDir::new(dir.path());
    let mut json = Config::new_single(NodeKey::generate()).to_json();
    json["pubmaxsize"] = serde_json::json!("big");
    std::fs::create_dir_all(dir.path().join("cfg")).unwrap();
    std::fs::write(contract.config_file(), json.to_string()).unwrap();
    std::fs::set_permissions(contract.config_file(), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_hp-userd"))
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let status = wait_exit(&mut guard.0);
    let mut stderr = String::new();
    std::io::Read::read_to_string(guard.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(hp_daemon::exit::CONFIG));
    assert!(stderr.contains("`pubmaxsize`"), "{stderr}");
}

#[test]
fn sigterm_stops_it_cleanly_and_removes_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let contract = ContractDir::new(dir.path());
    let mut config = Config::new_single(NodeKey::generate());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    config.pubport = Some(port);
    config.ip = Some("127.0.0.1".parse().unwrap());
    config.save(&contract.config_file()).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_hp-userd"))
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let socket = contract.socket("userd");
    let deadline = Instant::now() + PATIENCE;
    while !(socket.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()) {
        assert!(Instant::now() < deadline, "hp-userd never became ready");
        assert!(guard.0.try_wait().unwrap().is_none(), "hp-userd exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill").arg("-TERM").arg(guard.0.id().to_string()).status().unwrap();
    assert!(killed.success());
    let status = wait_exit(&mut guard.0);
    assert_eq!(status.code(), Some(0));
    assert!(!socket.exists());
}
