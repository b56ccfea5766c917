//! `docs/user-protocol.md` against the code: its example frames, test vectors, error reasons
//! and connection limits are what userd produces and accepts, so the document cannot drift.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hp_userd::admission::AdmissionLimits;
use hp_userd::frame;
use hp_userd::handshake::{self, Challenge};
use std::time::Duration;

const DOC: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/user-protocol.md"));

/// The bodies of the document's ```json blocks, in order.
fn json_blocks() -> Vec<&'static str> {
    DOC.split("```json\n").skip(1).map(|rest| rest.split("\n```").next().unwrap().trim()).collect()
}

/// The cells of the table rows that follow the header starting with `header`.
fn table(header: &str) -> Vec<Vec<String>> {
    let start = DOC.find(header).unwrap_or_else(|| panic!("no table `{header}` in the doc"));
    DOC[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect())
        .collect()
}

fn code(cell: &str) -> &str {
    cell.trim().trim_start_matches('`').trim_end_matches('`')
}

fn challenge_of(text: &str) -> Challenge {
    Challenge::from_bytes(hex::decode(text).unwrap().try_into().unwrap())
}

#[test]
fn the_example_frames_are_what_userd_sends_and_accepts() {
    let blocks = json_blocks();
    assert_eq!(blocks.len(), 3, "challenge, helo, error");
    let challenge: serde_json::Value = serde_json::from_str(blocks[0]).unwrap();
    let issued = challenge_of(challenge["challenge"].as_str().unwrap());
    assert_eq!(blocks[0], handshake::challenge_frame(&issued), "the challenge frame, byte for byte");
    let user = handshake::verify_helo(blocks[1].as_bytes(), &issued).expect("the example helo verifies");
    let helo: serde_json::Value = serde_json::from_str(blocks[1]).unwrap();
    assert_eq!(hex::encode(user.0), helo["pubkey"].as_str().unwrap());
    assert_eq!(blocks[2], frame::error_frame(&frame::handshake_timeout(Duration::from_secs(5))));
}

#[test]
fn the_test_vectors_sign_and_verify() {
    let rows = table("| secret seed |");
    assert_eq!(rows.len(), 2);
    for row in rows {
        let (seed, public, text, sig) = (code(&row[0]), code(&row[1]), code(&row[2]), code(&row[3]));
        let key = VerifyingKey::from_bytes(&hex::decode(public).unwrap().try_into().unwrap()).unwrap();
        let signature = ed25519_dalek::Signature::from_bytes(&hex::decode(sig).unwrap().try_into().unwrap());
        key.verify_strict(text.as_bytes(), &signature).expect("the vector verifies");
        if seed != "(not known)" {
            let secret = SigningKey::from_bytes(&hex::decode(seed).unwrap().try_into().unwrap());
            assert_eq!(secret.verifying_key(), key);
            assert_eq!(hex::encode(secret.sign(text.as_bytes()).to_bytes()), sig);
        }
        // And through the helo check, as a user would send it.
        let helo = format!(
            r#"{{"type":"helo","challenge":"{text}","pubkey":"{public}","sig":"{sig}","timestamp":1700000000}}"#
        );
        assert!(handshake::verify_helo(helo.as_bytes(), &challenge_of(text)).is_ok());
    }
}

#[test]
fn every_error_reason_in_the_table_is_one_userd_sends() {
    let sent = [
        frame::over_pubmaxsize(10, 5),
        frame::over_pubmaxcpm(60),
        frame::refused(
            "the node is busy: the inputs waiting for a ledger reached max_pending_input_bytes; try again later",
        ),
        frame::CONSENSUS_UNAVAILABLE.to_string(),
        frame::BUSY.to_string(),
        frame::SESSION_BROKE.to_string(),
    ];
    let rows = table("| when | reason");
    assert_eq!(rows.len(), sent.len());
    for row in rows {
        let documented = code(&row[1]).replace("<n>", "10").replace("<max>", "5").replace("<cpm>", "60");
        let found = match documented.split_once(" … ") {
            // "start … end": an abbreviated reason.
            Some((start, end)) => sent.iter().any(|s| s.starts_with(start) && s.ends_with(end)),
            None => sent.contains(&documented),
        };
        assert!(found, "the doc's reason `{documented}` is not one userd sends");
    }
    assert!(DOC.contains(frame::REPLACED));
}

#[test]
fn the_documented_pools_are_the_defaults() {
    let rows = table("| pool |");
    let number = |cell: &str| -> usize { cell.split('(').nth(1).unwrap().trim_end_matches(')').parse().unwrap() };
    let d = AdmissionLimits::default();
    assert_eq!((number(&rows[0][1]), number(&rows[0][2])), (d.max_unauth_connections, d.max_unauth_per_ip));
    assert_eq!((number(&rows[1][1]), number(&rows[1][2])), (d.max_connections, d.max_connections_per_ip));
    let cfg = hp_cfg::Config::new_single(hp_cfg::NodeKey::generate());
    assert_eq!(d.max_connections as u64, cfg.max_connections, "userd's defaults are the config's");
    assert_eq!(d.max_unauth_per_ip as u64, cfg.max_unauth_per_ip);
    assert_eq!(d.max_unauth_connections as u64, cfg.max_unauth_connections);
    assert_eq!(d.max_connections_per_ip as u64, cfg.max_connections_per_ip);
}
