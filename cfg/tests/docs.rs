//! Keeps `docs/config.md` true: its table lists exactly the fields the node writes, each with the
//! default `hotpocket new` writes, and each default parses.

#![allow(clippy::expect_used)]

use hp_cfg::Config;
use serde_json::Value;

const DOC: &str = include_str!("../../docs/config.md");

struct Row {
    field: String,
    default: String,
}

fn rows() -> Vec<Row> {
    DOC.lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            Row { field: cells[1].trim_matches('`').to_string(), default: cells[2].to_string() }
        })
        .collect()
}

/// The default cell as JSON, when it is a literal (`"text"`, `1,024`, `0.8`, `[]`); `None` for
/// prose such as "(generated)".
fn literal(cell: &str) -> Option<Value> {
    let unquoted = cell.trim_matches('`');
    if unquoted.starts_with('"') || unquoted == "[]" {
        return serde_json::from_str(unquoted).ok();
    }
    let digits = unquoted.replace(',', "");
    digits.parse::<f64>().ok().map(|_| serde_json::from_str(&digits).expect("number"))
}

/// What `hotpocket new` writes, read back from the directory it made.
fn written() -> serde_json::Map<String, Value> {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("node");
    hp_cfg::create::new_contract_dir(&root, None).expect("hotpocket new");
    let text = std::fs::read_to_string(root.join("cfg/hp.cfg")).expect("hp.cfg");
    match serde_json::from_str::<Value>(&text).expect("hp.cfg is JSON") {
        Value::Object(map) => map,
        other => panic!("config JSON is not an object: {other}"),
    }
}

#[test]
fn the_config_table_lists_exactly_the_fields_a_new_node_writes() {
    let documented: Vec<String> = rows().into_iter().map(|row| row.field).collect();
    let written: Vec<String> = written().keys().cloned().collect();
    for field in &written {
        assert!(documented.contains(field), "docs/config.md has no row for `{field}`");
    }
    for field in &documented {
        assert!(written.contains(field), "docs/config.md documents `{field}`, which the node does not write");
    }
}

#[test]
fn every_literal_default_in_the_config_table_is_what_hotpocket_new_writes() {
    let written = written();
    let mut checked = 0;
    for row in rows() {
        let Some(default) = literal(&row.default) else { continue };
        let actual = &written[&row.field];
        let same = match (actual.as_f64(), default.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => *actual == default,
        };
        assert!(same, "docs/config.md says `{}` defaults to {default}, hotpocket new writes {actual}", row.field);
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} defaults could be read from the table");
}

#[test]
fn a_config_with_every_documented_default_parses() {
    let mut map = written();
    for row in rows() {
        if let Some(default) = literal(&row.default) {
            map.insert(row.field, default);
        }
    }
    if let Err(e) = Config::parse(&Value::Object(map).to_string()) {
        panic!("the documented defaults do not parse: {e}");
    }
}
