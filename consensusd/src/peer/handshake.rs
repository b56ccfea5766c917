//! Mutual authentication and encryption of a peer connection, before anything else is accepted.
//!
//! Peers speak TLS 1.3 (rustls, ring) and each side presents its node's own Ed25519 key as a
//! raw public key (RFC 7250): no certificates, no certificate authority, the identity is exactly
//! the key in the UNL. TLS signs the whole handshake transcript with that key (CertificateVerify)
//! and derives the session keys from the same transcript, so:
//!
//! - a stranger who relays two nodes' handshakes gets two sessions it cannot read or write: it
//!   carries only ciphertext, and a byte it alters or injects breaks the record MAC;
//! - a key outside the UNL, this node's own key (a node that dialed itself) or a network with
//!   another id is refused during the handshake.
//!
//! The network id (SHA-256 of the contract id, [`hp_cfg::Config::network_id`]) is the ALPN
//! protocol both sides offer, `hotpocket-peer/2/<network id hex>`: nodes of different networks
//! never complete a handshake, even if an operator reused keys. Session resumption is off, so
//! every connection proves its key afresh.

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{AlwaysResolvesClientRawPublicKeys, Resumption};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls13_signature_with_raw_key};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{AlwaysResolvesServerRawPublicKeys, NoServerSessionStorage};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
/// The encrypted stream of an authenticated link.
pub use tokio_rustls::TlsStream;

/// The peer protocol version this build speaks; part of the ALPN protocol name.
pub const PROTOCOL_VERSION: u32 = 2;
/// How long the other side has to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// The name a dialer asks for. Peers are identified by key, not by name; the verifier ignores it.
const SERVER_NAME: &str = "peer.hotpocket";

/// Why a peer was not let in.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("handshake timed out")]
    Timeout,
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error(
        "peer is of another network or protocol version ({0}); every node of one network must have the \
         same contract_id in hp.cfg"
    )]
    OtherNetwork(String),
    #[error("peer presented no key")]
    NoKey,
    #[error("peer key is not in the UNL")]
    NotInUnl,
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// What both sides of every peer connection of this node need: the node's key as TLS
/// credentials, and the UNL to check the other side against. Cheap to clone.
#[derive(Clone)]
pub struct PeerTls {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    unl_spki: Arc<Vec<Vec<u8>>>,
    alpn: Arc<Vec<u8>>,
}

