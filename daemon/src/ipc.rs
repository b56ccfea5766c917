//! gRPC over the Unix sockets in `<contract dir>/run/` (docs/ARCHITECTURE.md).
//!
//! Servers bind a fresh socket (removing a stale one) readable only by the node's user.
//! Clients are lazy: they connect on first use and reconnect by themselves after the other
//! process restarts, so a daemon never has to be restarted because a neighbour was.

use hyper_util::rt::TokioIo;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The deadline of an ordinary local call. Calls that run the contract set their own.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    #[error("cannot bind {path}: {source}")]
    Bind { path: PathBuf, source: std::io::Error },
}

/// Binds `path` for a gRPC server, replacing a stale socket, mode 0600.
pub fn bind(path: &Path) -> Result<UnixListenerStream, IpcError> {
    let bind_err = |source| IpcError::Bind { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(bind_err)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_err(e)),
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
    Ok(UnixListenerStream::new(listener))
}

/// A channel to the gRPC server at `path` that connects lazily and reconnects after failures.
pub fn channel(path: &Path) -> Channel {
    let path = path.to_path_buf();
    // The URI is a placeholder: the connector below ignores it and dials the socket.
    #[allow(clippy::expect_used)]
    let endpoint = Endpoint::try_from("http://[::1]:50051").expect("static URI parses");
    endpoint.connect_timeout(Duration::from_secs(2)).tcp_nodelay(true).connect_with_connector_lazy(tower::service_fn(
        move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        },
    ))
}

/// Removes the socket file when dropped, so a stopped daemon leaves no stale socket behind.
pub struct SocketGuard(pub PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
