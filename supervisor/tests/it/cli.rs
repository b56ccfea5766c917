//! The operator commands that need no running node: help, new, rekey, cluster new, config
//! errors, and the answers when no node runs.

use crate::kit::{TestDir, free_port, hotpocket};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn hp(args: &[&str]) -> Output {
    Command::new(hotpocket()).args(args).stdin(Stdio::null()).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        &["--help"][..],
        &["new", "--help"],
        &["rekey", "--help"],
        &["run", "--help"],
        &["status", "--help"],
        &["ledger", "--help"],
        &["verify", "--help"],
        &["restart", "--help"],
        &["cluster", "--help"],
        &["cluster", "new", "--help"],
    ] {
        let out = hp(sub);
        assert!(out.status.success(), "{sub:?}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("Usage:"), "{sub:?}: {}", text(&out.stdout));
    }
}

#[test]
fn new_makes_a_private_config_and_run_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("c");
    let out = hp(&["new", root.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let cfg = hp_cfg::Config::load(&root.join("cfg/hp.cfg")).unwrap();
    assert!(stdout.contains(&cfg.key.public_hex()), "{stdout}");
    assert!(stdout.contains("created contract directory"), "{stdout}");
    assert_eq!(mode(&root.join("cfg/hp.cfg")), 0o600);
    assert_eq!(mode(&root.join("run")), 0o700);
    for folder in ["state", "hist", "bin"] {
        assert!(root.join(folder).is_dir(), "{folder}");
    }
    // A second `new` on the same directory refuses and says why.
    let again = hp(&["new", root.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("not empty"), "{}", text(&again.stderr));
}

#[test]
fn new_copies_the_given_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let contract = tmp.path().join("echo.sh");
    fs::write(&contract, "#!/bin/sh\ncat\n").unwrap();
    let root = tmp.path().join("c");
    let out = hp(&["new", root.to_str().unwrap(), "--contract", contract.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::read_to_string(root.join("bin/echo.sh")).unwrap(), "#!/bin/sh\ncat\n");
    assert!(text(&out.stdout).contains("bin/echo.sh"));
}

#[test]
fn rekey_prints_the_old_and_the_new_key() {
    let t = TestDir::new();
    let old = t.config().key.public_hex();
    let out = t.hotpocket(&["rekey", t.root().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let new = t.config().key.public_hex();
    assert_ne!(old, new);
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&old) && stdout.contains(&new), "{stdout}");
    assert_eq!(mode(&t.dir.config_file()), 0o600);
}

#[test]
fn cluster_new_wires_the_nodes_together() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cluster");
    let base = free_port().to_string();
    let out = hp(&["cluster", "new", root.to_str().unwrap(), "--nodes", "3", "--base-port", &base]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let base: u16 = base.parse().unwrap();
    let stdout = text(&out.stdout);
    for i in 1..=3u16 {
        let dir = root.join(format!("node{i}"));
        let cfg = hp_cfg::Config::load(&dir.join("cfg/hp.cfg")).unwrap();
        assert_eq!(cfg.peerport, base + i - 1);
        assert_eq!(cfg.pubport, Some(base + 100 + i - 1));
        assert_eq!(cfg.hpport, Some(base + 200 + i - 1));
        assert!(dir.join("cfg/tlscert.pem").exists());
        assert_eq!(mode(&dir.join("cfg/tlskey.pem")), 0o600);
        assert_eq!(cfg.unl.len(), 3);
        assert_eq!(cfg.peers.len(), 2);
        assert_eq!(mode(&dir.join("cfg/hp.cfg")), 0o600);
        assert_eq!(mode(&dir.join("run")), 0o700);
        assert!(stdout.contains(&cfg.key.public_hex()), "{stdout}");
    }
}

#[test]
fn cluster_new_defaults_to_base_port_22860() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cluster");
    let out = hp(&["cluster", "new", root.to_str().unwrap(), "--nodes", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cfg = hp_cfg::Config::load(&root.join("node1/cfg/hp.cfg")).unwrap();
    assert_eq!((cfg.peerport, cfg.pubport), (22860, Some(22960)));
}

#[test]
fn a_bad_config_stops_run_with_code_3_naming_the_field() {
    let t = TestDir::new();
    let path = t.dir.config_file();
    let mut json: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    json["roundtime"] = "soon".into();
    fs::write(&path, json.to_string()).unwrap();
    let out = t.hotpocket(&["run", t.root().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("roundtime"), "{}", text(&out.stderr));
    assert!(!t.dir.socket("supervisor").exists(), "nothing was started");
}

/// Like ssh with a private key: a node whose `hp.cfg` (it holds the secret key) others can read
/// does not start, and says which file, its mode and the fix.
#[test]
fn a_config_readable_by_others_stops_run_naming_file_mode_and_chmod() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestDir::new();
    let path = t.dir.config_file();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let out = t.hotpocket(&["run", t.root().to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()) && stderr.contains("0644"), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(!t.dir.socket("supervisor").exists(), "nothing was started");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    assert!(hp_cfg::Config::load(&path).is_ok());
}

#[test]
fn a_missing_contract_dir_is_a_config_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = hp(&["run", tmp.path().join("nothing").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("hp.cfg"), "{}", text(&out.stderr));
}

#[test]
fn missing_daemons_are_named() {
    let t = TestDir::new();
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(hotpocket())
        .args(["run", t.root().to_str().unwrap()])
        .env("HP_BIN_DIR", empty.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("hp-execd"), "{}", text(&out.stderr));
}

#[test]
fn status_and_restart_without_a_node_say_node_not_running() {
    let t = TestDir::new();
    let dir = t.root().to_str().unwrap();
    for args in [&["status", dir][..], &["status", dir, "--json"], &["restart", dir, "execd"]] {
        let out = t.hotpocket(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(text(&out.stderr).contains("node not running"), "{args:?}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // A socket left behind by a dead supervisor answers nothing either.
    drop(std::os::unix::net::UnixListener::bind(t.dir.socket("supervisor")).unwrap());
    let out = t.hotpocket(&["status", dir, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("node not running"), "{}", text(&out.stderr));
}

#[test]
fn restart_refuses_an_unknown_component() {
    let t = TestDir::new();
    let out = t.hotpocket(&["restart", t.root().to_str().unwrap(), "supervisor"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Run as root, a node must give its contract a user of its own (issue 20): without
/// `contract_user`, `hotpocket run` refuses before starting anything, with code 3 and the field.
#[test]
fn as_root_a_node_without_contract_user_stops_run_with_code_3_naming_the_field() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let t = TestDir::new();
    let mut cfg = t.config();
    cfg.contract_user = None;
    cfg.save(&t.dir.config_file()).unwrap();
    let out = t.hotpocket(&["run", t.root().to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("contract_user"), "{stderr}");
    assert!(!t.dir.socket("supervisor").exists(), "nothing was started");
}
