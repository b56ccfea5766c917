//! Ed25519 keys in the forms hp.cfg uses: a public key as 64 hex characters and a secret key as
//! 128 hex characters in libsodium's layout (32-byte seed followed by the 32-byte public key).

use ed25519_dalek::{SigningKey, VerifyingKey};
use std::fmt;

/// Why a key from the outside could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("must be {expected} hex characters, found {found}")]
    Length { expected: usize, found: usize },
    #[error("is not hexadecimal")]
    NotHex,
    #[error("is not a valid Ed25519 public key")]
    NotAPoint,
    #[error("is a small-order (weak) Ed25519 key: signatures under it can be made without its secret")]
    Weak,
    #[error("the public half of the secret key does not match its seed")]
    SeedMismatch,
}

/// Decodes exactly `N` bytes from strict hex (upper or lower case, nothing else).
pub fn decode_hex_exact<const N: usize>(text: &str) -> Result<[u8; N], KeyError> {
    if text.len() != N * 2 {
        return Err(KeyError::Length { expected: N * 2, found: text.len() });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| KeyError::NotHex)?;
    Ok(out)
}

/// Parses a 64-hex-character Ed25519 public key.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let bytes = decode_hex_exact::<32>(text)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::NotAPoint)?;
    // Signatures are checked under ZIP 215 (batchable), which a small-order key passes for
    // any message: such a key can never be a node's.
    if key.is_weak() {
        return Err(KeyError::Weak);
    }
    Ok(key)
}

/// A public key shown as lowercase hex, for logs and messages.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKeyHex(pub [u8; 32]);

impl fmt::Display for PublicKeyHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKeyHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The node's key pair. Its `Debug` never prints the secret.
#[derive(Clone)]
pub struct NodeKey {
    signing: SigningKey,
}

impl NodeKey {
    /// A fresh random key pair from the operating system's generator.
    pub fn generate() -> Self {
        Self { signing: SigningKey::generate(&mut rand::rngs::OsRng) }
    }

    /// From a 32-byte seed (tests and test vectors).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self { signing: SigningKey::from_bytes(&seed) }
    }

    /// Parses libsodium's 64-byte secret key hex (seed ‖ public key) and checks that both
    /// halves belong together.
    pub fn from_secret_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = decode_hex_exact::<64>(text)?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes[..32]);
        let key = Self::from_seed(seed);
        if key.public_bytes()[..] != bytes[32..] {
            return Err(KeyError::SeedMismatch);
        }
        Ok(key)
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub fn public_bytes(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    pub fn public_hex(&self) -> String {
        hex::encode(self.public_bytes())
    }

    /// libsodium's secret key form, for writing hp.cfg only.
    pub fn secret_hex(&self) -> String {
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(self.signing.as_bytes());
        bytes[32..].copy_from_slice(&self.public_bytes());
        hex::encode(bytes)
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({})", self.public_hex())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn secret_hex_round_trips_and_matches_libsodium_layout() {
        let key = NodeKey::generate();
        let text = key.secret_hex();
        assert_eq!(text.len(), 128);
        assert!(text.ends_with(&key.public_hex()));
        let again = NodeKey::from_secret_hex(&text).unwrap();
        assert_eq!(again.public_bytes(), key.public_bytes());
    }

    #[test]
    fn secret_key_with_a_foreign_public_half_is_refused() {
        let a = NodeKey::generate();
        let b = NodeKey::generate();
        let forged = format!("{}{}", &a.secret_hex()[..64], b.public_hex());
        assert_eq!(NodeKey::from_secret_hex(&forged).unwrap_err(), KeyError::SeedMismatch);
    }

    #[test]
    fn hex_must_be_exact() {
        assert!(matches!(decode_hex_exact::<2>("abc"), Err(KeyError::Length { .. })));
        assert_eq!(decode_hex_exact::<2>("zz00"), Err(KeyError::NotHex));
        assert_eq!(decode_hex_exact::<2>("ABcd"), Ok([0xab, 0xcd]));
        assert!(parse_public_key(&"0".repeat(63)).is_err());
        // The identity point: small order, a valid encoding.
        let identity = format!("01{}", "0".repeat(62));
        assert!(matches!(parse_public_key(&identity), Err(KeyError::Weak)));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = NodeKey::generate();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.secret_hex()[..64]));
    }
}
