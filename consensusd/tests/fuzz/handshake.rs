//! The peer handshake against arbitrary bytes and arbitrary well-framed `Hello`s on an
//! in-memory duplex stream: it never panics, never lets anyone in who cannot sign for a UNL
//! key, and ends as soon as the other side closes (a silent side is the handshake timeout's
//! business, tested in the module itself).

use ed25519_dalek::SigningKey;
use hp_consensusd::peer::codec::write_frame;
use hp_consensusd::peer::handshake::authenticate;
use hp_proto::v1::peer::{Hello, HelloProof};
use proptest::prelude::*;
use prost::Message;
use tokio::io::AsyncWriteExt;

fn node_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// A UNL of the node and one other member whose secret the "attacker" does not have.
fn unl() -> Vec<[u8; 32]> {
    vec![node_key().verifying_key().to_bytes(), SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes()]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Runs the node's side against `attacker`, which writes and then closes its end.
fn against<F, Fut>(attacker: F) -> bool
where
    F: FnOnce(tokio::io::DuplexStream) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    runtime().block_on(async {
        let (mut ours, theirs) = tokio::io::duplex(64 * 1024);
        let key = node_key();
        let unl = unl();
        let run = async {
            let (result, ()) = tokio::join!(authenticate(&mut ours, &key, &unl), attacker(theirs));
            result.is_ok()
        };
        // The attacker closes its end: the handshake must notice well before its own timeout.
        tokio::time::timeout(std::time::Duration::from_secs(3), run).await.expect("the handshake hung")
    })
}

fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(unl()[1].to_vec()),
        Just(unl()[0].to_vec()),
        proptest::collection::vec(any::<u8>(), 32),
        proptest::collection::vec(any::<u8>(), 0..80),
    ]
}

proptest! {
    #![proptest_config(crate::config())]

    #[test]
    fn arbitrary_bytes_never_authenticate(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let admitted = against(|mut io| async move {
            let _ = io.write_all(&bytes).await;
            let _ = io.shutdown().await;
        });
        prop_assert!(!admitted);
    }

    #[test]
    fn hellos_and_proofs_without_the_secret_never_authenticate(
        version in prop_oneof![Just(1u32), any::<u32>()],
        pubkey in key_bytes(),
        challenge in proptest::collection::vec(any::<u8>(), 0..64),
        proof in proptest::collection::vec(any::<u8>(), 0..100),
        trailing in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let admitted = against(|mut io| async move {
            let hello = Hello { version, pubkey: pubkey.into(), challenge: challenge.into() };
            let _ = write_frame(&mut io, &hello.encode_to_vec()).await;
            let _ = write_frame(&mut io, &HelloProof { signature: proof.into() }.encode_to_vec()).await;
            let _ = io.write_all(&trailing).await;
            let _ = io.shutdown().await;
        });
        prop_assert!(!admitted);
    }
}
