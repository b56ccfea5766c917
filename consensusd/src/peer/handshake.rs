//! Mutual authentication of a peer connection, before anything else is accepted (DESIGN.md §5).
//!
//! Each side sends `Hello { version, pubkey, challenge }` with 32 fresh random bytes, then a
//! `HelloProof` signing `tag | the other side's challenge | own key | other key`. A connection
//! whose key is not in the UNL, is this node's own key, or whose proof does not verify is
//! dropped. Signing the other side's fresh challenge makes a recorded handshake useless.

use super::codec::{FrameError, read_frame, write_frame};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hp_proto::v1::peer::{Hello, HelloProof};
use prost::Message;
use rand::RngCore;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// The peer protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// How long the other side has to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Handshake frames are tiny; anything larger is an attack or a confused client.
const MAX_HANDSHAKE_FRAME: usize = 1024;
const AUTH_TAG: &[u8] = b"hotpocket/peer-auth/v1";

/// Why a peer was not let in.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("handshake timed out")]
    Timeout,
    #[error("handshake frame: {0}")]
    Frame(#[from] FrameError),
    #[error("handshake message is malformed: {0}")]
    Malformed(String),
    #[error("peer speaks protocol version {0}, this node {PROTOCOL_VERSION}")]
    Version(u32),
    #[error("peer key {0} is not in the UNL")]
    NotInUnl(String),
    #[error("peer claims this node's own key")]
    OwnKey,
    #[error("peer {0} failed to prove its key")]
    BadProof(String),
}

fn proof_bytes(challenge: &[u8], signer: &[u8; 32], verifier: &[u8; 32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(AUTH_TAG.len() + 96);
    bytes.extend_from_slice(AUTH_TAG);
    bytes.extend_from_slice(challenge);
    bytes.extend_from_slice(signer);
    bytes.extend_from_slice(verifier);
    bytes
}

/// Runs the handshake on `io`; returns the peer's UNL index.
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    key: &SigningKey,
    unl: &[[u8; 32]],
) -> Result<usize, HandshakeError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, run(io, key, unl)).await.map_err(|_| HandshakeError::Timeout)?
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    key: &SigningKey,
    unl: &[[u8; 32]],
) -> Result<usize, HandshakeError> {
    let me = key.verifying_key().to_bytes();
    let mut challenge = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut challenge);
    let hello = Hello { version: PROTOCOL_VERSION, pubkey: me.to_vec().into(), challenge: challenge.to_vec().into() };
    write_frame(io, &hello.encode_to_vec()).await?;

    let theirs = read_frame(io, MAX_HANDSHAKE_FRAME).await?;
    let theirs = Hello::decode(theirs.as_ref()).map_err(|e| HandshakeError::Malformed(e.to_string()))?;
    if theirs.version != PROTOCOL_VERSION {
        return Err(HandshakeError::Version(theirs.version));
    }
    let their_key: [u8; 32] =
        theirs.pubkey.as_ref().try_into().map_err(|_| HandshakeError::Malformed("pubkey is not 32 bytes".into()))?;
    if theirs.challenge.len() != 32 {
        return Err(HandshakeError::Malformed("challenge is not 32 bytes".into()));
    }
    if their_key == me {
        return Err(HandshakeError::OwnKey);
    }
    let index =
        unl.iter().position(|k| *k == their_key).ok_or_else(|| HandshakeError::NotInUnl(hex::encode(their_key)))?;

    let proof = key.sign(&proof_bytes(&theirs.challenge, &me, &their_key));
    write_frame(io, &HelloProof { signature: proof.to_bytes().to_vec().into() }.encode_to_vec()).await?;

    let their_proof = read_frame(io, MAX_HANDSHAKE_FRAME).await?;
    let their_proof = HelloProof::decode(their_proof.as_ref()).map_err(|e| HandshakeError::Malformed(e.to_string()))?;
    let bad = || HandshakeError::BadProof(hex::encode(their_key));
    let signature = Signature::from_slice(&their_proof.signature).map_err(|_| bad())?;
    let verifying = VerifyingKey::from_bytes(&their_key).map_err(|_| bad())?;
    verifying.verify(&proof_bytes(&challenge, &their_key, &me), &signature).map_err(|_| bad())?;
    Ok(index)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key() -> SigningKey {
        SigningKey::generate(&mut rand::rngs::OsRng)
    }

    #[tokio::test]
    async fn two_unl_members_authenticate_each_other() {
        let (a, b) = (key(), key());
        let unl = vec![a.verifying_key().to_bytes(), b.verifying_key().to_bytes()];
        let (mut x, mut y) = tokio::io::duplex(4096);
        let (ra, rb) = tokio::join!(authenticate(&mut x, &a, &unl), authenticate(&mut y, &b, &unl));
        assert_eq!(ra.unwrap(), 1);
        assert_eq!(rb.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_key_outside_the_unl_is_refused() {
        let (a, outsider) = (key(), key());
        let unl = vec![a.verifying_key().to_bytes()];
        let (mut x, mut y) = tokio::io::duplex(4096);
        let (ra, _) = tokio::join!(authenticate(&mut x, &a, &unl), authenticate(&mut y, &outsider, &unl));
        assert!(matches!(ra, Err(HandshakeError::NotInUnl(_))));
    }

    #[tokio::test]
    async fn claiming_a_unl_key_without_its_secret_fails() {
        let (a, b, impostor) = (key(), key(), key());
        let unl = vec![a.verifying_key().to_bytes(), b.verifying_key().to_bytes()];
        let (mut x, mut y) = tokio::io::duplex(4096);
        // The impostor announces b's public key but signs with its own secret.
        let fake = async {
            let me = b.verifying_key().to_bytes();
            let hello =
                Hello { version: PROTOCOL_VERSION, pubkey: me.to_vec().into(), challenge: vec![1u8; 32].into() };
            write_frame(&mut y, &hello.encode_to_vec()).await.unwrap();
            let theirs = Hello::decode(read_frame(&mut y, 1024).await.unwrap().as_ref()).unwrap();
            let sig = impostor.sign(&proof_bytes(&theirs.challenge, &me, &a.verifying_key().to_bytes()));
            write_frame(&mut y, &HelloProof { signature: sig.to_bytes().to_vec().into() }.encode_to_vec())
                .await
                .unwrap();
            let _ = read_frame(&mut y, 1024).await;
        };
        let (ra, _) = tokio::join!(authenticate(&mut x, &a, &unl), fake);
        assert!(matches!(ra, Err(HandshakeError::BadProof(_))), "{ra:?}");
    }

    #[tokio::test]
    async fn garbage_is_refused_without_allocating_its_claimed_length() {
        let a = key();
        let unl = vec![a.verifying_key().to_bytes()];
        let (mut x, mut y) = tokio::io::duplex(4096);
        let junk = async {
            use tokio::io::AsyncWriteExt;
            y.write_all(&[0xff; 64]).await.unwrap();
        };
        let (ra, _) = tokio::join!(authenticate(&mut x, &a, &unl), junk);
        assert!(ra.is_err());
    }
}
