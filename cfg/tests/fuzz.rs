//! Property tests of `Config::parse` (issue 10): a node's config is outside data too. Arbitrary
//! text and JSON never panic; a valid config survives a round trip; changing one field of a
//! valid config either still parses or fails with an error that names a field. `HP_FUZZ_CASES`
//! cases each (256 by default).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hp_cfg::{Config, ConfigError, NodeKey};
use proptest::prelude::*;
use proptest::test_runner::Config as Runner;
use serde_json::{Map, Value, json};

fn runner() -> Runner {
    let cases = std::env::var("HP_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    Runner { cases, failure_persistence: None, ..Runner::default() }
}

fn valid() -> Value {
    // A fixed key, so that a failing case reproduces.
    let mut cfg = Config::new_single(NodeKey::from_seed([0x11; 32]));
    cfg.peers = vec!["127.0.0.1:22861".into(), "[::1]:22862".into()];
    cfg.contract_id = "a-fixed-network".into();
    cfg.to_json()
}

/// JSON values of every shape, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        Just(json!(0)),
        ".{0,12}".prop_map(Value::String),
        "[0-9]{1,25}".prop_map(Value::String),
        "[0-9a-fA-F]{0,130}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    let fields: Vec<String> = valid().as_object().unwrap().keys().cloned().collect();
    prop_oneof![proptest::sample::select(fields), ".{1,10}"]
}

#[test]
fn the_valid_config_parses_and_round_trips() {
    let value = valid();
    let cfg = Config::parse(&value.to_string()).unwrap();
    assert_eq!(cfg.to_json(), value);
}

proptest! {
    #![proptest_config(runner())]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        let _ = Config::parse(&text);
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        let _ = Config::parse(&value.to_string());
    }

    #[test]
    fn one_changed_field_parses_or_is_named(field in field_name(), value in json_value()) {
        let mut cfg = valid();
        cfg.as_object_mut().unwrap().insert(field.clone(), value.clone());
        match Config::parse(&cfg.to_string()) {
            Ok(parsed) => {
                // Whatever was accepted survives a round trip unchanged.
                let again = Config::parse(&parsed.to_json().to_string()).unwrap();
                prop_assert_eq!(again.to_json(), parsed.to_json());
            }
            Err(ConfigError::Field { field: named, problem }) => {
                prop_assert!(!problem.is_empty());
                // The error names the changed field, or one whose check depends on it
                // (`pubkey` belongs to `seckey`, the UNL must hold `pubkey`, `pubport` differs
                // from `peerport`, the threshold depends on the UNL's size).
                let related = [
                    ("seckey", "pubkey"),
                    ("pubkey", "unl"),
                    ("seckey", "unl"),
                    ("peerport", "pubport"),
                    ("unl", "threshold"),
                ];
                let base = |f: &str| f.split('[').next().unwrap_or(f).to_string();
                let ok = named == field
                    || base(&named) == field
                    || related.iter().any(|(a, b)| (field == *a && base(&named) == *b) || (field == *b && base(&named) == *a));
                prop_assert!(ok, "changing `{}` to {} failed on `{}`: {}", field, value, named, problem);
            }
            Err(other) => prop_assert!(false, "changing one field gave a non-field error: {other}"),
        }
    }

    #[test]
    fn a_missing_required_field_is_named(field in proptest::sample::select(vec!["seckey", "pubkey", "binary", "unl"])) {
        let mut cfg = valid();
        cfg.as_object_mut().unwrap().remove(field);
        match Config::parse(&cfg.to_string()) {
            Err(ConfigError::Field { field: named, .. }) => prop_assert_eq!(named, field),
            other => prop_assert!(false, "{:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn numbers_may_be_strings(field in proptest::sample::select(vec!["roundtime", "pubmaxsize", "pubmaxcpm", "peerport"]), n in 1u64..60_000) {
        let mut as_number = valid();
        as_number[field] = json!(n);
        let mut as_string = valid();
        as_string[field] = json!(n.to_string());
        let a = Config::parse(&as_number.to_string()).map(|c| c.to_json());
        let b = Config::parse(&as_string.to_string()).map(|c| c.to_json());
        prop_assert_eq!(a.is_ok(), b.is_ok());
        if let (Ok(a), Ok(b)) = (a, b) {
            prop_assert_eq!(a, b);
        }
    }
}
