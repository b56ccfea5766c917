//! The HotPocket 0.6 user handshake, with no I/O (docs/user-protocol.md, "HotPocket 0.6"):
//! the `user_challenge` a new connection receives, the check of the client's
//! `user_challenge_response`, and the node's signed `server_challenge_response`.
//!
//! The messages are JSON whatever protocol the client then picks, as hotpocket-js-client
//! expects; keys travel as hex with the `ed` prefix (one byte, 0xED, before the 32 key bytes).

use super::{HP_VERSION, Protocol};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{Value, json};

/// The largest `user_challenge_response` parsed; a real one is about 350 bytes.
pub const MAX_RESPONSE_BYTES: usize = 4096;
/// The longest server challenge a client may send (hex characters).
const MAX_SERVER_CHALLENGE: usize = 64;

/// A key as HotPocket shows it: `ed` and 64 hex characters.
pub fn ed_hex(key: &[u8; 32]) -> String {
    format!("ed{}", hex::encode(key))
}

/// The key in an `ed`-prefixed hex string.
pub fn parse_ed_hex(text: &str) -> Option<[u8; 32]> {
    let hex_part = text.strip_prefix("ed")?;
    if hex_part.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut key).ok()?;
    Some(key)
}

/// The node's first message: what it runs, and the challenge the client signs (its hex text).
pub fn user_challenge(contract_id: &str, contract_version: &str, challenge: &str) -> String {
    json!({
        "type": "user_challenge",
        "hp_version": HP_VERSION,
        "contract_id": contract_id,
        "contract_version": contract_version,
        "challenge": challenge,
    })
    .to_string()
}

/// A client that proved its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub user: [u8; 32],
    pub protocol: Protocol,
    /// What the node must sign back, if the client asked.
    pub server_challenge: Option<String>,
}

/// Why a `user_challenge_response` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("the challenge response is over {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("the challenge response is not a JSON object")]
    NotJson,
    #[error("expected a user_challenge_response")]
    WrongType,
    #[error("`pubkey` is not an ed-prefixed Ed25519 public key")]
    BadKey,
    #[error("`sig` is not 64 bytes of hex")]
    BadSignatureFormat,
    #[error("`sig` is not the key's signature of the challenge")]
    BadSignature,
    #[error("`protocol` is not json or bson")]
    BadProtocol,
    #[error("`server_challenge` is not a short hex string")]
    BadServerChallenge,
}

/// Checks the client's answer to `challenge` (the hex text it was sent).
pub fn verify_response(frame: &[u8], challenge: &str) -> Result<SignedIn, HandshakeError> {
    if frame.len() > MAX_RESPONSE_BYTES {
        return Err(HandshakeError::TooLarge);
    }
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(frame) else { return Err(HandshakeError::NotJson) };
    if m.get("type").and_then(Value::as_str) != Some("user_challenge_response") {
        return Err(HandshakeError::WrongType);
    }
    let user = m.get("pubkey").and_then(Value::as_str).and_then(parse_ed_hex).ok_or(HandshakeError::BadKey)?;
    let key = VerifyingKey::from_bytes(&user).map_err(|_| HandshakeError::BadKey)?;
    let mut sig = [0u8; 64];
    let sig_hex = m.get("sig").and_then(Value::as_str).ok_or(HandshakeError::BadSignatureFormat)?;
    hex::decode_to_slice(sig_hex, &mut sig).map_err(|_| HandshakeError::BadSignatureFormat)?;
    key.verify(challenge.as_bytes(), &Signature::from_bytes(&sig)).map_err(|_| HandshakeError::BadSignature)?;
    let protocol = match m.get("protocol").and_then(Value::as_str) {
        Some("json") => Protocol::Json,
        Some("bson") => Protocol::Bson,
        _ => return Err(HandshakeError::BadProtocol),
    };
    let server_challenge = match m.get("server_challenge") {
        None | Some(Value::Null) => None,
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= MAX_SERVER_CHALLENGE && s.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Some(s.clone())
        }
        Some(_) => return Err(HandshakeError::BadServerChallenge),
    };
    Ok(SignedIn { user, protocol, server_challenge })
}

/// The node's proof of its key: its signature of the client's challenge followed by the
/// contract id and version, with the UNL the client may then trust.
pub fn server_challenge_response(
    key: &SigningKey,
    server_challenge: &str,
    contract_id: &str,
    contract_version: &str,
    unl: &[[u8; 32]],
) -> String {
    let signed = format!("{server_challenge}{contract_id}{contract_version}");
    let sig = key.sign(signed.as_bytes());
    json!({
        "type": "server_challenge_response",
        "sig": hex::encode(sig.to_bytes()),
        "pubkey": ed_hex(&key.verifying_key().to_bytes()),
        "unl": unl.iter().map(ed_hex).collect::<Vec<_>>(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn response(key: &SigningKey, challenge: &str, protocol: &str) -> Vec<u8> {
        json!({
            "type": "user_challenge_response",
            "sig": hex::encode(key.sign(challenge.as_bytes()).to_bytes()),
            "pubkey": ed_hex(&key.verifying_key().to_bytes()),
            "server_challenge": "00112233445566778899aabbccddeeff",
            "protocol": protocol,
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_response_signed_by_its_key_signs_the_user_in_with_the_protocol_it_chose() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let signed_in = verify_response(&response(&key, "abcd", "bson"), "abcd").unwrap();
        assert_eq!(signed_in.user, key.verifying_key().to_bytes());
        assert_eq!(signed_in.protocol, Protocol::Bson);
        assert_eq!(signed_in.server_challenge.as_deref(), Some("00112233445566778899aabbccddeeff"));
    }

    #[test]
    fn a_response_to_another_challenge_or_with_a_bad_field_is_refused() {
        let key = SigningKey::from_bytes(&[7; 32]);
        assert_eq!(verify_response(&response(&key, "abcd", "json"), "abce"), Err(HandshakeError::BadSignature));
        assert_eq!(verify_response(&response(&key, "abcd", "xml"), "abcd"), Err(HandshakeError::BadProtocol));
        assert_eq!(verify_response(b"[1]", "abcd"), Err(HandshakeError::NotJson));
        assert_eq!(verify_response(&vec![b' '; 5000], "abcd"), Err(HandshakeError::TooLarge));
        let mut bad_key: Value = serde_json::from_slice(&response(&key, "abcd", "json")).unwrap();
        bad_key["pubkey"] = json!(hex::encode(key.verifying_key().to_bytes()));
        assert_eq!(verify_response(bad_key.to_string().as_bytes(), "abcd"), Err(HandshakeError::BadKey));
    }

    #[test]
    fn the_server_response_is_the_nodes_signature_of_challenge_contract_id_and_version() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let unl = [key.verifying_key().to_bytes(), [1; 32]];
        let text = server_challenge_response(&key, "c0ffee", "my-contract", "2.1", &unl);
        let m: Value = serde_json::from_str(&text).unwrap();
        let mut sig = [0u8; 64];
        hex::decode_to_slice(m["sig"].as_str().unwrap(), &mut sig).unwrap();
        key.verifying_key().verify(b"c0ffeemy-contract2.1", &Signature::from_bytes(&sig)).unwrap();
        assert_eq!(m["pubkey"], json!(ed_hex(&unl[0])));
        assert_eq!(m["unl"][1], json!(format!("ed{}", "01".repeat(32))));
    }
}
