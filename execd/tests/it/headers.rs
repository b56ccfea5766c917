//! The stdin header is byte-exact in both formats (docs/contract-interface.md), users in pubkey order.

use crate::support::*;
use hp_cfg::StdinFormat;

#[test]
fn text_header_is_byte_exact_and_lists_users_sorted() {
    let node = Node::new("header");
    let mut engine = node.engine();
    let result = execute(&mut engine, request(1, vec![(key(9), vec![]), (key(1), vec![]), (key(5), vec![])]));
    let expected =
        format!("HOTPOCKET 0.1\n{}=3:4\n{}=5:6\n{}=7:8\n", "01".repeat(32), "05".repeat(32), "09".repeat(32));
    // The contract copies its stdin to fd 4: the first user in pubkey order.
    assert_eq!(String::from_utf8(output_of(&result, key(1))).unwrap(), expected);
    assert_eq!(result.outputs.len(), 1);
}

#[test]
fn json_header_is_byte_exact() {
    let node = Node::with("header", |c| c.stdinfmt = StdinFormat::Json);
    let mut engine = node.engine();
    let result = execute(&mut engine, request(4, vec![(key(2), vec![]), (key(1), vec![])]));
    let me = node.cfg.key.public_hex();
    let expected = format!(
        "{{\"hotpocket\":0.1,\"type\":\"binexec\",\"mver\":1,\"lcl\":\"{lcl}\",\"time\":1700000000,\"pubkey\":\"{me}\",\"unl\":[\"{me}\"],\"user\":{{\"{a}\":[3,4],\"{b}\":[5,6]}}}}\n",
        lcl = "ab".repeat(32),
        a = "01".repeat(32),
        b = "02".repeat(32),
    );
    assert_eq!(String::from_utf8(output_of(&result, key(1))).unwrap(), expected);
}
