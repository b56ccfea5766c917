//! TLS for the HotPocket user port (`wss://`): the certificate and key from `cfg/`, TLS 1.2
//! and 1.3 on rustls with *ring* (what browsers and Node.js speak).

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Why the TLS setup failed; each names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "cannot read the TLS certificate {path}: {problem} (hotpocket new writes a self-signed one; or put your own there)"
    )]
    Certificate { path: PathBuf, problem: String },
    #[error("cannot read the TLS key {path}: {problem}")]
    Key { path: PathBuf, problem: String },
    #[error("the TLS certificate and key do not go together: {0}")]
    Mismatch(String),
}

/// A TLS acceptor for the certificate chain at `cert` and the key at `key` (PEM).
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let certificate = |problem: String| TlsError::Certificate { path: cert.to_path_buf(), problem };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| certificate(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(certificate("no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError::Key { path: key.to_path_buf(), problem: e.to_string() })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// rustls on *ring*; rustls marks it deprecated for lacking post-quantum key exchange, and its
/// alternative, aws-lc-rs, needs cmake, which a fresh machine with only cargo and gcc lacks.
#[allow(deprecated)]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}
