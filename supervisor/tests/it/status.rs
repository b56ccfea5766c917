//! `hotpocket status` against a running node.

use crate::kit::{COMPONENTS, Supervisor, TestDir, alive};
use std::time::Duration;

fn is_hex(v: &serde_json::Value) -> bool {
    v.as_str().is_some_and(|s| s.len() % 2 == 0 && s.chars().all(|c| c.is_ascii_hexdigit()))
}

#[test]
fn status_json_reports_the_chain_and_every_component() {
    let t = TestDir::new();
    let mut node = t.run();
    node.wait_running(Duration::from_secs(20));
    let out = t.hotpocket(&["status", t.root().to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with(r#"{"lcl_seq":"#), "fields in the fixed order: {stdout}");
    assert_eq!(stdout.lines().count(), 1, "one object, one line");
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(s["lcl_seq"].is_u64(), "{s}");
    assert!(is_hex(&s["lcl_hash"]) && is_hex(&s["state_hash"]), "{s}");
    assert_eq!(s["peers"], 0, "a network of one has no peers: {s}");
    assert_eq!(s["users"], 0, "{s}");
    let keys: Vec<_> = s["components"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys.len(), 3);
    for c in COMPONENTS {
        let comp = &s["components"][c];
        assert_eq!(comp["state"], "running", "{c}: {s}");
        assert_eq!(comp["restarts"], 0, "{c}: {s}");
        assert!(alive(comp["pid"].as_u64().unwrap() as u32), "{c}: {s}");
    }
    assert_eq!(Supervisor::pids(&s).iter().collect::<std::collections::HashSet<_>>().len(), 3, "three processes");
    // The chain moves on: consensusd's figures reach the status.
    let later = crate::kit::wait_for(Duration::from_secs(15), || {
        node.status().filter(|s| s["lcl_seq"].as_u64() > Some(0) && s["lcl_hash"] != "")
    });
    assert!(later.is_some(), "lcl_seq never advanced: {:?}\n{}", node.status(), node.log_text());

    let text = t.hotpocket(&["status", t.root().to_str().unwrap()]);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    for word in ["userd", "consensusd", "execd", "running", "peers", "users"] {
        assert!(text.contains(word), "{text}");
    }
}

#[test]
fn a_second_supervisor_on_the_same_directory_is_refused() {
    let t = TestDir::new();
    let mut node = t.run();
    let before = node.wait_running(Duration::from_secs(20));
    let out = t.hotpocket(&["run", t.root().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"), "{out:?}");
    let after = node.status().expect("the first node still answers");
    assert_eq!(Supervisor::pids(&before), Supervisor::pids(&after), "its daemons were left alone");
}
