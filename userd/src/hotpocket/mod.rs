//! The HotPocket 0.6 user protocol (docs/user-protocol.md, "HotPocket 0.6"), beside the seed
//! protocol of `pubport`: what `hotpocket-js-client` 0.5.7 speaks, unchanged, on `hpport` over
//! TLS (`wss://`) and on `hpport_plain` without it.
//!
//! # Layout
//! - [`events`]: `ledger_event` notifications to the connections that subscribed.
//! - [`handshake`]: `user_challenge`, the client's signed answer, the node's signed proof (pure).
//! - [`message`]: one message in JSON or BSON, read and written the same way (pure).
//! - [`connection`]: one connection: TLS, upgrade, handshake, requests.
//! - [`replies`]: the node's answers to `stat` and `lcl`.
//! - [`node_view`]: consensusd's status, cached.
//! - [`statuses`]: the connections waiting for their signed inputs' fate.
//! - [`tls`]: the certificate and key from `cfg/`.

pub mod connection;
pub mod events;
pub mod handshake;
pub mod message;
pub mod node_view;
pub mod replies;
pub mod statuses;
pub mod tls;

use crate::admission::Admission;
use ed25519_dalek::SigningKey;
use node_view::{NodeState, NodeView};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The HotPocket version this node speaks, as clients see it (they accept any `0.6.`).
pub const HP_VERSION: &str = "0.6.4";

/// The message encoding a client chose in its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Json,
    Bson,
}

/// What the HotPocket connections share.
pub struct HotPocketShared {
    pub contract_id: String,
    pub contract_version: String,
    /// The node's key: it signs the server challenge.
    pub key: SigningKey,
    /// hp.cfg's UNL: the network's first. The one in force comes from consensusd
    /// ([`HotPocketShared::unl_in_force`]).
    pub unl: Vec<[u8; 32]>,
    /// The configured peer addresses, shown in `stat`.
    pub peers: Vec<String>,
    /// consensusd's status: the UNL, roundtime and input window in force among the rest.
    pub view: Arc<NodeView>,
    /// Loaded when `hpport` is served.
    pub tls: Option<TlsAcceptor>,
    /// What the seed port's connections share: the session with consensusd, the input limits
    /// (`pubmaxsize`, `pubmaxcpm`, per user whichever port they use), the registry.
    pub seed: Arc<crate::connection::Shared>,
    /// Where the fates of signed inputs arrive.
    pub statuses: statuses::Statuses,
    /// execd, for read requests.
    pub execd: hp_proto::v1::exec_client::ExecClient<tonic::transport::Channel>,
}

impl HotPocketShared {
    /// The UNL in force, as consensusd last said (`state`); hp.cfg's while it cannot be asked.
    pub fn unl_in_force<'a>(&'a self, state: Option<&'a NodeState>) -> &'a [[u8; 32]] {
        state.map_or(&self.unl, |state| &state.unl)
    }

    /// The contract version users are told: the agreed config's, as consensusd last said
    /// (`state`); hp.cfg's until it has.
    pub fn contract_version_in_force<'a>(&'a self, state: Option<&'a NodeState>) -> &'a str {
        match state {
            Some(state) if !state.contract_version.is_empty() => &state.contract_version,
            _ => &self.contract_version,
        }
    }
}

impl std::fmt::Debug for HotPocketShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("HotPocketShared")
            .field("contract_id", &self.contract_id)
            .field("contract_version", &self.contract_version)
            .field("unl", &self.unl.len())
            .finish_non_exhaustive()
    }
}

/// Accepts HotPocket connections on `listener` until `shutdown`; `tls` says whether this is
/// the `wss://` port. A socket the pending pool has no room for is closed at once.
pub async fn accept_loop(
    listener: TcpListener,
    tls: bool,
    shared: Arc<HotPocketShared>,
    admission: Arc<Admission>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let (socket, peer): (_, SocketAddr) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let pending = match admission.admit(peer.ip()) {
            Ok(pending) => pending,
            Err(refused) => {
                tracing::debug!(%peer, reason = %refused, "connection not admitted; closed");
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        tasks.spawn(async move { connection::serve(socket, peer, pending, shared, tls, shutdown).await });
    }
}
