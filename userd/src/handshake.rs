//! The user handshake of docs/user-protocol.md, steps 1–3, with no I/O: the challenge a new connection
//! receives, and the parsing and verification of the `helo` frame that answers it.
//!
//! Every refusal is a [`HeloError`] whose text is sent to the user as the `reason` of the error
//! frame, so each says what was wrong and what a correct helo looks like.

use ed25519_dalek::{Signature, VerifyingKey};
use hp_cfg::PublicKeyHex;
use hp_cfg::keys::{KeyError, decode_hex_exact};
use rand::RngCore;
use serde_json::Value;

/// The number of random bytes in a challenge (docs/user-protocol.md: 16, sent as 32 hex characters).
pub const CHALLENGE_BYTES: usize = 16;

/// The largest helo we parse. A real one is about 300 bytes; anything larger is refused before
/// JSON parsing so that an unauthenticated peer cannot make us build a large document.
pub const MAX_HELO_BYTES: usize = 4096;

/// The challenge issued on one connection: 16 fresh random bytes and their lowercase hex text,
/// which is what the user signs.
#[derive(Clone, PartialEq, Eq)]
pub struct Challenge {
    bytes: [u8; CHALLENGE_BYTES],
    text: String,
}

impl Challenge {
    /// A fresh challenge from the operating system's generator; never reused.
    pub fn generate() -> Self {
        let mut bytes = [0u8; CHALLENGE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// A fixed challenge (test vectors).
    pub fn from_bytes(bytes: [u8; CHALLENGE_BYTES]) -> Self {
        Self { bytes, text: hex::encode(bytes) }
    }

    /// The 32 lowercase hex characters sent to the user.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn bytes(&self) -> &[u8; CHALLENGE_BYTES] {
        &self.bytes
    }
}

impl std::fmt::Debug for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Challenge({})", self.text)
    }
}