impl PeerTls {
    /// TLS credentials for `key`, accepting only the other keys of `unl`, in network `network_id`.
    pub fn new(key: &SigningKey, unl: &[[u8; 32]], network_id: [u8; 32]) -> Result<Self, HandshakeError> {
        let setup = |e: &dyn std::fmt::Display| HandshakeError::Setup(e.to_string());
        let provider = Arc::new(provider());
        let pkcs8 = key.to_pkcs8_der().map_err(|e| setup(&e))?;
        let signer = provider
            .key_provider
            .load_private_key(PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec()).into())
            .map_err(|e| setup(&e))?;
        let own_spki = spki(&key.verifying_key().to_bytes())?;
        let certified = Arc::new(CertifiedKey::new(vec![CertificateDer::from(own_spki.clone())], signer));
        let unl_spki = unl.iter().map(spki).collect::<Result<Vec<_>, _>>()?;
        let verifier = Arc::new(UnlVerifier {
            accepted: unl_spki.iter().filter(|k| **k != own_spki).cloned().collect(),
            algorithms: provider.signature_verification_algorithms,
        });
        let alpn = format!("hotpocket-peer/{PROTOCOL_VERSION}/{}", hex::encode(network_id)).into_bytes();

        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| setup(&e))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_client_cert_resolver(Arc::new(AlwaysResolvesClientRawPublicKeys::new(certified.clone())));
        client.alpn_protocols = vec![alpn.clone()];
        client.resumption = Resumption::disabled();
        client.enable_sni = false;

        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| setup(&e))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(AlwaysResolvesServerRawPublicKeys::new(certified)));
        server.alpn_protocols = vec![alpn.clone()];
        server.send_tls13_tickets = 0;
        server.session_storage = Arc::new(NoServerSessionStorage {});

        Ok(Self {
            client: Arc::new(client),
            server: Arc::new(server),
            unl_spki: Arc::new(unl_spki),
            alpn: Arc::new(alpn),
        })
    }

    /// Runs the dialer's side on `io`; returns the encrypted stream and the peer's UNL index.
    pub async fn connect<S>(&self, io: S) -> Result<(TlsStream<S>, usize), HandshakeError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = ServerName::try_from(SERVER_NAME).map_err(|e| HandshakeError::Setup(e.to_string()))?;
        let connector = tokio_rustls::TlsConnector::from(self.client.clone());
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, io))
            .await
            .map_err(|_| HandshakeError::Timeout)?
            .map_err(tls_error)?;
        let peer = self.identify(stream.get_ref().1.alpn_protocol(), stream.get_ref().1.peer_certificates())?;
        Ok((TlsStream::Client(stream), peer))
    }

    /// Runs the listener's side on `io`; returns the encrypted stream and the peer's UNL index.
    pub async fn accept<S>(&self, io: S) -> Result<(TlsStream<S>, usize), HandshakeError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.server.clone());
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io))
            .await
            .map_err(|_| HandshakeError::Timeout)?
            .map_err(tls_error)?;
        let peer = self.identify(stream.get_ref().1.alpn_protocol(), stream.get_ref().1.peer_certificates())?;
        Ok((TlsStream::Server(stream), peer))
    }

    /// The UNL index of a verified peer, once the handshake is complete. The verifier already
    /// refused keys outside the UNL; this also refuses a peer that offered no ALPN at all, which
    /// rustls lets through on the server side.
    fn identify(&self, alpn: Option<&[u8]>, keys: Option<&[CertificateDer<'_>]>) -> Result<usize, HandshakeError> {
        if alpn != Some(self.alpn.as_slice()) {
            return Err(HandshakeError::OtherNetwork(String::from_utf8_lossy(alpn.unwrap_or_default()).into_owned()));
        }
        let key = keys.and_then(|k| k.first()).ok_or(HandshakeError::NoKey)?;
        self.unl_spki.iter().position(|k| k.as_slice() == key.as_ref()).ok_or(HandshakeError::NotInUnl)
    }
}

/// rustls on *ring*: X25519 key exchange, AES-GCM / ChaCha20-Poly1305, Ed25519 signatures.
/// rustls marks it deprecated for lacking post-quantum key exchange; its alternative, aws-lc-rs,
/// needs cmake to build, which a fresh machine with only cargo and gcc does not have.
#[allow(deprecated)]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Names the one refusal an operator can fix by config: the two sides offered different ALPN
/// protocols, that is different network ids (or protocol versions).
fn tls_error(e: std::io::Error) -> HandshakeError {
    let other_network = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()).is_some_and(|inner| {
        matches!(
            inner,
            rustls::Error::NoApplicationProtocol
                | rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)
        )
    });
    if other_network { HandshakeError::OtherNetwork("no common ALPN protocol".into()) } else { HandshakeError::Tls(e) }
}

/// The DER SubjectPublicKeyInfo of an Ed25519 public key: what a raw-public-key TLS peer sends.
fn spki(key: &[u8; 32]) -> Result<Vec<u8>, HandshakeError> {
    let key = ed25519_dalek::VerifyingKey::from_bytes(key)
        .map_err(|_| HandshakeError::Setup("a UNL key is not an Ed25519 public key".into()))?;
    let der = key.to_public_key_der().map_err(|e| HandshakeError::Setup(e.to_string()))?;
    Ok(der.as_bytes().to_vec())
}

/// Accepts exactly the raw public keys of the other UNL members, and checks their handshake
/// signatures; used for both directions.
#[derive(Debug)]
struct UnlVerifier {
    accepted: Vec<Vec<u8>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl UnlVerifier {
    fn check(&self, key: &CertificateDer<'_>, others: &[CertificateDer<'_>]) -> Result<(), rustls::Error> {
        if others.is_empty() && self.accepted.iter().any(|k| k.as_slice() == key.as_ref()) {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
    }

    fn signature(
        &self,
        message: &[u8],
        key: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(key.as_ref()),
            dss,
            &self.algorithms,
        )
    }
}

