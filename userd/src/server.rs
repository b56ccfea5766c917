//! The public user port: binding it (IPv4 and IPv6 for localhost) and the accept loop, which
//! admits a socket only while [`crate::admission`] has room for its source.
//!
//! The accept loop does no I/O with a peer: every accepted socket gets its own task at once,
//! so garbage, slow or idle peers cannot hold up anyone else.

use crate::admission::Admission;
use crate::connection::{self, Shared};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Pause after a failed accept (e.g. out of descriptors) so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Why the user port could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on user port {addr} (config `ip`/`pubport`): {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// Binds the user port. With no `ip` (the default "localhost") it binds both 127.0.0.1 and
/// [::1] on the same port, so a client resolving localhost to either connects; when IPv6 is
/// not available on the host, IPv4 alone is used and a warning logged. Port 0 picks a free
/// port (tests), the same on both.
pub async fn bind(ip: Option<IpAddr>, port: u16) -> Result<Vec<TcpListener>, ServerError> {
    let bind_one = |addr: SocketAddr| async move {
        TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })
    };
    match ip {
        Some(ip) => Ok(vec![bind_one(SocketAddr::new(ip, port)).await?]),
        None => {
            let v4 = bind_one(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)).await?;
            let port = v4.local_addr().map(|a| a.port()).unwrap_or(port);
            let mut listeners = vec![v4];
            match bind_one(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)).await {
                Ok(v6) => listeners.push(v6),
                Err(e) => tracing::warn!(error = %e, "IPv6 localhost unavailable; users connect over IPv4 only"),
            }
            Ok(listeners)
        }
    }
}

/// Accepts connections until `shutdown`; each runs in a task of `tasks`. A socket the pending
/// pool has no room for (in total or for its source) is closed at once, before a byte is read.
pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    admission: Arc<Admission>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let (socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let pending = match admission.admit(peer.ip()) {
            Ok(pending) => pending,
            Err(refused) => {
                tracing::debug!(%peer, reason = %refused, "connection not admitted; closed");
                drop(socket);
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            connection::serve(socket, peer, pending, shared, shutdown).await;
        });
    }
}
