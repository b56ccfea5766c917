//! `hp-consensusd`: the part of a node that talks to the other nodes. It makes user inputs
//! durable, gossips them, runs the consensus core (crate `hp-consensus`) as its host, stores
//! the ledger chain, has execd run each closed ledger, agrees with the peers on the result, and
//! hands certified outputs to userd. It also brings a node that fell behind up to date.
//!
//! # Layout
//! - [`peer`]: authenticated TCP connections to the other UNL nodes.
//! - [`wire`]: peer frames ↔ verified domain messages.
//! - [`metrics`]: what the node loop counts for `/metrics`.
//! - [`node`]: the node loop, host of the consensus core.
//! - [`executor`]: runs closed ledgers through execd, in order.
//! - [`service`]: the local gRPC API (the userd session, status); protobuf stops there.
//! - [`api`]: the typed messages between that service and the node loop.
//! - [`ledger_query`]: one stored ledger for a HotPocket `ledger_query`, off the node loop.
//! - [`state_sync`]: copying the contract state from a peer.
//! - [`serving`]: answering peers' requests for ledgers, outcomes and state, off the node loop
//!   and within a budget per peer.
//! - [`npl`]: the contract's node party line and control channel between execd and the peers,
//!   off the node loop and outside consensus.

pub mod api;
pub mod executor;
pub mod ledger_query;
pub mod metrics;
pub mod node;
pub mod npl;
pub mod peer;
pub mod service;
pub mod serving;
pub mod state_sync;
pub mod wire;

use hp_cfg::{Config, ContractDir};
use hp_consensus::{Consensus, NetworkId, Params, Timeouts};
use hp_ledger::{Ledger, Store};
use node::{Event, Node, NodeConfig, NodeParts};
use peer::{PeerConfig, PeerEvent, PeerNet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// The peer listen addresses for a config: its `ip`, or IPv4 and IPv6 localhost.
pub fn listen_addrs(cfg: &Config, port: u16) -> Vec<SocketAddr> {
    match cfg.ip {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
        ],
    }
}

/// Consensus timeouts derived from `roundtime`: the propose timeout must outlast the wait for
/// a heartbeat ledger; the others only matter when a node is down.
pub fn timeouts(roundtime: Duration) -> Timeouts {
    Timeouts {
        propose: roundtime + Duration::from_millis(1000),
        prevote: Duration::from_millis(500),
        precommit: Duration::from_millis(500),
        delta: Duration::from_millis(250),
    }
}

