//! The peer handshake (TLS 1.3 bound to the UNL keys) against arbitrary bytes, and against real
//! TLS peers holding keys or network ids it must not accept, on an in-memory duplex stream: it
//! never panics, never lets anyone in who cannot sign for a UNL key of this network, and ends
//! as soon as the other side closes (a silent side is the handshake timeout's business).

use ed25519_dalek::SigningKey;
use hp_consensusd::peer::handshake::PeerTls;
use proptest::prelude::*;
use tokio::io::AsyncWriteExt;

const NETWORK: [u8; 32] = [3; 32];

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

/// Runs the node's listening side against `attacker`, which writes and then closes its end.
fn against<F, Fut>(attacker: F) -> bool
where
    F: FnOnce(tokio::io::DuplexStream) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    runtime().block_on(async {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let node = PeerTls::new(&node_key(), &unl(), NETWORK).unwrap();
        let run = async {
            let (result, ()) = tokio::join!(node.accept(ours), attacker(theirs));
            result.is_ok()
        };
        // The attacker closes its end: the handshake must notice well before its own timeout.
        tokio::time::timeout(std::time::Duration::from_secs(3), run).await.expect("the handshake hung")
    })
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
    fn tls_peers_without_a_unl_secret_of_this_network_never_authenticate(
        seed in any::<[u8; 32]>(),
        network in prop_oneof![Just(NETWORK), any::<[u8; 32]>()],
        trusts_itself in any::<bool>(),
    ) {
        // The attacker's own key is anything but the UNL members'; it may trust itself, and may
        // claim this network or another one.
        prop_assume!(!unl().contains(&SigningKey::from_bytes(&seed).verifying_key().to_bytes()));
        let attacker_key = SigningKey::from_bytes(&seed);
        let mut its_unl = unl();
        if trusts_itself {
            its_unl.push(attacker_key.verifying_key().to_bytes());
        }
        let attacker = PeerTls::new(&attacker_key, &its_unl, network).unwrap();
        let admitted = against(|io| async move {
            if let Ok((mut stream, _)) = attacker.connect(io).await {
                let _ = stream.shutdown().await;
            }
        });
        prop_assert!(!admitted);
    }

    #[test]
    fn the_other_member_of_another_network_never_authenticates(network in any::<[u8; 32]>()) {
        prop_assume!(network != NETWORK);
        let member = PeerTls::new(&SigningKey::from_bytes(&[8; 32]), &unl(), network).unwrap();
        let admitted = against(|io| async move {
            let _ = member.connect(io).await;
        });
        prop_assert!(!admitted);
    }
}

/// The control: the same harness lets the real other member of this network in.
#[test]
fn the_other_member_of_this_network_authenticates() {
    let member = PeerTls::new(&SigningKey::from_bytes(&[8; 32]), &unl(), NETWORK).unwrap();
    let admitted = against(|io| async move {
        if let Ok((mut stream, _)) = member.connect(io).await {
            let _ = stream.flush().await;
        }
    });
    assert!(admitted);
}
