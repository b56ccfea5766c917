//! Inputs and outputs through the per-user pipes: order, sizes, many users, descriptors.

use crate::support::*;

#[test]
fn inputs_are_concatenated_in_order_without_separators_and_outputs_sorted() {
    let node = Node::new("echo");
    let mut engine = node.engine();
    let inputs = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    let result =
        execute(&mut engine, request(1, vec![(key(7), inputs(&["x"])), (key(3), inputs(&["ab", "", "cd\n", "ef"]))]));
    assert_eq!(result.outputs.len(), 2);
    assert_eq!(result.outputs[0].0, key(3), "outputs in pubkey order");
    assert_eq!(&result.outputs[0].1[..], b"abcd\nef");
    assert_eq!(&result.outputs[1].1[..], b"x");
    assert_eq!(result.exit, hp_ledger::ExitKind::Code(0));
}

#[test]
fn a_contract_reading_once_after_fionread_sees_all_its_small_input() {
    let node = Node::new("fionread");
    let mut engine = node.engine();
    let small: Vec<Vec<u8>> = (0..10).map(|i| vec![b'a' + i; 4000]).collect();
    let larger = vec![vec![b'z'; 300 * 1024]]; // fits once execd enlarges the pipe
    let result = execute(&mut engine, request(1, vec![(key(1), small.clone()), (key(2), larger.clone())]));
    let mut expected = b"40000:".to_vec();
    expected.extend(small.concat());
    assert_eq!(output_of(&result, key(1)), expected);
    let mut expected = format!("{}:", 300 * 1024).into_bytes();
    expected.extend(larger.concat());
    assert_eq!(output_of(&result, key(2)), expected);
}

#[test]
fn ten_mib_in_and_ten_mib_out_for_one_user() {
    let node = Node::new("echo");
    let mut engine = node.engine();
    let chunks: Vec<Vec<u8>> =
        (0..10u32).map(|i| (0..1024 * 1024u32).map(|j| (i * 7 + j * 13) as u8).collect()).collect();
    let result = execute(&mut engine, request(1, vec![(key(1), chunks.clone())]));
    let out = output_of(&result, key(1));
    assert_eq!(out.len(), 10 * 1024 * 1024);
    assert!(out == chunks.concat(), "10 MiB came back changed");
}

#[test]
fn a_thousand_users_in_one_round() {
    let node = Node::new("echo");
    let mut engine = node.engine();
    let user = |i: u16| {
        let mut k = [0u8; 32];
        k[..2].copy_from_slice(&i.to_be_bytes());
        k
    };
    let users = (0..1000u16).rev().map(|i| (user(i), vec![format!("input of {i}").into_bytes()])).collect();
    let result = execute(&mut engine, request(1, users));
    assert_eq!(result.outputs.len(), 1000);
    for (i, (k, data)) in result.outputs.iter().enumerate() {
        assert_eq!(*k, user(i as u16));
        assert_eq!(&data[..], format!("input of {i}").as_bytes());
    }
}

#[test]
fn a_contract_that_ignores_its_input_finishes() {
    let node = Node::new("ignore");
    let mut engine = node.engine();
    let big = vec![vec![1u8; 4 * 1024 * 1024]];
    let result = execute(&mut engine, request(1, vec![(key(1), big), (key(2), vec![b"small".to_vec()])]));
    assert_eq!(result.exit, hp_ledger::ExitKind::Code(0));
    assert!(result.outputs.is_empty());
}

#[test]
fn a_contract_that_writes_nothing_gives_no_output_entry() {
    let node = Node::new("silent");
    let mut engine = node.engine();
    let result = execute(&mut engine, request(1, vec![(key(1), vec![b"hello".to_vec()])]));
    assert!(result.outputs.is_empty());
}

#[test]
fn only_stdio_and_the_listed_fds_are_open_in_the_contract() {
    let node = Node::new("fds");
    let mut engine = node.engine();
    let result = execute(&mut engine, request(1, vec![(key(1), vec![]), (key(2), vec![])]));
    assert_eq!(String::from_utf8(output_of(&result, key(1))).unwrap(), "0 1 2 3 4 5 6");
}

#[test]
fn the_contract_runs_in_state_with_an_allow_listed_environment_and_logs_stdio() {
    let node = Node::new("script");
    let mut engine = node.engine();
    let result = execute(&mut engine, one(1, "pwd"));
    let state = std::path::absolute(node.state()).unwrap();
    assert_eq!(String::from_utf8(output_of(&result, key(1))).unwrap(), state.display().to_string());
    let result = execute(&mut engine, one(2, "env"));
    assert_eq!(String::from_utf8(output_of(&result, key(1))).unwrap(), "PATH=/usr/local/bin:/usr/bin:/bin\nTZ=UTC\n");
    // stdout and stderr go to the log, never to a user.
    let result = execute(&mut engine, one(3, "log\nout only-this"));
    assert_eq!(output_of(&result, key(1)), b"only-this");
}