impl ServerCertVerifier for UnlVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates).map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls13RequiredForQuic))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

impl ClientCertVerifier for UnlVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates).map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls13RequiredForQuic))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const NETWORK: [u8; 32] = [9; 32];

    fn key() -> SigningKey {
        SigningKey::generate(&mut rand::rngs::OsRng)
    }

    fn tls(key: &SigningKey, unl: &[[u8; 32]], network: [u8; 32]) -> PeerTls {
        PeerTls::new(key, unl, network).unwrap()
    }

    /// Dials with `dialer` and accepts with `listener` on an in-memory stream.
    async fn meet(
        dialer: &PeerTls,
        listener: &PeerTls,
    ) -> (Result<usize, HandshakeError>, Result<usize, HandshakeError>) {
        let (x, y) = tokio::io::duplex(64 * 1024);
        let (a, b) = tokio::join!(dialer.connect(x), listener.accept(y));
        (a.map(|(_, i)| i), b.map(|(_, i)| i))
    }

    #[test]
    fn the_raw_key_a_peer_sends_is_the_spki_of_its_unl_key() {
        let k = key();
        let rustls_spki = provider()
            .key_provider
            .load_private_key(PrivatePkcs8KeyDer::from(k.to_pkcs8_der().unwrap().as_bytes().to_vec()).into())
            .unwrap()
            .public_key()
            .unwrap()
            .as_ref()
            .to_vec();
        assert_eq!(rustls_spki, spki(&k.verifying_key().to_bytes()).unwrap());
    }

    #[tokio::test]
    async fn two_unl_members_authenticate_each_other_and_talk_encrypted() {
        let (a, b) = (key(), key());
        let unl = vec![a.verifying_key().to_bytes(), b.verifying_key().to_bytes()];
        let (x, y) = tokio::io::duplex(64 * 1024);
        let (ta, tb) = (tls(&a, &unl, NETWORK), tls(&b, &unl, NETWORK));
        let (ra, rb) = tokio::join!(ta.connect(x), tb.accept(y));
        let ((mut sa, ia), (mut sb, ib)) = (ra.unwrap(), rb.unwrap());
        assert_eq!((ia, ib), (1, 0));
        sa.write_all(b"hello").await.unwrap();
        sa.flush().await.unwrap();
        let mut got = [0u8; 5];
        sb.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
    }

    #[tokio::test]
    async fn a_key_outside_the_unl_is_refused_both_ways() {
        let (a, outsider) = (key(), key());
        let unl = vec![a.verifying_key().to_bytes()];
        // The outsider trusts the node, the node does not trust the outsider.
        let theirs = vec![a.verifying_key().to_bytes(), outsider.verifying_key().to_bytes()];
        let (node, stranger) = (tls(&a, &unl, NETWORK), tls(&outsider, &theirs, NETWORK));
        let (_, accepted) = meet(&stranger, &node).await;
        assert!(accepted.is_err(), "the node let a stranger dial in");
        let (dialed, _) = meet(&node, &stranger).await;
        assert!(dialed.is_err(), "the node accepted a stranger it dialed");
    }

    #[tokio::test]
    async fn a_node_of_another_network_is_refused_even_with_the_same_keys() {
        let (a, b) = (key(), key());
        let unl = vec![a.verifying_key().to_bytes(), b.verifying_key().to_bytes()];
        let (ours, theirs) = (tls(&a, &unl, NETWORK), tls(&b, &unl, [1; 32]));
        let (dialed, accepted) = meet(&theirs, &ours).await;
        assert!(matches!(dialed, Err(HandshakeError::OtherNetwork(_))), "{dialed:?}");
        assert!(matches!(accepted, Err(HandshakeError::OtherNetwork(_))), "{accepted:?}");
        assert!(accepted.unwrap_err().to_string().contains("contract_id"));
    }

    #[tokio::test]
    async fn a_node_that_dials_itself_is_refused() {
        let (a, b) = (key(), key());
        let unl = vec![a.verifying_key().to_bytes(), b.verifying_key().to_bytes()];
        let me = tls(&a, &unl, NETWORK);
        let (dialed, accepted) = meet(&me, &me).await;
        assert!(dialed.is_err() && accepted.is_err());
    }
}
