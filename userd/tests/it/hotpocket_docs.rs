//! `docs/hotpocket-protocol.md` against the code: its example handshake messages are what the
//! node sends and accepts.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use hp_userd::hotpocket::handshake;
use serde_json::Value;

const DOC: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/hotpocket-protocol.md"));

fn json_blocks() -> Vec<Value> {
    DOC.split("```json\n")
        .skip(1)
        .map(|rest| rest.split("\n```").next().unwrap_or_default().trim())
        .map(|text| serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
        .collect()
}

fn keys(m: &Value) -> Vec<String> {
    let mut keys: Vec<String> = m.as_object().into_iter().flatten().map(|(k, _)| k.clone()).collect();
    keys.sort();
    keys
}

#[test]
fn the_documented_challenge_is_what_the_node_sends() {
    let blocks = json_blocks();
    assert_eq!(blocks.len(), 3, "user_challenge, the client's response, the node's response");
    let sent: Value =
        serde_json::from_str(&handshake::user_challenge("my-contract", "1.0", "00112233445566778899aabbccddeeff"))
            .unwrap_or_default();
    assert_eq!(blocks[0]["hp_version"], sent["hp_version"]);
    assert_eq!(blocks[0], sent);
}

#[test]
fn a_response_of_the_documented_shape_is_accepted_and_the_node_answers_in_its_shape() {
    let blocks = json_blocks();
    let client = SigningKey::from_bytes(&[3; 32]);
    let challenge = "00112233445566778899aabbccddeeff";
    let mut response = blocks[1].clone();
    response["pubkey"] = Value::String(handshake::ed_hex(&client.verifying_key().to_bytes()));
    response["sig"] = Value::String(hex::encode(client.sign(challenge.as_bytes()).to_bytes()));
    response["server_challenge"] = Value::String("ab".repeat(16));
    let signed_in = handshake::verify_response(response.to_string().as_bytes(), challenge).unwrap_or_else(|e| {
        panic!("the documented response shape is refused: {e}");
    });
    assert_eq!(signed_in.user, client.verifying_key().to_bytes());

    let node = SigningKey::from_bytes(&[4; 32]);
    let unl = [node.verifying_key().to_bytes()];
    let answer: Value = serde_json::from_str(&handshake::server_challenge_response(
        &node,
        &"ab".repeat(16),
        "my-contract",
        "1.0",
        &unl,
    ))
    .unwrap_or_default();
    assert_eq!(keys(&answer), keys(&blocks[2]));
    let mut sig = [0u8; 64];
    hex::decode_to_slice(answer["sig"].as_str().unwrap_or_default(), &mut sig).unwrap_or_default();
    let signed = format!("{}my-contract1.0", "ab".repeat(16));
    assert!(node.verifying_key().verify(signed.as_bytes(), &Signature::from_bytes(&sig)).is_ok());
}
