//! `patch.cfg`: the agreed config in the state. The contract writes `../patch.cfg`; execd takes
//! a valid patch, refuses an invalid one the same way every time (the file goes back to the
//! config in force, so the state hash is as if nothing was written), and keeps what it took
//! across restarts.

use crate::support::*;
use hp_cfg::ContractPatch;
use hp_cfg::patch::PATCH_FILE_IN_STATE;

/// A script contract that writes `text` to `../patch.cfg`, as HotPocket's library does.
fn writing_patch(node: &mut Node, text: &str) {
    node.script(&format!("cat > ../patch.cfg <<'PATCH'\n{text}\nPATCH"));
}

#[test]
fn a_new_directory_shows_the_contract_hp_cfgs_config_at_dot_dot_patch_cfg() {
    init();
    let node = Node::new("echo");
    let engine = node.engine();
    let through_link = std::fs::read(node.root.join("patch.cfg")).unwrap();
    let expected = ContractPatch::from_config(&node.cfg);
    assert_eq!(ContractPatch::parse(&through_link).unwrap(), expected);
    assert_eq!(through_link, expected.to_bytes());
    assert_eq!(engine.patch(), &expected);
}

#[test]
fn a_valid_patch_is_taken_made_canonical_and_kept_across_a_restart() {
    init();
    let mut node = Node::new("echo");
    let newcomer = format!("ed{}", hex::encode(hp_cfg::NodeKey::generate().public_bytes()));
    let text = patched(&node, |j| {
        j["consensus"]["roundtime"] = 2500.into();
        j["unl"].as_array_mut().unwrap().push(newcomer.clone().into());
    });
    writing_patch(&mut node, &text);
    let mut engine = node.engine();
    let before = engine.state_info().unwrap().state_hash;
    let result = execute(&mut engine, one(1, "x"));
    assert_ne!(result.state_hash, before, "the patch is part of the state");
    let taken = engine.patch().clone();
    assert_eq!(taken.consensus.roundtime, 2500);
    assert_eq!(taken.unl.last(), Some(&newcomer));
    assert_eq!(std::fs::read(node.state().join(PATCH_FILE_IN_STATE)).unwrap(), taken.to_bytes());
    drop(engine);
    let reopened = node.engine();
    assert_eq!(reopened.patch(), &taken);
    assert_eq!(reopened.state_info().unwrap().state_hash, result.state_hash);
}

#[test]
fn an_invalid_patch_is_refused_and_leaves_the_state_as_if_nothing_was_written() {
    init();
    // The same round with a contract that writes nothing: the state every node must reach.
    let mut quiet = Node::new("echo");
    quiet.script("true");
    let untouched = execute(&mut quiet.engine(), one(1, "x")).state_hash;
    let cases = [
        ("not json", "{ this is not json".to_string()),
        ("empty unl", patched(&quiet, |j| j["unl"] = serde_json::json!([]))),
        ("threshold", patched(&quiet, |j| j["consensus"]["threshold"] = 0.into())),
        ("unknown field", patched(&quiet, |j| j["roundtime"] = 5.into())),
    ];
    for (what, text) in cases {
        let mut node = Node::new("echo");
        // The same genesis config as `quiet` (UNL, binary), only the script differs.
        node.cfg = quiet.cfg.clone();
        writing_patch(&mut node, &text);
        let mut engine = node.engine();
        let result = execute(&mut engine, one(1, "x"));
        assert_eq!(engine.patch(), &ContractPatch::from_config(&quiet.cfg), "{what}");
        assert_eq!(result.state_hash, untouched, "{what}: the refused patch is undone");
    }
}

#[test]
fn a_removed_patch_file_or_link_comes_back() {
    init();
    let mut node = Node::new("echo");
    node.script("rm -f ../patch.cfg .patch.cfg");
    let mut engine = node.engine();
    let genesis = engine.state_info().unwrap().state_hash;
    let result = execute(&mut engine, one(1, "x"));
    assert_eq!(result.state_hash, genesis);
    assert!(std::fs::symlink_metadata(node.root.join("patch.cfg")).unwrap().is_symlink());
    let result = execute(&mut engine, one(2, "x"));
    assert_eq!(result.state_hash, genesis, "the file is written again after each round");
    assert!(std::fs::symlink_metadata(node.root.join("patch.cfg")).unwrap().is_symlink());
}

#[test]
fn a_sandboxed_contract_can_write_its_patch_through_the_link() {
    init();
    let mut node = Node::new("echo");
    let text = patched(&node, |j| j["version"] = "2.0".into());
    writing_patch(&mut node, &text);
    let mut engine = node.sandboxed_engine();
    execute(&mut engine, one(1, "x"));
    assert_eq!(engine.patch().version, "2.0");
}

#[test]
fn the_next_run_uses_the_binary_arguments_and_environment_the_agreed_patch_names() {
    init();
    let mut node = Node::new("echo");
    // The second version of the contract, beside the first in bin/.
    let second = node.root.join("bin/second.sh");
    std::fs::write(&second, "#!/bin/sh\necho \"second $* $GREETING\" > /proc/self/fd/4\n").unwrap();
    std::fs::set_permissions(&second, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let text = patched(&node, |j| {
        j["bin_path"] = "bin/second.sh".into();
        j["bin_args"] = "--mode two".into();
        j["environment"] = serde_json::json!({"GREETING": "hello"});
    });
    node.script(&format!("echo \"first $GREETING\" > /proc/self/fd/4\ncat > ../patch.cfg <<'PATCH'\n{text}\nPATCH"));
    let mut engine = node.engine();
    let first = execute(&mut engine, one(1, "x"));
    assert_eq!(output_of(&first, key(1)), b"first \n", "the round that writes the patch runs under the old one");
    let next = execute(&mut engine, one(2, "x"));
    assert_eq!(output_of(&next, key(1)), b"second --mode two hello\n");
    // A restarted execd runs what the state's patch names, whatever hp.cfg says.
    drop(engine);
    let mut reopened = node.engine();
    let after = execute(&mut reopened, one(3, "x"));
    assert_eq!(output_of(&after, key(1)), b"second --mode two hello\n");
}

#[test]
fn a_patch_naming_a_binary_that_cannot_start_is_refused() {
    init();
    let mut node = Node::new("echo");
    let text = patched(&node, |j| j["bin_path"] = "bin/no-such-contract".into());
    writing_patch(&mut node, &text);
    let mut engine = node.engine();
    execute(&mut engine, one(1, "x"));
    assert_eq!(engine.patch().bin_path, node.cfg.binary, "a contract that could never run again");
    let next = execute(&mut engine, one(2, "x"));
    assert_eq!(next.exit, hp_ledger::ExitKind::Code(0), "the contract in force still runs");
}

#[test]
fn a_user_gets_at_most_the_agreed_user_output_bytes_of_a_round() {
    init();
    let mut node = Node::new("echo");
    let text = patched(&node, |j| {
        (j["bin_path"], j["bin_args"]) = ("bin/contract.sh".into(), "".into()); // as `script` sets
        j["round_limits"]["user_output_bytes"] = 5.into();
    });
    node.script(&format!("printf 0123456789 > /proc/self/fd/4\ncat > ../patch.cfg <<'PATCH'\n{text}\nPATCH"));
    let mut engine = node.engine();
    assert_eq!(output_of(&execute(&mut engine, one(1, "x")), key(1)), b"0123456789", "no limit yet");
    assert_eq!(output_of(&execute(&mut engine, one(2, "x")), key(1)), b"01234");
}
