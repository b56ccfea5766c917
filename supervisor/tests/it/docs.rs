//! Keeps `docs/command-line.md` true: every `hotpocket` command it shows exists, with every flag
//! it shows.

use crate::kit::hotpocket;
use std::process::Command;

const DOC: &str = include_str!("../../../docs/command-line.md");

/// The `hotpocket …` lines of the synopsis block.
fn synopsis() -> Vec<&'static str> {
    let start = DOC.find("```text\n").expect("a synopsis block") + "```text\n".len();
    let end = start + DOC[start..].find("```").expect("a closed block");
    DOC[start..end].lines().filter(|l| l.starts_with("hotpocket ")).collect()
}

#[test]
fn every_documented_hotpocket_command_and_flag_exists() {
    let lines = synopsis();
    assert!(lines.len() >= 8, "only {} commands documented", lines.len());
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        // The command's own words come before its first argument (`<dir>`).
        let command: Vec<&str> = words.iter().take_while(|w| !w.starts_with('<')).copied().collect();
        let output = Command::new(hotpocket()).args(&command).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "`hotpocket {} --help` failed: {help}", command.join(" "));
        let flags = words.iter().map(|w| w.trim_start_matches('[')).filter(|w| w.starts_with("--")).map(|w| {
            let name_len = 2 + w[2..].find(|c: char| !(c.is_ascii_lowercase() || c == '-')).unwrap_or(w.len() - 2);
            &w[..name_len]
        });
        for flag in flags {
            assert!(help.contains(flag), "`hotpocket {}` has no {flag}: {help}", command.join(" "));
        }
    }
}

#[test]
fn the_documented_status_json_is_what_the_status_command_prints() {
    use hotpocket::status::{ComponentView, Components, Endpoints, StatusView};
    let start = DOC.find("```json\n").expect("a status example") + "```json\n".len();
    let end = start + DOC[start..].find("```").expect("a closed block");
    let running = |pid| ComponentView { pid, state: "running".into(), restarts: 0 };
    let view = StatusView {
        lcl_seq: 12,
        lcl_hash: "5c".repeat(32),
        state_hash: "2c".repeat(32),
        peers: 2,
        users: 1,
        role: "validator".into(),
        unl: vec![format!("ed{}", "a1".repeat(32)), format!("ed{}", "b2".repeat(32)), format!("ed{}", "c3".repeat(32))],
        quorum: 3,
        config_hash: "d4".repeat(32),
        endpoints: Endpoints {
            seed: Some("ws://localhost:8080".into()),
            hotpocket: Some("wss://localhost:8443".into()),
            hotpocket_plain: None,
        },
        components: Components { userd: running(101), consensusd: running(102), execd: running(103) },
    };
    assert_eq!(DOC[start..end].trim_end(), serde_json::to_string(&view).unwrap());
}