/// Why a helo was refused. The `Display` text goes to the user verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeloError {
    #[error("helo is {0} bytes; a helo is a small JSON object (at most {MAX_HELO_BYTES} bytes)")]
    TooLarge(usize),
    #[error("helo is not valid UTF-8 JSON: {0}")]
    NotJson(String),
    #[error("helo must be a JSON object with type, challenge, pubkey, sig and timestamp")]
    NotAnObject,
    #[error("helo field `{0}` is missing")]
    Missing(&'static str),
    #[error("helo field `{0}` must be a string")]
    NotAString(&'static str),
    #[error("helo field `type` must be \"helo\", found {0:?}")]
    WrongType(String),
    #[error("helo field `timestamp` must be a whole number of unix seconds")]
    BadTimestamp,
    #[error("helo field `{field}` must be {expected} hex characters, found {found}")]
    Length { field: &'static str, expected: usize, found: usize },
    #[error("helo field `{0}` must contain only hex digits (0-9, a-f, A-F)")]
    NotHex(&'static str),
    #[error("helo field `challenge` is not the challenge this connection was given")]
    WrongChallenge,
    #[error("helo field `pubkey` is not a valid Ed25519 public key")]
    BadPublicKey,
    #[error("helo field `sig` is not a valid Ed25519 signature by `pubkey` of the challenge text")]
    BadSignature,
}

/// The text frame that opens every connection (docs/user-protocol.md, step 1), byte for byte.
pub fn challenge_frame(challenge: &Challenge) -> String {
    format!(r#"{{"hotpocket":0.1,"type":"public_challenge","challenge":"{}"}}"#, challenge.as_str())
}

/// Parses and verifies one helo frame against the challenge issued on this connection
/// (docs/user-protocol.md, steps 2–3). On success returns the user's public key.
///
/// The checks, in order: size, JSON object, `type`, then each hex field for exact length and
/// strict hex, the challenge against the issued one, the public key as a curve point, and last
/// `verify_strict` of `sig` over the UTF-8 bytes of the challenge text.
pub fn verify_helo(frame: &[u8], issued: &Challenge) -> Result<PublicKeyHex, HeloError> {
    if frame.len() > MAX_HELO_BYTES {
        return Err(HeloError::TooLarge(frame.len()));
    }
    let value: Value = serde_json::from_slice(frame).map_err(|e| HeloError::NotJson(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(HeloError::NotAnObject);
    };
    let field = |name: &'static str| -> Result<&str, HeloError> {
        match map.get(name) {
            None => Err(HeloError::Missing(name)),
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(HeloError::NotAString(name)),
        }
    };
    let kind = field("type")?;
    if kind != "helo" {
        return Err(HeloError::WrongType(kind.chars().take(32).collect()));
    }
    // The timestamp is informational (nothing is signed but the challenge), so an old client
    // that omits it is let through; one that sends it must send a number.
    match map.get("timestamp") {
        None => {}
        Some(Value::Number(n)) if n.is_u64() => {}
        Some(_) => return Err(HeloError::BadTimestamp),
    }
    let challenge_text = field("challenge")?;
    let challenge = hex_field::<CHALLENGE_BYTES>("challenge", challenge_text)?;
    let pubkey = hex_field::<32>("pubkey", field("pubkey")?)?;
    let sig = hex_field::<64>("sig", field("sig")?)?;
    if &challenge != issued.bytes() {
        return Err(HeloError::WrongChallenge);
    }
    let key = VerifyingKey::from_bytes(&pubkey).map_err(|_| HeloError::BadPublicKey)?;
    // The signed text is the challenge string as the user echoed it: it decodes to the issued
    // bytes (checked above), and for every client that echoes the lowercase text it is exactly
    // the issued string.
    key.verify_strict(challenge_text.as_bytes(), &Signature::from_bytes(&sig)).map_err(|_| HeloError::BadSignature)?;
    Ok(PublicKeyHex(pubkey))
}

fn hex_field<const N: usize>(field: &'static str, text: &str) -> Result<[u8; N], HeloError> {
    decode_hex_exact::<N>(text).map_err(|e| match e {
        KeyError::Length { expected, found } => HeloError::Length { field, expected, found },
        _ => HeloError::NotHex(field),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    const SEED: &str = "60802d1a13023dd6915c27d82241e6c164fb4010256e385eb3dd53505e3beb14";
    const PUBKEY: &str = "c8db66050d02b979cf6095f6707320d20fc3b1ec063dba8df881f6f7caa3793d";
    const CHALLENGE: &str = "ef97b2286de21927d48cc54fcab401c3";
    const SIG: &str = "68436fa749591448bd1d6d15ac76f591e86957b1e4f93925ddf1b0728846b7419470f27b8ae4ff34af6fe2b4e8895c4e63de15f0f290b7cdbea0ccb49985bf02";

    fn issued() -> Challenge {
        Challenge::from_bytes(decode_hex_exact::<16>(CHALLENGE).unwrap())
    }

    fn helo(challenge: &str, pubkey: &str, sig: &str) -> Vec<u8> {
        format!(
            r#"{{"type":"helo","challenge":"{challenge}","pubkey":"{pubkey}","sig":"{sig}","timestamp":1700000000}}"#
        )
        .into_bytes()
    }

    /// docs/user-protocol.md, first test vector: the seed signs the challenge text to the given sig.
    #[test]
    fn first_vector_signature_is_reproduced_and_accepted() {
        let seed = decode_hex_exact::<32>(SEED).unwrap();
        let key = SigningKey::from_bytes(&seed);
        assert_eq!(hex::encode(key.verifying_key().to_bytes()), PUBKEY);
        assert_eq!(hex::encode(key.sign(CHALLENGE.as_bytes()).to_bytes()), SIG);
        assert_eq!(verify_helo(&helo(CHALLENGE, PUBKEY, SIG), &issued()).unwrap().to_string(), PUBKEY);
    }

    /// docs/user-protocol.md, second test vector: a real helo verifies.
    #[test]
    fn second_vector_real_helo_verifies() {
        let pubkey = "f9dc8c751cabf82d64325a50ff3ec6b68058af565326efa8bb1eb5f4a34a43a8";
        let sig = "b987cc7662b1a3af54341b06069ba6603af4f76d9186860d243787c55530c8d5fa5a3c000fbeaabb662ed0b17c135a92632daf89421017a4a74e1cb00e0ca109";
        assert_eq!(verify_helo(&helo(CHALLENGE, pubkey, sig), &issued()).unwrap().to_string(), pubkey);
    }

    #[test]
    fn challenge_frame_is_byte_exact() {
        assert_eq!(
            challenge_frame(&issued()),
            r#"{"hotpocket":0.1,"type":"public_challenge","challenge":"ef97b2286de21927d48cc54fcab401c3"}"#
        );
        let fresh = Challenge::generate();
        assert_eq!(fresh.as_str().len(), 32);
        assert!(fresh.as_str().bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(fresh, Challenge::generate());
    }

    #[test]
    fn uppercase_hex_is_accepted_for_key_and_sig() {
        let frame = helo(CHALLENGE, &PUBKEY.to_uppercase(), &SIG.to_uppercase());
        assert!(verify_helo(&frame, &issued()).is_ok());
    }

    #[test]
    fn each_strict_check_has_its_own_reason() {
        let other = Challenge::from_bytes([7; 16]);
        let issued = issued();
        let cases: Vec<(Vec<u8>, &Challenge, HeloError)> = vec![
            (b"not json".to_vec(), &issued, HeloError::NotJson(String::new())),
            (b"[1,2]".to_vec(), &issued, HeloError::NotAnObject),
            (br#"{"type":"hello"}"#.to_vec(), &issued, HeloError::WrongType("hello".into())),
            (br#"{"challenge":"x"}"#.to_vec(), &issued, HeloError::Missing("type")),
            (br#"{"type":5}"#.to_vec(), &issued, HeloError::NotAString("type")),
            (
                helo(&CHALLENGE[1..], PUBKEY, SIG),
                &issued,
                HeloError::Length { field: "challenge", expected: 32, found: 31 },
            ),
            (
                helo(CHALLENGE, &format!("{PUBKEY};ab"), SIG),
                &issued,
                HeloError::Length { field: "pubkey", expected: 64, found: 67 },
            ),
            (helo(CHALLENGE, &format!("zz{}", &PUBKEY[2..]), SIG), &issued, HeloError::NotHex("pubkey")),
            (
                helo(CHALLENGE, PUBKEY, &format!("{SIG} ")),
                &issued,
                HeloError::Length { field: "sig", expected: 128, found: 129 },
            ),
            (helo(CHALLENGE, PUBKEY, &SIG.replace('f', "g")), &issued, HeloError::NotHex("sig")),
            (helo(CHALLENGE, PUBKEY, SIG), &other, HeloError::WrongChallenge),
            (helo(CHALLENGE, PUBKEY, &SIG.replace("68436f", "68436e")), &issued, HeloError::BadSignature),
            (vec![b' '; MAX_HELO_BYTES + 1], &issued, HeloError::TooLarge(MAX_HELO_BYTES + 1)),
        ];
        for (frame, challenge, expected) in cases {
            let got = verify_helo(&frame, challenge).unwrap_err();
            match (&got, &expected) {
                (HeloError::NotJson(_), HeloError::NotJson(_)) => {}
                _ => assert_eq!(got, expected, "frame {:?}", String::from_utf8_lossy(&frame)),
            }
        }
    }

    #[test]
    fn small_order_public_keys_are_refused() {
        // The identity point: every signature "verifies" under a lenient check.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let frame = helo(CHALLENGE, &hex::encode(identity), &"00".repeat(64));
        assert!(matches!(verify_helo(&frame, &issued()), Err(HeloError::BadSignature | HeloError::BadPublicKey)));
    }

    #[test]
    fn timestamp_must_be_a_number_when_present() {
        let text = format!(
            r#"{{"type":"helo","challenge":"{CHALLENGE}","pubkey":"{PUBKEY}","sig":"{SIG}","timestamp":"now"}}"#
        );
        assert_eq!(verify_helo(text.as_bytes(), &issued()), Err(HeloError::BadTimestamp));
        let text = format!(r#"{{"type":"helo","challenge":"{CHALLENGE}","pubkey":"{PUBKEY}","sig":"{SIG}"}}"#);
        assert!(verify_helo(text.as_bytes(), &issued()).is_ok());
    }
}
