//! What HotPocket clients ask of the node itself (`stat`, `lcl`, `ledger_query`): the last
//! closed ledger and the peers, from consensusd's `Status`, cached briefly so that clients
//! asking often cost consensusd's loop one call per [`FRESH_FOR`] at most; stored ledgers from
//! `Consensus.Ledger` (which consensusd answers off its loop).

use hp_proto::v1::ConsensusStatus;
use hp_proto::v1::consensus_client::ConsensusClient;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// How long one answer of consensusd is reused.
pub const FRESH_FOR: Duration = Duration::from_millis(200);

/// Where the node stands, as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub lcl_seq: u64,
    pub lcl_hash: [u8; 32],
    pub peers: u32,
    pub in_sync: bool,
    /// The UNL in force (it changes by consensus: docs/consensus.md, "Membership"); never empty.
    pub unl: Vec<[u8; 32]>,
    /// How the proposals of the last ledger that had any reached the node.
    pub proposal: Option<hp_proto::v1::ProposalHealth>,
    /// The roundtime rounds run by; never 0.
    pub roundtime_ms: u64,
    /// The input window of the members in force (`max_input_ledger_offset`); never 0.
    pub max_input_ledger_offset: u64,
    /// The agreed contract version; empty when consensusd did not say.
    pub contract_version: String,
}

/// consensusd's status, cached.
#[derive(Debug)]
pub struct NodeView {
    client: ConsensusClient<Channel>,
    cached: Mutex<Option<(Instant, NodeState)>>,
}

impl NodeView {
    pub fn new(consensusd_socket: &Path) -> Self {
        Self { client: ConsensusClient::new(hp_daemon::ipc::channel(consensusd_socket)), cached: Mutex::new(None) }
    }

    /// The node's state; `None` while consensusd cannot be asked.
    pub async fn state(&self) -> Option<NodeState> {
        if let Some((at, state)) = self.cached.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            && at.elapsed() < FRESH_FOR
        {
            return Some(state.clone());
        }
        let mut request = tonic::Request::new(hp_proto::v1::ConsensusStatusRequest {});
        request.set_timeout(hp_daemon::ipc::CALL_TIMEOUT);
        let status = self.client.clone().status(request).await.ok()?.into_inner();
        let state = state_of(&status)?;
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), state.clone()));
        Some(state)
    }
}

impl NodeView {
    /// One stored ledger (`Consensus.Ledger`); `None` while consensusd cannot be asked.
    pub async fn ledger(&self, query: hp_proto::v1::LedgerQuery) -> Option<hp_proto::v1::LedgerQueryReply> {
        let mut request = tonic::Request::new(query);
        request.set_timeout(hp_daemon::ipc::CALL_TIMEOUT);
        Some(self.client.clone().ledger(request).await.ok()?.into_inner())
    }
}

/// The node's state, or `None` for a status that lacks what every consensusd reports (a UNL,
/// a roundtime, an input window): the rules in force are never guessed.
fn state_of(status: &ConsensusStatus) -> Option<NodeState> {
    if status.unl.is_empty() || status.roundtime_ms == 0 || status.max_input_ledger_offset == 0 {
        return None;
    }
    Some(NodeState {
        lcl_seq: status.lcl_seq,
        lcl_hash: status.lcl_hash.as_ref().try_into().ok()?,
        peers: status.peers,
        in_sync: status.in_sync,
        unl: status.unl.iter().map(|k| k.as_ref().try_into().ok()).collect::<Option<Vec<[u8; 32]>>>()?,
        proposal: status.proposal_health,
        roundtime_ms: status.roundtime_ms,
        max_input_ledger_offset: status.max_input_ledger_offset,
        contract_version: status.contract_version.clone(),
    })
}