/// Why consensusd could not start or stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the UNL in hp.cfg: {0}")]
    Unl(#[from] hp_ledger::chain::ChainError),
    #[error("cannot create {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] hp_ledger::StoreError),
    #[error("consensus parameters: {0}")]
    Params(#[from] hp_consensus::ParamsError),
    #[error("peer port {port}: {source}")]
    PeerPort { port: u16, source: std::io::Error },
    #[error("cannot serve the local API socket: {0}")]
    Socket(#[from] hp_daemon::ipc::IpcError),
    #[error("cannot start the node: {0}")]
    Node(#[from] node::StartError),
}

/// Runs consensusd for the contract directory until `shutdown`.
pub async fn run(dir: ContractDir, cfg: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let unl_keys = hp_ledger::chain::unl_keys(&cfg.unl)?;
    let quorum = cfg.quorum();
    let network = NetworkId(cfg.network_id());
    let genesis = Ledger::genesis(&cfg.unl, &network);
    let genesis_members = hp_ledger::chain::genesis_members(&cfg.unl, quorum, cfg.max_input_ledger_offset)?;
    std::fs::create_dir_all(dir.hist()).map_err(|source| RunError::CreateDir { path: dir.hist(), source })?;
    let store = Store::open(&dir.ledger_db(), &genesis)?;
    let params =
        Params { unl: unl_keys.clone(), quorum, timeouts: timeouts(Duration::from_millis(cfg.roundtime_ms)), network };
    let core = Consensus::new(params, cfg.my_index(), cfg.key.signing_key().clone())?;

    let (events_tx, events_rx) = mpsc::channel::<Event>(65_536);
    let (peer_tx, mut peer_rx) = mpsc::channel::<PeerEvent>(65_536);
    let (npl_tx, npl_rx) = npl::inbox();
    let peers = PeerNet::start(
        PeerConfig {
            key: cfg.key.signing_key().clone(),
            unl: cfg.peer_keys(),
            // The node sets the chain's epochs before it reads any message.
            epochs: hp_ledger::Epochs::new(genesis_members.clone()),
            known_through: 0,
            network_id: network.0,
            listen: listen_addrs(&cfg, cfg.peerport),
            peers: cfg.peers.clone(),
            npl: Some(npl_tx),
        },
        peer_tx,
        shutdown.clone(),
    )
    .await
    .map_err(|source| RunError::PeerPort { port: cfg.peerport, source })?;
    {
        let events = events_tx.clone();
        tokio::spawn(async move {
            while let Some(e) = peer_rx.recv().await {
                if events.send(Event::Peer(e)).await.is_err() {
                    break;
                }
            }
        });
    }
    let executor = executor::spawn(
        dir.socket("execd"),
        dir.ledger_db(),
        Duration::from_millis(cfg.contract_timeout_ms),
        events_tx.clone(),
    );
    npl::spawn(
        executor.execd(),
        peers.clone(),
        cfg.key.signing_key().clone(),
        network,
        npl::NplLimits { messages: cfg.npl_messages_per_round, bytes: cfg.npl_output_bytes },
        npl_rx,
        shutdown.clone(),
    );

    let socket = dir.socket("consensusd");
    let incoming = hp_daemon::ipc::bind(&socket)?;
    let _guard = hp_daemon::ipc::SocketGuard(socket.clone());
    let mut registry = hp_daemon::metrics::registry();
    let metrics = metrics::NodeMetrics::register(&mut registry);
    let output_framing = hp_ledger::Framing::from_flag(cfg.stdinfmt.length_prefixed_outputs());
    let service = hp_proto::v1::consensus_server::ConsensusServer::new(service::ConsensusService::new(
        events_tx.clone(),
        cfg.pubmaxsize as usize,
        dir.ledger_db(),
        output_framing,
        service::MetricsSource { registry: std::sync::Arc::new(registry), node: metrics.clone() },
    ))
    .max_decoding_message_size(hp_proto::MAX_LOCAL_MESSAGE)
    .max_encoding_message_size(hp_proto::MAX_LOCAL_MESSAGE);
    let server_shutdown = shutdown.clone();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async move { server_shutdown.cancelled().await }),
    );
    let role = if cfg.my_index().is_some() { "validator" } else { "observer" };
    info!(socket = %socket.display(), peerport = cfg.peerport, unl = cfg.unl.len(), quorum, role, "consensusd ready");

    let node_cfg = NodeConfig {
        key: cfg.key.signing_key().clone(),
        genesis: genesis_members,
        network,
        roundtime: Duration::from_millis(cfg.roundtime_ms),
        ledger_bounds: node::mempool::LedgerBounds {
            bytes: (cfg.max_ledger_input_bytes as usize).min(peer::codec::MAX_FRAME / 2),
            inputs: usize::try_from(cfg.max_ledger_inputs).unwrap_or(usize::MAX),
            users: usize::try_from(cfg.max_ledger_users).unwrap_or(usize::MAX),
        },
        max_input_bytes: cfg.pubmaxsize as usize,
        max_pending_input_bytes: usize::try_from(cfg.max_pending_input_bytes).unwrap_or(usize::MAX),
        recovery_path: dir.hist().join("consensus.state"),
        output_framing,
    };
    let parts = NodeParts { store, core, peers, executor, store_path: dir.ledger_db(), events: events_tx, metrics };
    let node = Node::new(node_cfg, parts)?;
    node.run(events_rx, shutdown.clone()).await;
    shutdown.cancel();
    let _ = server.await;
    Ok(())
}
